"""Simulator hosts and VMs for tests that drive the simulator driver directly."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session, sessionmaker

from core.db import write_session
from core.hypervisors.base import DiskSpec, HostRef, NicSpec, VmSpec
from core.models import Host
from core.services import hosts

ZONE = "us-central1-a"


def add_host(factory: sessionmaker[Session], status: str = "Up", fail_next_spawns: int = 0) -> HostRef:
    """A simulator host of its own cluster in the seeded zone."""
    with write_session(factory) as s:
        cluster = hosts.add_cluster(s, ZONE, f"sim-{uuid.uuid4().hex[:6]}", "simulator")
        host = Host(cluster_id=cluster.id, zone_id=cluster.zone_id, name=f"sim-{cluster.id}", cpus=8,
                    memory_mb=16384, status=status, fail_next_spawns=fail_next_spawns)
        s.add(host)
        s.flush()
        return hosts.host_ref(host)


def vm() -> VmSpec:
    """A VM of a new uid, with a boot disk and a NIC."""
    uid = uuid.uuid4().int >> 66
    return VmSpec(uid, f"vm-{uid}", f"vm-{uid}", 2, 1024, (DiskSpec(uid + 1, "boot", 10, True, "persistent-disk-0"),),
                  (NicSpec("nic0", "42:01:0a:00:00:02", "default", "10.0.0.2"),))
