"""A libvirt host with ``dataplane=netns``: its network's virtual router runs as a netns router on
this machine, beside the host, and the host's domains plug into that router's bridge
(``<interface type='bridge'>``) instead of a libvirt network, so their addresses come from the
router's dnsmasq (IPAM's, by MAC) rather than from libvirt's DHCP.

libvirt's test driver runs no guest: the domain's NIC is stood in for by a veth with the domain's
MAC on the bridge its XML names, and a real DHCP client (udhcpc) on it gets IPAM's address from
the running router. What needs real KVM (a guest booting on that bridge) is in the operator's
guide. Needs libvirt-python, root and the netns data plane's tools; skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from core.db import write_session
from core.hypervisors.netns import links as netns_links
from core.services import hosts
from core.services.seed import HOSTS_PER_ZONE
from tests.conftest import PROJECT
from tests.helpers.libvirt import body, host_of, run
from tests.helpers.netns import DATAPLANE_TOOLS, missing
from tests.hypervisors.conftest import LIBVIRT_ZONE as ZONE
from tests.hypervisors.conftest import libvirt_test_server

WHY = missing(DATAPLANE_TOOLS, "the libvirt data plane test")
pytestmark = [pytest.mark.xdist_group("netns"), pytest.mark.skipif(WHY is not None, reason=WHY or "")]


def test_a_libvirt_guest_takes_its_address_from_the_router_beside_its_host() -> None:
    server = libvirt_test_server("gstack-lvnet-")
    data_dir = server.data_dir
    stand_in = uuid.uuid4().int >> 66  # the namespace standing in for the domain's NIC
    try:
        runtime = server.runtime  # the services in this process (gstack admin's subprocesses cost seconds)
        with write_session(runtime.factory) as s:
            hosts.add_cluster(s, ZONE, "kvmnet", "libvirt")
            for i in range(HOSTS_PER_ZONE):
                hosts.set_host_status(s, f"sim-{ZONE}-{i + 1:02d}", "Maintenance")
        hosts.add_host(runtime.factory, runtime.drivers, ZONE, "kvmnet", "kvm1-host1", server.uri,
                       options={"dataplane": "netns", "console_dir": os.path.join(data_dir, "console")})
        gce = server.gce()
        run(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body("lvnet", "e2-small")))
        inst = gce.instances().get(project=PROJECT, zone=ZONE, instance="lvnet").execute()
        nic = inst["networkInterfaces"][0]
        driver, host = server.driver, host_of(server)

        # the domain's NIC is on a bridge the netns driver made on this machine: its network's
        iface = ET.fromstring(driver.domain_xml_of(host, int(inst["id"]))).find("devices/interface")
        assert iface is not None and iface.get("type") == "bridge"
        bridge = iface.find("source").get("bridge")
        mac = iface.find("mac").get("address")
        netns = server.runtime.drivers.get("netns")
        assert bridge.startswith(netns_links.BRIDGE_PREFIX)

        # the network's router runs beside the host (a namespace, listed among the host's VMs) on that bridge
        deadline = time.monotonic() + 30  # the router is deployed by a job of its own
        while not (routers := [u for u, st in driver.list_instances(host).items() if netns.has_vm(u) and st == "running"]):
            assert time.monotonic() < deadline, server.admin("systemvm", "list")
            time.sleep(0.2)
        assert len(routers) == 1
        plugged = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
        assert netns_links.veth(routers[0], 1) in plugged, plugged  # its eth1: the subnet's gateway

        # a DHCP client with the domain's MAC on that bridge gets IPAM's address from the router's dnsmasq
        ns = netns_links.namespace(stand_in)
        netns_links.ensure_namespace(ns)
        netns_links.plug(ns, netns_links.veth(stand_in, 0), "eth0", mac, bridge)
        subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
        lease = subprocess.run(["ip", "netns", "exec", ns, "udhcpc", "-f", "-q", "-n", "-i", "eth0", "-s", "/bin/true",
                                "-T", "1", "-t", "5"], capture_output=True, text=True, timeout=20)
        assert f"lease of {nic['networkIP']} obtained" in lease.stdout + lease.stderr, lease.stderr
        netns_links.remove_namespace(ns, [netns_links.veth(stand_in, 0)])

        run(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance="lvnet"))
        assert driver.domain_xml_of(host, int(inst["id"])) is None
    finally:
        netns_links.remove_namespace(netns_links.namespace(stand_in), [netns_links.veth(stand_in, 0)])
        server.stop()
        server.runtime.drivers.shutdown()  # as gstack serve stops: the router and its bridges go
        server.driver.close()
    assert not netns_links.link_exists(bridge)
    assert not any(netns_links.namespace_exists(netns_links.namespace(uid)) for uid in routers)
    shutil.rmtree(data_dir, ignore_errors=True)
