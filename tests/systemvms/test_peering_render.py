"""What VPC Network Peering makes a router render, checked by nft, dnsmasq and haproxy themselves and
by ``ip -batch`` in a network namespace of its own: routes to the peer's ranges out of the public
side, the ranges let through without NAT, proxy ARP for the peer; and all of it gone with the peering."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from core.db import write_session
from core.errors import Invalid
from core.resources.context import Call
from core.services import networks, peering, routes, subnetworks
from core.systemvms import router
from tests.systemvms.conftest import REGION, chain, check_all

pytestmark = pytest.mark.xdist_group("systemvms-render")


def kernel_routes(batch: str) -> str | None:
    """The routes the kernel holds after ``ip -batch`` ran the file in a namespace of its own with an
    ``eth0``; None where namespaces cannot be made."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as f:
        f.write(batch)
    try:
        done = subprocess.run(["unshare", "--net", "sh", "-c", "ip link add eth0 type veth peer name gstack-x && "
                               f"ip link set eth0 up && ip -batch {f.name} && ip route show proto static"],
                              capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(f.name)
    if done.returncode != 0 and ("Operation not permitted" in done.stderr or "unshare failed" in done.stderr):
        return None
    assert done.returncode == 0, done.stderr + "\n---\n" + batch
    return done.stdout


def test_a_peered_network_routes_the_peers_ranges_without_nat(cloud):
    def call(s):
        return Call(s, cloud.project, "test")

    with write_session(cloud.factory) as s:
        networks.insert(call(s), {"name": "other", "autoCreateSubnetworks": False})
    with write_session(cloud.factory) as s:
        subnetworks.insert(call(s), REGION, {"name": "o1", "network": "global/networks/other",
                                             "ipCidrRange": "10.200.0.0/24"})
        subnetworks.insert(call(s), "europe-west1", {"name": "o2", "network": "global/networks/other",
                                                     "ipCidrRange": "10.201.0.0/24"})
    with write_session(cloud.factory) as s:
        routes.insert(call(s), {"name": "to-lab", "network": "global/networks/other", "destRange": "192.168.7.0/24",
                                "nextHopIp": "10.200.0.5"})
        peering.add(call(s), "default", {"networkPeering": {"name": "to-other", "network": "global/networks/other",
                                                            "importCustomRoutes": True}})
    cloud.instance("vm-1")  # no external address, no Cloud NAT
    files = cloud.rendered()
    check_all(files)
    assert "route replace" not in files[router.ROUTES]  # INACTIVE: nothing is exchanged yet
    assert kernel_routes(files[router.ROUTES]) in (None, "")

    with write_session(cloud.factory) as s:
        peering.add(call(s), "other", {"networkPeering": {"name": "to-default", "network": "global/networks/default",
                                                          "exportCustomRoutes": True}})
    files = cloud.rendered()
    check_all(files)
    nft = files[router.NFTABLES]
    assert "elements = { 10.200.0.0/24, 10.201.0.0/24, 192.168.7.0/24 }" in nft.split("set peer_ranges", 1)[1].split("}", 2)[0] + "}"
    assert chain(nft, "postrouting")[0] == ('ip daddr { 10.200.0.0/24, 10.201.0.0/24, 192.168.7.0/24 } accept '
                                            'comment "peered networks see internal addresses"')
    assert ('oifname "eth0" ip saddr @no_egress ip daddr != @peer_ranges counter drop comment '
            '"no external address and no Cloud NAT"') in chain(nft, "forward")
    assert "net.ipv4.conf.eth0.proxy_arp = 1" in files[router.SYSCTL]
    batch = files[router.ROUTES]
    assert [line for line in batch.splitlines() if not line.startswith("#")] == [
        "route flush proto static", "route replace 10.200.0.0/24 dev eth0 proto static",
        "route replace 10.201.0.0/24 dev eth0 proto static", "route replace 192.168.7.0/24 dev eth0 proto static"]
    held = kernel_routes(batch)
    if held is not None:
        assert sorted(line.split()[:3] for line in held.splitlines()) == [
            ["10.200.0.0/24", "dev", "eth0"], ["10.201.0.0/24", "dev", "eth0"], ["192.168.7.0/24", "dev", "eth0"]]

    # One side goes: nothing is exchanged any more, and the router renders as before the peering.
    with write_session(cloud.factory) as s:
        peering.remove(call(s), "other", {"name": "to-default"})
    files = cloud.rendered()
    check_all(files)
    assert "route replace" not in files[router.ROUTES] and "proxy_arp" not in files[router.SYSCTL]
    assert "@peer_ranges" not in "\n".join(chain(files[router.NFTABLES], "forward"))


def test_a_legacy_network_cannot_peer(cloud):
    cloud.add("networks", "legacy", {"IPv4Range": "10.240.0.0/16", "gatewayIPv4": "10.240.0.1"})
    with write_session(cloud.factory) as s, pytest.raises(Invalid) as refused:
        peering.add(Call(s, cloud.project, "test"), "default", {"networkPeering": {
            "name": "old", "network": "global/networks/legacy"}})
    assert refused.value.message == (f"Invalid value for field 'network': 'projects/{cloud.project}/global/networks/"
                                     "legacy'. Legacy networks do not support VPC Network Peering.")
