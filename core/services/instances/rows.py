"""Instance rows: finding and locking them, saving their bodies, their Operations, and what a driver
needs to run them (the :class:`~core.hypervisors.VmSpec`, the host's driver).

Every other module of the package reads and writes instance rows through these, so the locking and
fingerprinting rules live in one place.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session

from core import ipam
from core.errors import Invalid, NotFound
from core.hypervisors import DiskSpec, DriverRegistry, HypervisorDriver, NicSpec, VmSpec
from core.hypervisors.base import HostRef
from core.ids import fingerprint
from core.links import parse_ref, path_of, url_of
from core.models import Cluster, Host, Operation, Resource
from core.prepared import Prepared, among
from core.resources import operations, store
from core.resources.context import Call
from core.services.topology import ZoneInfo
from core.systemvms.sync import request_sync_for_instance

# The rows of a JSON array of uids (core.prepared.among), locked: read by core.db.loaded.
BY_UIDS_LOCKED = Prepared(select(*Resource.__table__.columns).where(among(Resource.uid, "uids")).with_for_update())
HOSTS = select(Host).where(Host.id.in_(bindparam("ids", expanding=True)))
_BY_UID_LOCKED = select(Resource).where(Resource.uid == bindparam("uid")).with_for_update()

# Output-only fields that change with the VM's state, not its configuration: outside the fingerprint.
_STATE_FIELDS = frozenset({"fingerprint", "status", "statusMessage", "cpuPlatform", "lastStartTimestamp",
                           "lastStopTimestamp", "lastSuspendedTimestamp"})


def find(call: Call, zone: ZoneInfo, name: str) -> Resource:
    return store.find(call.session, call.project, "instances", f"zones/{zone.name}", name)


def instance_path(res: Resource) -> str:
    return path_of(res.project, res.scope, "instances", res.name)


def instance_url(res: Resource) -> str:
    return url_of(res.project, res.scope, "instances", res.name)


def lock(session: Session, row: Resource) -> Resource:
    """Re-read ``row`` under a row lock (PostgreSQL; SQLite write transactions are serialized anyway).

    Every read-check-write use case (fingerprints, states, disk users) takes it, so it sees the latest
    committed version and a concurrent one cannot interleave and lose its update.
    """
    path = path_of(row.project, row.scope, row.collection, row.name)
    try:
        session.refresh(row, with_for_update=True)
    except InvalidRequestError:  # deleted meanwhile
        raise NotFound(path) from None
    return row


def locked(call: Call, zone: ZoneInfo, name: str) -> Resource:
    """The instance, locked: what every use case that changes it starts with."""
    return lock(call.session, find(call, zone, name))


def load(s: Session, uid: int) -> Resource | None:
    """A row a job is about to change, locked until its write transaction ends (see :func:`lock`)."""
    return s.scalar(_BY_UID_LOCKED, {"uid": uid})


def fingerprinted(inst: dict[str, Any]) -> None:
    """A new ``fingerprint``: it changes on every modification of the configuration."""
    inst["fingerprint"] = fingerprint(["instance", {k: v for k, v in inst.items() if k not in _STATE_FIELDS}])


def save(res: Resource, inst: dict[str, Any]) -> None:
    """Store a changed instance body with a new fingerprint."""
    fingerprinted(inst)
    store.save(res, inst)


def operation(call: Call, res: Resource, op_type: str, job_name: str | None = None, **params: Any) -> Operation:
    """The Operation of a use case on ``res``: DONE at once without a job, PENDING with one."""
    zone_id = params.pop("zone_id", None)
    job_params = {"uid": res.uid, **params}
    if zone_id is not None:
        job_params["zone_id"] = zone_id
    return operations.begin(call, scope=res.scope, op_type=op_type, target_path=instance_path(res),
                            target_id=res.uid, job=job_name, params=job_params)


def sync_routers(session: Session, res: Resource) -> None:
    """Ask the virtual routers of the instance's networks to re-render (DHCP, DNS, firewall, NAT)."""
    request_sync_for_instance(session, res)


def host_ref(host: Host) -> HostRef:
    return HostRef(host.id, host.name, host.uri)


def driver_for(session: Session, drivers: DriverRegistry, host_id: int) -> tuple[HypervisorDriver, HostRef]:
    """The driver of the host's cluster, and the host as the driver knows it."""
    host = session.get(Host, host_id)
    if host is None:
        raise NotFound(f"hosts/{host_id}")
    cluster = session.get(Cluster, host.cluster_id)
    if cluster is None:
        raise NotFound(f"clusters/{host.cluster_id}")
    return drivers.get(cluster.hypervisor), host_ref(host)


def last_driver(session: Session, drivers: DriverRegistry,
                res: Resource) -> tuple[HypervisorDriver, HostRef] | None:
    """The driver and host the VM runs on, or ran on last (a stopped VM's domain may still be
    defined there); ``None`` for a VM never placed."""
    host_id = res.host_id or res.last_host_id
    return driver_for(session, drivers, host_id) if host_id else None


def vm_spec(session: Session, res: Resource, known: dict[str, Resource] | None = None) -> VmSpec:
    """What the driver needs to start the VM. ``known``: disk rows the caller loaded already, by URL."""
    inst = store.body_of(res)
    disk_specs = []
    for d in inst.get("disks", []):
        row = (known or {}).get(d["source"]) or store.find_optional(
            session, res.project, "disks", res.scope, d["source"].rsplit("/", 1)[-1])
        if row is not None:
            body = store.body_of(row)
            disk_specs.append(DiskSpec(row.uid, row.name, row.size_gb, d.get("boot", False), d.get("deviceName", ""),
                                       body.get("sourceImage")))
    nics = tuple(NicSpec(n["name"], ipam.mac_for(n["networkIP"]), n["network"].rsplit("/", 1)[-1], n["networkIP"])
                 for n in inst.get("networkInterfaces", []))
    meta = {i["key"]: i["value"] for i in inst.get("metadata", {}).get("items", [])}
    return VmSpec(res.uid, res.name, inst.get("hostname", res.name), res.vcpus, res.memory_mb, tuple(disk_specs),
                  nics, meta)


def attached_rows(s: Session, res: Resource) -> list[Resource]:
    """The disk rows the instance has attached, locked: the caller changes their users."""
    rows: list[Resource] = []
    for d in store.body_of(res).get("disks", []):
        ref = parse_ref(d["source"], project=res.project)
        if ref is None:
            continue
        row = s.scalar(select(Resource).where(
            Resource.project == ref.project, Resource.collection == "disks", Resource.scope == ref.scope,
            Resource.name == ref.name).with_for_update())
        if row is not None and row not in rows:
            rows.append(row)
    return rows


def serial_port_output(call: Call, zone: ZoneInfo, name: str, drivers: DriverRegistry, port: int,
                       start: int) -> dict[str, Any]:
    """The console log of port 1 as the VM's host keeps it; the other ports are empty."""
    res = find(call, zone, name)
    if port not in (1, 2, 3, 4):
        raise Invalid("port", port, "Must be between 1 and 4.")
    found = last_driver(call.session, drivers, res) if port == 1 else None
    contents, first, nxt = found[0].serial_output(res.uid, start) if found else ("", 0, 0)
    return {"kind": "compute#serialPortOutput", "contents": contents, "start": str(first), "next": str(nxt),
            "selfLink": instance_url(res) + "/serialPort"}
