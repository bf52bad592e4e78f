"""Helpers of the libvirt driver tests (lifecycle, monitor, console): an instance body in the
libvirt zone, the zone's host, a domain's state as libvirt reports it, and a call that must end DONE."""

from __future__ import annotations

from core.hypervisors.base import HostRef
from core.models import Host
from tests.conftest import wait_op
from tests.hypervisors.conftest import LIBVIRT_ZONE as ZONE


def body(name: str, machine_type: str = "e2-small", **extra) -> dict:
    return {
        "name": name,
        "machineType": f"zones/{ZONE}/machineTypes/{machine_type}",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
            "sourceImage": "projects/debian-cloud/global/images/family/debian-12", "diskSizeGb": "20"}}],
        "networkInterfaces": [{"network": "global/networks/default"}],
        **extra,
    }


def host_of(cloud) -> HostRef:
    with cloud.runtime.factory() as session:
        h = session.query(Host).filter_by(name="kvm1-host1").one()
        return HostRef(h.id, h.name, h.uri)


def state(cloud, uid) -> str | None:
    return cloud.driver.list_instances(host_of(cloud)).get(int(uid))


def run(gce, request) -> dict:
    op = wait_op(gce, request.execute())
    assert "error" not in op, op
    return op
