"""Zones, regions, machine types and disk types: what every project sees of the cloud."""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.catalog import (
    DISK_TYPES,
    DiskType,
    InvalidShape,
    MachineType,
    machine_type,
    machine_types_in,
    offered,
    stable_id,
)
from core.errors import Invalid, NotFound
from core.links import CANONICAL_BASE, scope_url
from core.models import Host, Region, Zone
from core.quotas import Quota
from core.resources.store import Body

EPOCH = "1969-12-31T16:00:00.000-08:00"


@dataclass(frozen=True)
class RegionInfo:
    id: int
    uid: int
    name: str
    status: str


@dataclass(frozen=True)
class ZoneInfo:
    """A zone as use cases need it: detached from any session, so it can be cached."""

    id: int
    uid: int
    name: str
    status: str
    region: RegionInfo


class _ZoneCache:
    """Zones change only by operator action; every API call names one. Cache them briefly, apart
    for each database (engine): a zone's row id is its database's, and a process may serve more
    than one (the test suite's in-process servers, one after another). Shared by name alone, a
    server could place VMs by the zone id another database gave the name, on that database's
    hosts of another zone or on none (ZONE_RESOURCE_POOL_EXHAUSTED)."""

    ttl = 5.0

    def __init__(self) -> None:
        self._by_engine: weakref.WeakKeyDictionary[Engine, tuple[float, dict[str, ZoneInfo]]] = \
            weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, session: Session, name: str) -> ZoneInfo | None:
        return self._zones(session).get(name)

    def in_region(self, session: Session, region: str) -> list[ZoneInfo]:
        return [z for z in self._zones(session).values() if z.region.name == region]

    def _zones(self, session: Session) -> dict[str, ZoneInfo]:
        """Every zone by name, in name order."""
        engine = session.get_bind().engine
        expires, zones = self._by_engine.get(engine, (0.0, {}))
        if time.monotonic() >= expires:
            with self._lock:
                rows = session.execute(select(Zone, Region).join(Region, Region.id == Zone.region_id)
                                       .order_by(Zone.name)).all()
                zones = {z.name: ZoneInfo(z.id, z.uid, z.name, z.status, RegionInfo(r.id, r.uid, r.name, r.status))
                         for z, r in rows}
                self._by_engine[engine] = (time.monotonic() + self.ttl, zones)
        return zones


_ZONES = _ZoneCache()


def zone(session: Session, project: str, name: str) -> ZoneInfo:
    z = _ZONES.get(session, name)
    if z is None:
        raise NotFound(f"projects/{project}/zones/{name}")
    return z


def region_zones(session: Session, region: str) -> list[ZoneInfo]:
    """The zones of ``region``, by name (none for an unknown region): from the zone cache, so a
    caller asking at every request (a placement policy's followers) reads no row."""
    return _ZONES.in_region(session, region)


def region(session: Session, project: str, name: str) -> Region:
    r = session.scalar(select(Region).where(Region.name == name))
    if r is None:
        raise NotFound(f"projects/{project}/regions/{name}")
    return r


def zones(session: Session) -> list[Zone]:
    return list(session.scalars(select(Zone).order_by(Zone.name)))


def regions(session: Session) -> list[Region]:
    return list(session.scalars(select(Region).order_by(Region.name)))


def zone_json(session: Session, project: str, z: Zone | ZoneInfo) -> Body:
    platforms = sorted({p for (p,) in session.execute(select(Host.cpu_platform).where(Host.zone_id == z.id))})
    return {
        "kind": "compute#zone", "id": str(z.uid), "creationTimestamp": EPOCH, "name": z.name,
        "description": z.name, "status": z.status, "region": scope_url(project, f"regions/{z.region.name}"),
        "selfLink": scope_url(project, f"zones/{z.name}"), "availableCpuPlatforms": platforms,
        "supportsPzs": False,
    }


def region_json(project: str, r: Region, quotas: list[Quota]) -> Body:
    return {
        "kind": "compute#region", "id": str(r.uid), "creationTimestamp": EPOCH, "name": r.name,
        "description": r.name, "status": r.status,
        "zones": [scope_url(project, f"zones/{z.name}") for z in r.zones],
        "quotas": quotas, "selfLink": scope_url(project, f"regions/{r.name}"), "supportsPzs": False,
    }


def machine_type_json(project: str, zone_name: str, mt: MachineType) -> Body:
    """A MachineType as GCE renders it: ``zone`` is a bare name; x86 types carry no ``architecture``."""
    return {
        "kind": "compute#machineType", "id": str(stable_id("machineTypes", mt.name)), "creationTimestamp": EPOCH,
        "name": mt.name, "description": mt.describe(), "guestCpus": mt.guest_cpus, "memoryMb": mt.memory_mb,
        "imageSpaceGb": 0, "maximumPersistentDisks": mt.max_disks,
        "maximumPersistentDisksSizeGb": mt.max_disks_size_gb, "zone": zone_name,
        "selfLink": f"{CANONICAL_BASE}projects/{project}/zones/{zone_name}/machineTypes/{mt.name}",
        "isSharedCpu": mt.shared_cpu,
    }


def machine_types(project: str, zone_name: str) -> list[Body]:
    """The zone's predefined types, by name (custom types exist only when named)."""
    return [machine_type_json(project, zone_name, mt) for mt in machine_types_in(zone_name)]


@lru_cache(maxsize=1024)
def machine_type_texts(project: str, zone_name: str) -> tuple[tuple[str, str], ...]:
    """(name, JSON text) of the zone's predefined types, by name: rendered once per project and zone, so
    a list or an aggregatedList over hundreds of types per zone serializes nothing again."""
    return tuple((body["name"], orjson.dumps(body).decode()) for body in machine_types(project, zone_name))


def get_machine_type(project: str, zone_name: str, name: str, field: str = "resource.machineType",
                     value: str | None = None) -> MachineType:
    """The type ``name`` in the zone, as a request names it.

    ``field`` is where the name came from: ``machineType`` is machineTypes.get's path, where an unknown
    type or one the zone does not offer is a 404; in a request body (``resource.machineType`` ...) the
    zone's refusal is GCE's 400 quoting ``value``, the reference as sent. A custom shape the rules refuse
    is a 400 either way.
    """
    quoted = name if value is None else value
    try:
        mt = machine_type(name)
    except InvalidShape as e:
        raise Invalid(field, quoted, e.why) from None
    if mt is None or (field == "machineType" and not offered(mt.family, zone_name)):
        raise NotFound(f"projects/{project}/zones/{zone_name}/machineTypes/{name}")
    if not offered(mt.family, zone_name):
        raise Invalid(field, quoted, f"Machine type with name '{name}' does not exist in zone '{zone_name}'.")
    return mt


def disk_type_json(project: str, zone_name: str, dt: DiskType) -> Body:
    return {
        "kind": "compute#diskType", "id": str(stable_id("diskTypes", dt.name)), "creationTimestamp": EPOCH,
        "name": dt.name, "description": dt.description, "validDiskSize": dt.valid_size,
        "zone": scope_url(project, f"zones/{zone_name}"),
        "selfLink": f"{CANONICAL_BASE}projects/{project}/zones/{zone_name}/diskTypes/{dt.name}",
        "defaultDiskSizeGb": str(dt.default_size_gb),
    }


def disk_types(project: str, zone_name: str) -> list[Body]:
    return [disk_type_json(project, zone_name, dt) for dt in sorted(DISK_TYPES.values(), key=lambda d: d.name)]


def get_disk_type(project: str, zone_name: str, name: str) -> DiskType:
    dt = DISK_TYPES.get(name)
    if dt is None:
        raise NotFound(f"projects/{project}/zones/{zone_name}/diskTypes/{name}")
    return dt
