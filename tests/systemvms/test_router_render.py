"""The router's configuration, rendered from real rows, checked by dnsmasq, nft and haproxy themselves,
and for what it means: DHCP/DNS entries, firewall precedence and targeting, NAT, load balancing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from core import ipam
from core.systemvms import guests, router
from tests.systemvms.conftest import REGION, backend_servers, chain, check_all, check_with, guest_lines

# Lower priority numbers first; these sit between the default network's rules (65534) and the implied ones.
DENY_SSH = {"priority": 900, "direction": "INGRESS", "sourceRanges": ["0.0.0.0/0"],
            "denied": [{"IPProtocol": "tcp", "ports": ["22"]}]}
ALLOW_SSH = {"priority": 1000, "direction": "INGRESS", "sourceRanges": ["0.0.0.0/0"],
             "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}

# One worker runs the module: its tests share a database.
pytestmark = pytest.mark.xdist_group("systemvms-render")


def firewall(cloud, name: str, **body) -> None:
    cloud.add("firewalls", name, {"network": cloud.network, **body})


def kernel_chain(nft: str, name: str) -> list[str] | None:
    """The comments of a chain's rules as the kernel holds them after loading the file in a network
    namespace of its own; None where namespaces cannot be made (the file check still ran)."""
    if shutil.which("unshare") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as f:
        f.write(nft)
    try:
        done = subprocess.run(["unshare", "--net", "sh", "-c", f"nft -f {f.name} && nft -j list ruleset"],
                              capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(f.name)
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        return None
    assert done.returncode == 0, done.stderr
    rules = [item["rule"] for item in json.loads(done.stdout)["nftables"] if "rule" in item]
    return [r.get("comment", "") for r in rules if r["chain"] == name and r["table"] == "gstack_filter"]


def test_dhcp_and_dns_entry_for_every_nic(cloud):
    cloud.instance("web-1")
    cloud.instance("db-1", zone="us-central1-b")
    cloud.sync()
    files = cloud.rendered()
    check_all(files)
    hosts, records = guest_lines(files, guests.DHCP_DIR), guest_lines(files, guests.DNS_DIR)
    for name, zone in (("web-1", "us-central1-a"), ("db-1", "us-central1-b")):
        ip = cloud.ip_of(name)
        host = next(line for line in hosts if f",{ip}," in line)
        assert host == f"{ipam.mac_for(ip)},set:dom.{zone}.{cloud.project},{ip},{name},infinite"
        assert f"{ip} {name}.{zone}.c.{cloud.project}.internal {name}.c.{cloud.project}.internal" in records  # zonal, global
        assert f"dhcp-option=tag:dom.{zone}.{cloud.project},option:domain-name,{zone}.c.{cloud.project}.internal" \
            in files[router.DNSMASQ]
    conf = files[router.DNSMASQ].splitlines()
    assert "dhcp-range=set:subnet1,10.128.0.0,static,255.255.240.0,infinite" in conf
    assert "dhcp-option=tag:subnet1,option:router,10.128.0.1" in conf


def test_a_higher_priority_deny_wins_over_an_allow(cloud):
    cloud.instance("vm-1")
    firewall(cloud, "allow-ssh", **ALLOW_SSH)
    firewall(cloud, "deny-ssh", **DENY_SSH)
    # at equal priority a deny wins too
    firewall(cloud, "tie-allow", **{**ALLOW_SSH, "priority": 950, "allowed": [{"IPProtocol": "tcp", "ports": ["80"]}]})
    firewall(cloud, "tie-deny", **{**DENY_SSH, "priority": 950, "denied": [{"IPProtocol": "tcp", "ports": ["80"]}]})
    firewall(cloud, "off", **{**DENY_SSH, "priority": 1, "disabled": True})
    cloud.sync()
    nft = cloud.rendered()[router.NFTABLES]
    check_with("nft", nft)
    ingress = chain(nft, "ingress")
    comments = [line.rsplit('comment "', 1)[1].split(" ")[0] for line in ingress]
    assert comments.index("deny-ssh") < comments.index("tie-deny") < comments.index("tie-allow") \
        < comments.index("allow-ssh") < comments.index("default-allow-ssh") < comments.index("implied")
    assert "off" not in comments
    assert ingress[comments.index("deny-ssh")] == 'tcp dport 22 counter drop comment "deny-ssh p900"'
    assert ingress[comments.index("allow-ssh")] == 'tcp dport 22 counter accept comment "allow-ssh p1000"'
    assert ingress[-1] == 'counter drop comment "implied deny all ingress p65535"'
    assert chain(nft, "egress")[-1] == 'counter return comment "implied allow all egress p65535"'
    loaded = kernel_chain(nft, "ingress")
    if loaded is not None:
        assert [c.split(" ")[0] for c in loaded] == comments


def test_tags_resolve_to_the_tagged_instances_only(cloud):
    cloud.instance("web-1", tags=("web",))
    cloud.instance("web-2", tags=("web", "blue"))
    cloud.instance("db-1", tags=("db",))
    firewall(cloud, "web-from-db", priority=1000, direction="INGRESS", sourceTags=["db"], targetTags=["web"],
             allowed=[{"IPProtocol": "tcp", "ports": ["8080", "80", "8000-8090"]}])
    firewall(cloud, "nobody", priority=1000, direction="INGRESS", sourceRanges=["0.0.0.0/0"], targetTags=["none"],
             allowed=[{"IPProtocol": "all"}])
    firewall(cloud, "blue-out", priority=100, direction="EGRESS", destinationRanges=["192.0.2.0/24", "192.0.2.128/25"],
             targetTags=["blue"], denied=[{"IPProtocol": "udp", "ports": ["53"]}])
    cloud.sync()
    files = cloud.rendered()
    check_all(files)
    nft, entries = files[router.NFTABLES], guest_lines(files, guests.NFT_DIR)

    def members(nft_set: str) -> set[str]:
        return {line.split("{ ")[1].split(" }")[0] for line in entries if f" {nft_set} {{" in line}

    rule = [line for line in chain(nft, "ingress") if '"web-from-db' in line]
    assert len(rule) == 1
    sources, targets = re.fullmatch(r'ip saddr @(\S+) ip daddr @(\S+) tcp dport \{ 80, 8000-8090 \} counter accept '
                                    r'comment "web-from-db p1000"', rule[0]).groups()
    assert members(sources) == {cloud.ip_of("db-1")}
    assert members(targets) == {cloud.ip_of("web-1"), cloud.ip_of("web-2")}
    nobody = [line for line in chain(nft, "ingress") if '"nobody' in line]
    assert len(nobody) == 1 and not members(nobody[0].split("@")[1].split()[0])  # an empty set matches nothing
    out = [line for line in chain(nft, "egress") if '"blue-out' in line]
    assert len(out) == 1 and out[0].startswith("ip daddr 192.0.2.0/24 ip saddr @")
    assert out[0].endswith(' udp dport 53 counter drop comment "blue-out p100"')
    assert members(out[0].split("@")[1].split()[0]) == {cloud.ip_of("web-2")}


def test_one_to_one_nat_and_source_nat(cloud):
    cloud.instance("public-1", external=True)
    cloud.instance("private-1")
    cloud.sync()
    files = cloud.rendered()
    check_all(files)
    nft, entries = files[router.NFTABLES], guest_lines(files, guests.NFT_DIR)
    nat = cloud.body("public-1")["networkInterfaces"][0]["accessConfigs"][0]["natIP"]
    public, private = cloud.ip_of("public-1"), cloud.ip_of("private-1")
    assert f'add rule ip gstack_nat prerouting ip daddr {nat} dnat to {public} comment "public-1 1:1 NAT"' in entries
    assert chain(nft, "postrouting") == []
    assert [line for line in entries if "postrouting" in line] == [
        f'add rule ip gstack_nat postrouting oifname "eth0" ip saddr {public} snat to {nat} comment "public-1 1:1 NAT"']
    # Without a Cloud NAT an instance without an external address has no way out, as on GCE.
    assert f"add element ip gstack_filter no_egress {{ {private} }}" in entries
    assert not [line for line in entries if "no_egress" in line and public in line]
    assert 'oifname "eth0" ip saddr @no_egress counter drop comment "no external address and no Cloud NAT"' in \
        chain(nft, "forward")


def test_cloud_nat(cloud):
    """A Cloud NAT of the region gives the instances without an external address a way out through
    its addresses (spread by source hash when there are several); one listing subnetworks covers
    only those; an instance with an external address keeps its 1:1 NAT."""
    cloud.instance("nat-public", external=True)
    cloud.instance("nat-private")
    base = f"https://www.googleapis.com/compute/v1/projects/{cloud.project}/regions/{REGION}"
    cloud.add("addresses", "nat-a", {"address": "198.18.210.1", "addressType": "EXTERNAL"}, region=REGION)
    cloud.add("addresses", "nat-b", {"address": "198.18.210.2", "addressType": "EXTERNAL"}, region=REGION)
    nat = {"name": "egress", "natIpAllocateOption": "MANUAL_ONLY",
           "natIps": [f"{base}/addresses/nat-a", f"{base}/addresses/nat-b"],
           "sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES"}
    cloud.add("routers", "cr", {"network": cloud.network, "nats": [nat]}, region=REGION)
    cloud.sync()
    files = cloud.rendered()
    check_all(files)
    nft, entries = files[router.NFTABLES], guest_lines(files, guests.NFT_DIR)
    private, public = cloud.ip_of("nat-private"), cloud.ip_of("nat-public")
    rules = [r for r in chain(nft, "postrouting") if "Cloud NAT" in r]
    assert rules == ['oifname "eth0" ip saddr @natgw0 snat to jhash ip saddr mod 2 map { 0 : 198.18.210.1, '
                     '1 : 198.18.210.2 } comment "Cloud NAT cr/egress"']
    assert [line for line in entries if "natgw0" in line] == [f"add element ip gstack_nat natgw0 {{ {private} }}"]
    assert [line for line in entries if public in line and "postrouting" in line]  # its 1:1 NAT
    assert not [line for line in entries if "no_egress" in line]


def test_forwarding_rule_to_a_pool_of_three(cloud):
    for i in range(3):
        cloud.instance(f"be-{i}")
    cloud.add("httpHealthChecks", "hc", {"port": 8080, "requestPath": "/healthz", "checkIntervalSec": 3,
                                         "timeoutSec": 2, "healthyThreshold": 2, "unhealthyThreshold": 4})
    pool = {"instances": [cloud.url_of_instance(f"be-{i}") for i in range(3)], "sessionAffinity": "NONE",
            "healthChecks": [f"https://www.googleapis.com/compute/v1/projects/{cloud.project}/global/httpHealthChecks/hc"]}
    cloud.add("targetPools", "pool", pool, region=REGION)
    target = f"https://www.googleapis.com/compute/v1/projects/{cloud.project}/regions/{REGION}/targetPools/pool"
    cloud.add("forwardingRules", "www", {"IPAddress": "198.18.200.1", "IPProtocol": "TCP", "portRange": "80-80",
                                         "target": target}, region=REGION)
    cloud.add("forwardingRules", "dns", {"IPAddress": "198.18.200.2", "IPProtocol": "UDP", "portRange": "53",
                                         "target": target}, region=REGION)
    cloud.add("forwardingRules", "web2", {"IPAddress": "198.18.200.3", "IPProtocol": "TCP", "ports": ["443", "80"],
                                          "target": target}, region=REGION)
    cloud.add("forwardingRules", "every", {"IPAddress": "198.18.200.4", "IPProtocol": "TCP", "portRange": "1-65535",
                                           "target": target}, region=REGION)
    cloud.sync()
    files = cloud.rendered()
    check_all(files)
    cfg = files[router.HAPROXY]
    assert "frontend fr-www\n    bind 198.18.200.1:80\n    default_backend tp-pool\n" in cfg
    assert "frontend fr-web2\n    bind 198.18.200.3:80\n    bind 198.18.200.3:443\n" in cfg
    assert "198.18.200.4" not in cfg  # every port: DNAT, not 65535 listeners
    assert backend_servers(cfg, "tp-pool") == ["be-0", "be-1", "be-2"]
    for i in range(3):
        assert f"    server be-{i} {cloud.ip_of(f'be-{i}')} check port 8080\n" in cfg
    assert "http-check send meth GET uri /healthz ver HTTP/1.0\n" in cfg
    assert "default-server inter 3s rise 2 fall 4\n" in cfg
    nft = files[router.NFTABLES]
    assert 'ip daddr 198.18.200.1 tcp dport 80 accept comment "forwarding rule www"' in chain(nft, "input")
    ips = [cloud.ip_of(f"be-{i}") for i in range(3)]
    assert (f"ip daddr 198.18.200.2 udp dport 53 dnat to numgen inc mod 3 map {{ 0 : {ips[0]}, 1 : {ips[1]}, "
            f'2 : {ips[2]} }} comment "forwarding rule dns"') in chain(nft, "prerouting")
    assert any(line.startswith("ip daddr 198.18.200.4 meta l4proto tcp dnat to numgen") for line in chain(nft, "prerouting"))

    # An instance that goes is no backend any more.
    cloud.delete_instance("be-1")
    cloud.sync()
    files = cloud.rendered()
    check_all(files)
    assert backend_servers(files[router.HAPROXY], "tp-pool") == ["be-0", "be-2"]
    assert f"{ips[1]}" not in files[router.HAPROXY]
    assert "numgen inc mod 2 map" in files[router.NFTABLES]


def test_empty_network_and_hostile_values_render_valid_files(cloud):
    cloud.instance("vm-1")
    cloud.sync()
    firewall(cloud, "bad-ports", priority=10, direction="INGRESS", sourceRanges=["0.0.0.0/0"],
             allowed=[{"IPProtocol": "tcp", "ports": ['22"; flush ruleset; "']}, {"IPProtocol": "bogus"}])
    firewall(cloud, "v6-only", priority=11, direction="INGRESS", sourceRanges=["::/0"],
             allowed=[{"IPProtocol": "tcp", "ports": ["22"]}])
    cloud.add("httpHealthChecks", "evil", {"port": 80, "requestPath": "/x\n    server evil 203.0.113.9:80"})
    cloud.add("targetPools", "p", {"instances": [cloud.url_of_instance("vm-1")], "healthChecks": [
        f"https://www.googleapis.com/compute/v1/projects/{cloud.project}/global/httpHealthChecks/evil"]}, region=REGION)
    cloud.add("forwardingRules", "f", {"IPAddress": "198.18.9.9\n", "IPProtocol": "TCP", "portRange": "80",
                                       "target": f"projects/{cloud.project}/regions/{REGION}/targetPools/p"},
              region=REGION)
    files = cloud.rendered()
    check_all(files)
    assert "evil" not in files[router.HAPROXY] and "flush ruleset;" not in files[router.NFTABLES]
    assert "bad-ports" not in files[router.NFTABLES] and "v6-only" not in files[router.NFTABLES]
    # every instance gone: still a valid configuration
    cloud.remove("forwardingRules", "f", region=REGION)
    cloud.delete_instance("vm-1")
    files = cloud.rendered()
    check_all(files)
    assert "elements" not in files[router.NFTABLES] and "dhcp-host=" not in files[router.DNSMASQ]
    assert not [p for d in (guests.DHCP_DIR, guests.DNS_DIR, guests.NFT_DIR) for p in guest_lines(files, d)]
