"""Hosts: adding and removing them, maintenance, clusters, and the operator's views of them.

The monitor that notices when a host fails, and reconciles what hosts run with what gstack
believes, is :mod:`core.services.host_monitor`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.catalog import platforms
from core.db import write_session
from core.hypervisors.base import DriverError, HostRef
from core.hypervisors.registry import DriverRegistry
from core.models import Cluster, Host, Pod, Resource, Zone
from core.planner import host_usage
from core.services import accelerator_types

HOST_STATUSES = ("Up", "Down", "Maintenance")


class HostError(Exception):
    """An operator's request that cannot be done (unknown zone, host still in use...)."""


# -- topology ------------------------------------------------------------------------------------


def host_ref(host: Host) -> HostRef:
    return HostRef(host.id, host.name, host.uri)


def find_zone(session: Session, name: str) -> Zone:
    zone = session.scalar(select(Zone).where(Zone.name == name))
    if zone is None:
        raise HostError(f"zone {name} does not exist")
    return zone


def add_cluster(session: Session, zone_name: str, name: str, hypervisor: str, *, pod: str | None = None,
                cpu_overprovisioning: float = 4.0, memory_overprovisioning: float = 1.0) -> Cluster:
    """A cluster of one hypervisor in a pod of the zone (its first pod unless named)."""
    zone = find_zone(session, zone_name)
    q = select(Pod).where(Pod.zone_id == zone.id)
    found = session.scalar((q.where(Pod.name == pod) if pod else q).order_by(Pod.id))
    if found is None:
        raise HostError(f"pod {pod} does not exist in {zone_name}" if pod else f"zone {zone_name} has no pod")
    if session.scalar(select(Cluster).where(Cluster.zone_id == zone.id, Cluster.name == name)) is not None:
        raise HostError(f"cluster {name} already exists in {zone_name}")
    cluster = Cluster(pod_id=found.id, zone_id=zone.id, name=name, hypervisor=hypervisor,
                      cpu_overprovisioning=cpu_overprovisioning, memory_overprovisioning=memory_overprovisioning)
    session.add(cluster)
    session.flush()
    return cluster


def add_host(factory: sessionmaker[Session], drivers: DriverRegistry, zone_name: str, cluster_name: str | None,
             name: str | None, uri: str, *, cpus: int | None = None, memory_mb: int | None = None,
             options: dict[str, Any] | None = None, cpu_platform: str | None = None) -> Host:
    """Add a host; its CPUs and memory are read from the host itself unless given. ``cpu_platform``:
    the GCE platform name of its processors (e.g. ``Intel Ice Lake``; default: the column's), what
    instances placed on it report and their minimum CPU platform is matched against.

    The row is written first (with no capacity, so nothing is placed on it yet) because the driver
    reads the host's options from it; a host that cannot be reached is removed again.
    """
    if cpu_platform is not None and cpu_platform not in platforms.KNOWN:
        raise HostError(f"unknown CPU platform {cpu_platform}; known: {', '.join(sorted(platforms.KNOWN))}")
    try:
        accelerator_types.declared(json.dumps(options) if options else None)
    except accelerator_types.UnknownAccelerator as exc:
        raise HostError(str(exc)) from None
    with write_session(factory) as session:
        zone = find_zone(session, zone_name)
        q = select(Cluster).where(Cluster.zone_id == zone.id)
        cluster = session.scalar((q.where(Cluster.name == cluster_name) if cluster_name else q).order_by(Cluster.id))
        if cluster is None:
            raise HostError(f"cluster {cluster_name} does not exist in {zone_name}")
        if cluster.hypervisor not in drivers:
            raise HostError(f"no driver for hypervisor {cluster.hypervisor}")
        driver = drivers.get(cluster.hypervisor)
        probe_name = name or f"new-host-{time.time_ns()}"
        if session.scalar(select(Host).where(Host.name == probe_name)) is not None:
            raise HostError(f"host {probe_name} already exists")
        host = Host(cluster_id=cluster.id, zone_id=zone.id, name=probe_name, uri=uri, cpus=0, memory_mb=0,
                    status="Up", options=json.dumps(options) if options else None)
        if cpu_platform is not None:
            host.cpu_platform = cpu_platform
        session.add(host)
        session.flush()
        host_id = host.id
    try:
        stats = driver.host_stats(HostRef(host_id, probe_name, uri))
    except DriverError as exc:
        with write_session(factory) as session:
            session.delete(session.get(Host, host_id))
        raise HostError(f"cannot add {uri}: {exc}") from exc
    with write_session(factory) as session:
        found = session.get(Host, host_id)
        if found is None:  # removed by an operator meanwhile
            raise HostError(f"host {probe_name} was removed while it was being added")
        host = found
        final = name or stats.hostname or uri
        taken = session.scalar(select(Host).where(Host.name == final, Host.id != host_id)) is not None
        if taken:
            session.delete(host)
        else:
            host.name = final
            host.cpus = cpus if cpus is not None else stats.cpus
            host.memory_mb = memory_mb if memory_mb is not None else stats.memory_mb
            host.last_seen, host.failures = time.time(), 0
    if taken:
        raise HostError(f"host {final} already exists; give another --name")
    return host


def find_host(session: Session, name: str) -> Host:
    host = session.scalar(select(Host).where(Host.name == name))
    if host is None:
        raise HostError(f"host {name} does not exist")
    return host


def set_host_status(session: Session, name: str, status: str) -> None:
    """Mark a host Up, Down (a simulator host then stops answering) or in Maintenance, as is: no VM moves."""
    find_host(session, name).status = status


def fail_next_spawns(session: Session, name: str, count: int) -> None:
    """Simulator fault injection: the host's next ``count`` spawns fail."""
    find_host(session, name).fail_next_spawns = count


def cluster_of(session: Session, host: Host) -> Cluster:
    cluster = session.get(Cluster, host.cluster_id)
    assert cluster is not None  # a foreign key
    return cluster


def find_cluster(session: Session, zone_name: str, name: str | None) -> Cluster | None:
    """The zone's cluster called ``name``, else (no name) its first; None when there is none."""
    zone = session.scalar(select(Zone).where(Zone.name == zone_name))
    q = select(Cluster).where(Cluster.zone_id == (zone.id if zone else -1))
    return session.scalar((q.where(Cluster.name == name) if name else q).order_by(Cluster.id))


@dataclass(frozen=True)
class ClusterRow:
    cluster: Cluster
    zone: Zone
    hosts: int


def clusters(session: Session) -> list[ClusterRow]:
    """Every cluster by zone and name, with its number of hosts."""
    counted = session.execute(select(Host.cluster_id, func.count(Host.id)).group_by(Host.cluster_id))
    counts = {cluster_id: n for cluster_id, n in counted}  # dict() would take the Result for a mapping
    rows = session.execute(select(Cluster, Zone).join(Zone, Cluster.zone_id == Zone.id).order_by(Zone.name, Cluster.name))
    return [ClusterRow(c, z, counts.get(c.id, 0)) for c, z in rows]


@dataclass(frozen=True)
class HostRow:
    host: Host
    cluster: Cluster
    zone: Zone
    cpus_used: int
    memory_used_mb: int


def hosts(session: Session) -> list[HostRow]:
    """Every host by zone and name, with the CPUs and memory its VMs hold."""
    rows = list(session.execute(select(Host, Cluster, Zone).join(Cluster, Host.cluster_id == Cluster.id)
                                .join(Zone, Host.zone_id == Zone.id).order_by(Zone.name, Host.name)))
    usage = host_usage(session, [h.id for h, _, _ in rows])
    return [HostRow(h, c, z, *usage.get(h.id, (0, 0))) for h, c, z in rows]


def placed_vms(session: Session, host_id: int) -> list[Resource]:
    """The VMs that hold capacity on the host (PROVISIONING once placed through SUSPENDING)."""
    return list(session.scalars(select(Resource).where(Resource.host_id == host_id).order_by(Resource.name)))


def set_maintenance(session: Session, name: str, on: bool) -> list[Resource]:
    """Maintenance: the planner places nothing more on the host; the VMs on it keep running (no
    live migration yet) and are returned so the operator can stop or move them."""
    host = find_host(session, name)
    if on:
        host.status = "Maintenance"
    elif host.status == "Maintenance":
        host.status = "Up"
    return placed_vms(session, host.id)


def remove_host(session: Session, name: str) -> None:
    """Remove a host no VM is placed on; stopped VMs that last ran there forget it."""
    host = find_host(session, name)
    vms = placed_vms(session, host.id)
    if vms:
        raise HostError(f"host {name} still has {len(vms)} VM(s): " + ", ".join(
            f"{v.project}/{v.name}" for v in vms[:10]) + "; stop or delete them first")
    session.execute(update(Resource).where(Resource.last_host_id == host.id).values(last_host_id=None))
    session.delete(host)
