"""The operator's use cases behind ``gstack admin`` that no API method shares: opening the database,
projects and their quota limits, the system VM template of a zone, the list of system VMs.

The commands run without a server, straight on the database; what they decide lives here so that
the command line only parses, calls and prints.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import migrations
from core.catalog import DEFAULT_GLOBAL_QUOTAS, DEFAULT_REGION_QUOTAS
from core.db import DEFAULT_POOL_MAX, make_engine, write_session
from core.hypervisors import simulator
from core.models import Cluster, Host, Operation, Project, Resource, SystemVm, Zone
from core.services.seed import ensure_project, seed


class AdminError(Exception):
    """A refused operator command (unknown project, zone or metric; a name taken)."""


def open_database(url: str, pool_max: int = DEFAULT_POOL_MAX) -> sessionmaker[Session]:
    """Sessions on the database at ``url`` (at most ``pool_max`` connections), with its schema and
    the demo cloud in place; an empty database is made at head, one behind it refused
    (:class:`core.migrations.SchemaNotCurrent`)."""
    engine = make_engine(url, pool_max)
    migrations.prepare(engine)
    made = sessionmaker(bind=engine, expire_on_commit=False)
    with write_session(made) as session:
        seed(session)
    return made


def transaction(factory: sessionmaker[Session]) -> AbstractContextManager[Session]:
    """A new session in a write transaction: committed when the command's block ends, rolled back
    if it fails (or exits)."""
    return write_session(factory)


# -- projects --------------------------------------------------------------------------------------


def create_project(session: Session, name: str) -> Project:
    """A new project with its default network; AdminError if the name is taken."""
    if session.scalar(select(Project).where(Project.name == name)) is not None:
        raise AdminError(f"project {name} already exists")
    return ensure_project(session, name)


def check_quota_metric(metric: str, regional: bool) -> None:
    known = DEFAULT_REGION_QUOTAS if regional else DEFAULT_GLOBAL_QUOTAS
    if metric not in known:
        raise AdminError(f"unknown {'regional' if regional else 'global'} metric {metric}; "
                         f"known: {', '.join(sorted(known))}")


def set_quota(session: Session, project: str, metric: str, limit: float, region: str | None) -> None:
    """Change a project's limit of ``metric``: in ``region`` (``*``: every region) or, without one, globally."""
    check_quota_metric(metric, region is not None)
    p = session.scalar(select(Project).where(Project.name == project))
    if p is None:
        raise AdminError(f"project {project} does not exist")
    limits = orjson.loads(p.quota_limits or "{}")
    if region:
        limits.setdefault("regions", {}).setdefault(region, {})[metric] = limit
    else:
        limits.setdefault("global", {})[metric] = limit
    p.quota_limits = orjson.dumps(limits).decode()


# -- zones and system VMs --------------------------------------------------------------------------


def find_zone(session: Session, name: str) -> Zone:
    zone = session.scalar(select(Zone).where(Zone.name == name))
    if zone is None:
        raise AdminError(f"zone {name} does not exist")
    return zone


def set_systemvm_arch(session: Session, zone: str, arch: str | None) -> Zone:
    """The zone, its system VM template architecture changed to ``arch`` when one is given (for
    system VMs deployed from now on)."""
    row = find_zone(session, zone)
    if arch:
        row.systemvm_arch = arch
    return row


def system_vms(session: Session, kind: str | None) -> list[tuple[SystemVm, Resource, Zone, str]]:
    """System VMs (of one kind, or all) by kind and name, with their resource, zone and host name ("-": none)."""
    q = select(SystemVm, Resource, Zone).join(Resource, Resource.uid == SystemVm.uid) \
        .join(Zone, Zone.id == SystemVm.zone_id).order_by(SystemVm.kind, SystemVm.name)
    if kind:
        q = q.where(SystemVm.kind == kind)
    hosts = {h.id: h.name for h in session.scalars(select(Host))}
    return [(vm, res, zone, hosts.get(res.host_id, "-") if res.host_id is not None else "-")
            for vm, res, zone in session.execute(q)]


def find_operation(session: Session, name: str) -> Operation | None:
    return session.scalar(select(Operation).where(Operation.name == name))


# -- the simulator's knobs -------------------------------------------------------------------------


def set_cpu_load(session: Session, project: str, zone: str, instance: str, utilisation: float) -> Resource:
    """From now on the simulated instance keeps ``utilisation`` (0 to 1) of its vCPUs busy, which its
    CPU time and so the autoscaler's signal follow; the instance. Refused for an instance that is
    missing or not placed on a simulator host."""
    if not 0 <= utilisation <= 1:
        raise AdminError(f"the CPU utilisation must be between 0 and 1, not {utilisation}")
    res = session.scalar(select(Resource).where(Resource.project == project, Resource.collection == "instances",
                                                Resource.scope == f"zones/{zone}", Resource.name == instance))
    if res is None:
        raise AdminError(f"instance projects/{project}/zones/{zone}/instances/{instance} does not exist")
    host_id = res.host_id or res.last_host_id
    hypervisor = session.scalar(select(Cluster.hypervisor).join(Host, Host.cluster_id == Cluster.id)
                                .where(Host.id == host_id)) if host_id else None
    if hypervisor != "simulator":
        raise AdminError(f"instance {instance} is not on a simulator host")
    simulator.set_cpu_load(session, res.uid, utilisation * max(1, res.vcpus))
    return res
