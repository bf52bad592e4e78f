"""Helpers of the core's unit tests (tests/core): resource rows as the services leave them, written
straight to the database so a test states exactly what a host, a pool or a quota holds."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from core.ids import new_uid
from core.models import IpAllocation, Operation, Resource, Zone
from core.resources.context import Call
from core.services import instances, topology

IMAGE = "projects/debian-cloud/global/images/family/debian-12"


def add_resource(session: Session, collection: str, *, project: str = "demo-project", zone: str = "us-central1-a",
                 region: str | None = None, status: str = "RUNNING", subtype: str = "", **columns: int) -> Resource:
    """A flushed instance or disk row of ``zone`` (``region``: its region, the zone's by default);
    ``columns``: what it holds (vcpus, memory_mb, size_gb, host_id, pool_id)."""
    uid = new_uid()
    res = Resource(uid=uid, project=project, collection=collection, scope=f"zones/{zone}",
                   region=region or zone.rsplit("-", 1)[0], name=f"r{uid}", status=status, subtype=subtype,
                   created=0.0, body="{}", **columns)
    session.add(res)
    session.flush()
    return res


def zone_id(session: Session, name: str) -> int:
    return session.scalars(select(Zone.id).where(Zone.name == name)).one()


def new_instance(session: Session, *, project: str = "demo-project", zone: str = "us-central1-a", prefix: str = "vm",
                 nic: dict[str, Any] | None = None, **fields: Any) -> str:
    """A new e2-micro instance made by ``instances.insert`` in the core (its jobs do not run): a
    boot disk of debian-12, one NIC on the project's default network with the fields ``nic``, and
    ``fields`` in its body besides; flushed. Its name, ``prefix``-RANDOM."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    instances.insert(Call(session, project, "test"), topology.zone(session, project, zone), {
        "name": name, "machineType": f"zones/{zone}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
        "networkInterfaces": [{"network": "global/networks/default", **(nic or {})}], **fields})
    session.flush()
    return name


def left_by(session: Session, prefix: str, project: str = "demo-project") -> dict[str, int]:
    """What calls inserting instances named ``prefix...`` left in the database: their instances and
    disks, the addresses those hold, the instances' Operations."""
    uids = select(Resource.uid).where(Resource.project == project, Resource.name.like(f"{prefix}%"))
    return {"resources": session.scalar(select(func.count()).select_from(uids.subquery())) or 0,
            "addresses": session.scalar(select(func.count()).select_from(IpAllocation)
                                        .where(IpAllocation.owner_uid.in_(uids))) or 0,
            "operations": session.scalar(select(func.count()).select_from(Operation)
                                         .where(Operation.target_link.like(f"%/instances/{prefix}%"))) or 0}


def remove_made(engine: Engine, prefixes: list[str], project: str = "demo-project") -> None:
    """Remove what :func:`left_by` counts, committed by a test, for each of ``prefixes``."""
    with Session(engine) as s, s.begin():
        for prefix in prefixes:
            uids = select(Resource.uid).where(Resource.project == project, Resource.name.like(f"{prefix}%"))
            s.execute(delete(IpAllocation).where(IpAllocation.owner_uid.in_(uids)))
            s.execute(delete(Operation).where(Operation.target_link.like(f"%/instances/{prefix}%")))
            s.execute(delete(Resource).where(Resource.project == project, Resource.name.like(f"{prefix}%")))
