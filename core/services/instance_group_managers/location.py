"""Where a managed instance group lives: one zone (``instanceGroupManagers``, scope ``zones/Z``) or a
region (``regionInstanceGroupManagers``, scope ``regions/R``).

Both kinds are rows of collection ``instanceGroupManagers`` (so selfLinks, template users and the
aggregated list come out as GCE's), and one implementation serves both: the use cases take a
:data:`Where` (a zonal API view passes its :class:`ZoneInfo`, a regional one a :class:`Location`
from :func:`regional`), and every managed instance records its own zone (:attr:`Member.zone
<core.services.instance_group_managers.state.Member.zone>`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.services import topology
from core.services.topology import ZoneInfo


@dataclass(frozen=True)
class Location:
    """``scope``: the group's scope; ``zones``: its zone, or every zone of its region."""

    scope: str
    region: str
    zones: tuple[ZoneInfo, ...]

    @property
    def regional(self) -> bool:
        return is_regional(self.scope)


Where = ZoneInfo | Location


def is_regional(scope: str) -> bool:
    return scope.startswith("regions/")


def api_collection(scope: str) -> str:
    """The collection GCE names in a group's ``operationType`` (``compute.<this>.<method>``)."""
    return "regionInstanceGroupManagers" if is_regional(scope) else "instanceGroupManagers"


def zonal(zone: ZoneInfo) -> Location:
    return Location(f"zones/{zone.name}", zone.region.name, (zone,))


def regional(session: Session, project: str, region: str) -> Location:
    """The region named in a request path (404 when there is none), with its zones in name order."""
    r = topology.region(session, project, region)
    zones = tuple(topology.zone(session, project, z.name) for z in topology.zones(session) if z.region_id == r.id)
    return Location(f"regions/{r.name}", r.name, zones)


def of(where: Where) -> Location:
    return where if isinstance(where, Location) else zonal(where)
