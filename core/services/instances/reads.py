"""The first read of instances.insert, one statement for what used to be three: whether the names it
would take are taken (the instance's, its new disks'); the network its first NIC names (or the
project's ``default``) with that network's project's subnetworks in the zone's region, or when
the NIC names a subnetwork alone, that subnetwork's project's subnetworks in the region, which the
NIC checks then take from here (:class:`RegionReads`) instead of reading them; and the usable
images of the family the boot disk names of a public project (``debian-cloud``'s ``debian-12``,
mostly), which the boot disk's image lookup then takes instead of reading them.

Every branch is an index seek by (project, collection, scope[, name]), the columns of
``uq_resource_name``, in a UNION ALL: as one WHERE with an OR of the collections, SQLite used only
the index's project column and read every resource of the project (42 ms at 54,000 instances).
tests/core/test_query_plans.py checks SQLite's plan.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, Select, String, bindparam, case, select, true, union_all
from sqlalchemy.orm import aliased
from sqlalchemy.sql.selectable import ExecutableReturnsRows

from core import ipam, quotas
from core.db import read_only
from core.links import parse_ref
from core.models import Project, Resource
from core.prepared import Prepared, shared_statement
from core.resources.context import Call
from core.services import images, projects


def network_read(project: str, name: str, scope: str) -> list[Select[Resource]]:
    """A network and its project's subnetworks in a region (their parameters named ``project``,
    ``name`` and ``scope``), as the branches of a UNION ALL: one index seek each."""
    return [select(Resource).where(Resource.project == bindparam(project), Resource.collection == "networks",
                                   Resource.scope == "global", Resource.name == bindparam(name)),
            select(Resource).where(Resource.project == bindparam(project), Resource.collection == "subnetworks",
                                   Resource.scope == bindparam(scope))]


@dataclass
class RegionReads:
    """What the checks of an instance's NICs read once for the region: the subnetworks in it of
    each network's project, and the networks read along with them, by (project, name) (None: none
    of that name)."""

    subnets: dict[str, list[Resource]] = field(default_factory=dict)
    networks: dict[tuple[str, str], Resource | None] = field(default_factory=dict)

    def add(self, project: str, name: str | None, rows: Iterable[Resource]) -> None:
        """The rows of :func:`network_read` for the network ``name`` of ``project`` (None: the
        subnetworks' branch alone was read)."""
        if name is not None:
            self.networks[(project, name)] = None
        self.subnets[project] = []
        for row in rows:
            if row.collection == "networks" and name is not None:
                self.networks[(project, name)] = row
            else:
                self.subnets[project].append(row)

    def subnet(self, project: str, name: str) -> Resource | None:
        """The subnetwork ``name`` of ``project`` in the region, when its project's were read and
        it is among them (None: it is to be found by :func:`~core.resources.store.find`, which
        also takes a numeric id, and says NotFound)."""
        return next((s for s in self.subnets.get(project, ()) if s.name == name), None)


def first_network(call: Call, nics: object, region: str) -> tuple[str, str | None] | None:
    """What the first NIC's checks read in ``region``, when the request tells it before they run:
    (project, name) of the network it names (or the project's ``default``), read by name with its
    project's subnetworks in the region, among them the subnetwork it may name as well; (project,
    None) for a NIC that names a subnetwork alone: that subnetwork's project's subnetworks in the
    region (its network, which its body names, is read by the checks). None: a malformed NIC is
    left to them to refuse."""
    nic = {} if nics is None else nics[0] if isinstance(nics, list) and nics else None
    if not isinstance(nic, dict):
        return None
    if nic.get("network"):
        ref = parse_ref(nic["network"], project=call.project, scope="global") if isinstance(nic["network"], str) \
            else None
        return (ref.project, ref.name) if ref is not None and ref.collection == "networks" else None
    if nic.get("subnetwork"):
        ref = parse_ref(nic["subnetwork"], project=call.project, scope=f"regions/{region}") \
            if isinstance(nic["subnetwork"], str) else None
        return (ref.project, None) if ref is not None and ref.collection == "subnetworks" \
            and ref.scope == f"regions/{region}" else None
    return call.project, "default"


def _one_ephemeral_external(nics: object) -> bool:
    """Whether ``nics`` is one NIC whose access config asks for an ephemeral external address."""
    if not isinstance(nics, list) or len(nics) != 1 or not isinstance(nics[0], dict):
        return False
    configs = nics[0].get("accessConfigs")
    return isinstance(configs, list) and len(configs) == 1 and isinstance(configs[0], dict) \
        and not configs[0].get("natIP")


def _names(disks: int) -> list[Select[Any]]:
    """The branches of the instance's name and of each of its ``disks`` new disks' names
    (parameters ``disk_0`` ...) in the zone, each an equality: as plain parameters, where an
    expanding one would be compiled again at every run, and not an IN list of the disks' names,
    which PostgreSQL's planner tested against each disk of the zone when its statistics lagged
    behind the zone's growth (the name a filter, not a bound of the index walk)."""
    def named(collection: str, name: str) -> Select[Any]:
        return select(Resource).where(Resource.project == bindparam("project"), Resource.collection == collection,
                                      Resource.scope == bindparam("zone"), Resource.name == bindparam(name, type_=String))
    return [named("instances", "name"), *(named("disks", f"disk_{i}") for i in range(disks))]


@shared_statement
def _names_read(network: str | None, image: bool, disks: int) -> ExecutableReturnsRows:
    """The names' branches (:func:`_names`), with the network's (``network``: NETWORK, the network and
    its project's subnetworks in the region; SUBNETWORKS, the subnetworks alone) and with the boot
    image's family's usable images (:func:`core.services.images.public_images`) as asked."""
    return select(Resource).from_statement(_found(network, image, disks).order_by("collection", "name"))


NETWORK, SUBNETWORKS = "network", "subnetworks"  # what the first NIC's branches read (see _names_read)


def _found(network: str | None, image: bool, disks: int) -> CompoundSelect[Any]:
    branches = network_read("network_project", "network", "region_scope") if network else []
    return union_all(*_names(disks), *(branches[1:] if network == SUBNETWORKS else branches),
                     *((images.public_images("image_project", "image_family"),) if image else ()))


def _with_project(network: str | None, image: bool, usage: ColumnElement[Any],
                  disks: int, tops: bool = False, external: bool = False) -> Select[Any]:
    """:func:`_names_read` joined to the project's row and its quota counters in the region
    (:data:`core.quotas.USAGE_COLUMNS`, parameters ``project`` and ``region``): a row per
    resource found, the project's on each (one with no resource when none is found), none when
    the project is not named by its name (``usage``: the dialect's column). The project's read was
    a round trip of its own. Run only as :func:`_prepared`'s statement, which compiles it once, under
    ``Prepared``'s lock: no thread compiles it cold beside another (see core.prepared.shared_statement).
    ``tops``: each subnetwork's row ends with its pool's highest address (:func:`core.ipam.subnet_top`),
    what the insert predicts its address from (:class:`core.ipam.Guesses`). ``external`` (with
    ``tops``), for an ephemeral external address predicted too: then each row ends with the highest
    address of the pool ``external_pool``, the project's static external addresses in the region
    by status (:data:`core.quotas.STATIC_ADDRESSES_COLUMN`) and its settings' body
    (:data:`core.services.projects.SETTINGS_COLUMN`: the default network tier), which the access
    config's quota check and tier read apart."""
    found = _found(network, image, disks).subquery("found")
    row = aliased(Resource, found)
    columns: list[Any] = [Project, usage, row]
    if tops:
        columns.append(case((found.c.collection == "subnetworks", ipam.subnet_top(found.c.uid))))
    if tops and external:
        columns += [ipam.pool_top(bindparam("external_pool", type_=String)), quotas.STATIC_ADDRESSES_COLUMN,
                    projects.SETTINGS_COLUMN]
    return (select(*columns).select_from(Project).outerjoin(found, true())
            .where(Project.name == bindparam("project")).order_by(found.c.collection, found.c.name))


_USAGE = len(Project.__table__.columns)  # the quota counters' column, between the project's and the resource's
_TOP = _USAGE + 1 + len(Resource.__table__.columns)  # after the resource's: its pool's highest address (PostgreSQL)


@functools.cache
def _prepared(network: str | None, image: bool, dialect: str, disks: int, external: bool = False) -> Prepared:
    """:func:`_with_project` as a :class:`~core.prepared.Prepared` statement: its rows as the
    driver gives them, the project's columns, the counters, the resource's, in their tables' order;
    on PostgreSQL, where the insert predicts its address, the subnetwork's pool's highest address
    after them (and ``external``: what an ephemeral external address is predicted and checked from)."""
    pg = dialect == "postgresql"
    return Prepared(_with_project(network, image, quotas.USAGE_COLUMNS[dialect], disks, pg, pg and external))


@dataclass
class Taken:
    """Whether the instance's name is taken in its zone, and each of its new disks' names; the
    network read along with them; the project (None: read apart) and its quota counters in the
    region."""

    instance: bool
    disks: dict[str, bool]
    reads: RegionReads
    project: Project | None = None
    counters: list[quotas.Counter] | None = None
    # the subnetworks' pools' highest addresses (PostgreSQL's read), and the external pool's when
    # the read was asked for what an ephemeral external address needs: then also the project's
    # static external addresses by status and its settings
    tops: dict[str, int | None] | None = None
    statics: dict[str, int] | None = None
    settings: dict[str, Any] | None = None


def names_taken(call: Call, zone: str, region: str, name: str, disk_names: list[str], nics: object,
                boot_image: object = None, alone: bool = False) -> Taken:
    """Whether the instance ``name`` and its new disks ``disk_names`` are taken in ``zone`` (a scope),
    and the network of the first of ``nics`` (see :func:`first_network`) with the subnetworks of
    ``region`` of its project, and when ``boot_image`` names a family of a public image project,
    that family's usable images (taken by the boot disk's image lookup, see
    :func:`core.services.images.read_ahead`), and the project with its quota counters in
    ``region``: one read for what the insert would otherwise look up apart.

    The rows it answers (the project, the network, subnetworks and images) are read-only copies,
    not the session's objects (:func:`core.db.read_only`): a change to one would not be written.
    ``alone``: read outside the session's transaction when it has sent nothing yet
    (:meth:`~core.prepared.Prepared.alone`), for a call that may then write in one statement; on
    PostgreSQL, when the one NIC asks for an ephemeral external address, what that address is
    predicted and checked from too (see :func:`_with_project`)."""
    params: dict[str, Any] = {"project": call.project, "zone": zone, "name": name, "region": region,
                              **{f"disk_{i}": disk for i, disk in enumerate(disk_names)}}
    network = first_network(call, nics, region)
    reading = None if network is None else NETWORK if network[1] is not None else SUBNETWORKS
    if network is not None:
        params.update(network_project=network[0], region_scope=f"regions/{region}",
                      **({"network": network[1]} if reading == NETWORK else {}))
    image_family = images.public_family(boot_image, call.project)
    if image_family is not None:
        params["image_project"], params["image_family"] = image_family
    session = call.session
    dialect = session.get_bind().dialect.name
    external = alone and dialect == "postgresql" and _one_ephemeral_external(nics)
    if external:
        params["external_pool"] = ipam.external_pool(region)
    read = _prepared(reading, image_family is not None, dialect, len(disk_names), external)
    found = read.alone(session, params) if alone else None
    if found is None:
        found = read.in_session(session, params)
    project: Project | None = None
    counters: list[quotas.Counter] | None = None
    tops: dict[str, int | None] | None = None
    statics: dict[str, int] | None = None
    settings: dict[str, Any] | None = None
    rows: list[Resource]
    if found:
        project, counters = read_only(Project, found[0][:_USAGE]), quotas.counters_of(found[0][_USAGE])
        resources = [r for r in found if r[_USAGE + 1] is not None]
        rows = [read_only(Resource, r[_USAGE + 1:_TOP]) for r in resources]
        if len(found[0]) > _TOP:  # PostgreSQL's: each subnetwork's pool's highest address
            tops = {ipam.subnet_pool(row.uid): r[_TOP] for row, r in zip(rows, resources, strict=True)
                    if row.collection == "subnetworks"}
            if external:  # then the external pool's highest address, the static addresses, the settings
                top, static, body = found[0][_TOP + 1:]
                tops[params["external_pool"]] = top
                statics, settings = dict(static or {}), projects.settings_of(body)
    else:  # the project named by its number: the names read alone, the project read apart
        rows = list(session.scalars(_names_read(reading, image_family is not None, len(disk_names)), params))
    if image_family is not None:
        images.read_ahead(session, *image_family, (r for r in rows if r.collection == "images"))
    reads = RegionReads()
    if network is not None:
        reads.add(*network, (r for r in rows if r.collection in ("networks", "subnetworks")))
    disks_found = {r.name for r in rows if r.collection == "disks"}
    return Taken(any(r.collection == "instances" for r in rows), {n: n in disks_found for n in disk_names}, reads,
                 project, counters, tops, statics, settings)
