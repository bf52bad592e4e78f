"""The live data plane on a netns host: the virtual router runs (dnsmasq, nftables, HAProxy, the
metadata proxy), guests take IPAM's addresses by DHCP, resolve each other by name, are reached on
their external addresses from the simulated internet when a firewall rule admits it, read tokens
from the real metadata server, and ``gcloud compute ssh`` runs a command in one.

One ``gstack serve``, driven with google-api-python-client and gcloud; what the guests see is
checked from inside their namespaces with the real tools (getent, curl). Needs root and the tools
below; skipped with the reason elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

from core.db import write_session
from core.hypervisors.base import NicSpec, VmSpec
from core.hypervisors.netns import NetnsDriver, dataplane
from core.hypervisors.netns import links as netns_links
from core.services import hosts
from core.systemvms import guests
from tests.conftest import PROJECT, ZONE, running_server, wait_op
from tests.helpers.databases import seeded_engine, sessions
from tests.helpers.netns import DATAPLANE_TOOLS, add_netns_host, in_ns, instance, made_by, missing, serial

pytestmark = pytest.mark.xdist_group("netns")
WHY = missing(DATAPLANE_TOOLS, "the netns data plane tests")
needs_root = pytest.mark.skipif(WHY is not None, reason=WHY or "")
READONLY = "https://www.googleapis.com/auth/compute.readonly"


def web_script(root: str) -> str:
    """A startup script serving the guest's hostname on port 80, from a directory under ``root``
    (the server's data directory: removed with it; the guests share the host's file system)."""
    return (f"#!/bin/bash\nd=$(mktemp -d -p {root}) && hostname > $d/index.html && cd $d && "
            "exec python3 -m http.server 80 --bind 0.0.0.0")


POOL = ("dp-web", "dp-web2", "dp-web3")  # each answers its own hostname


def until(check, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def in_guest(uid: str, *cmd: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    """A command as the guest's own processes run (its mount namespace holds its resolv.conf)."""
    pid = netns_links.pids(netns_links.namespace(int(uid)))[0]
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "-n", "-u", *cmd], capture_output=True, text=True,
                          timeout=timeout, check=False)


def curl(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "--max-time", "2", *args], capture_output=True,
                          text=True, check=False)


@needs_root
def test_a_network_with_a_live_router() -> None:
    with running_server("sqlite") as server:
        add_netns_host(server.database_url, server.data_dir)
        gce = server.gce()
        webs = [instance(name, {"startup-script": web_script(server.data_dir)}) for name in POOL]
        for web in webs:
            web["tags"] = {"items": ["web"]}
        webs[0]["networkInterfaces"][0]["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
        reader = instance("dp-reader", {})
        reader["serviceAccounts"] = [{"email": "default", "scopes": [READONLY]}]
        ops = [gce.instances().insert(project=PROJECT, zone=ZONE, body=body).execute() for body in (*webs, reader)]
        for op in ops:
            assert "error" not in wait_op(gce, op), server.log_tail(60)
        a, b = (gce.instances().get(project=PROJECT, zone=ZONE, instance=n).execute()
                for n in ("dp-web", "dp-reader"))
        ip_a, ip_b = (i["networkInterfaces"][0]["networkIP"] for i in (a, b))
        nat_ip = a["networkInterfaces"][0]["accessConfigs"][0]["natIP"]

        # DHCP: each guest holds IPAM's address, leased by the router's dnsmasq (its serial port says so).
        # RUNNING comes before the guest's boot: on a loaded CI machine (3 test workers on 2 cores) a
        # guest's serial port once showed its first DHCP discovers only at the end of a 20 s wait.
        for guest, ip in ((a, ip_a), (b, ip_b)):
            assert f"lease of {ip} obtained" in serial(gce, guest["name"], f"lease of {ip} obtained", 60)
            assert f" {ip}/" in in_ns(guest["id"], "ip", "-4", "-o", "addr", "show", "eth0").stdout
        # DNS: each resolves the other by its name (the search domain the lease gave)
        assert in_guest(a["id"], "getent", "hosts", "dp-reader").stdout.split()[:1] == [ip_b]
        assert in_guest(b["id"], "getent", "hosts", f"dp-web.{ZONE}.c.{PROJECT}.internal").stdout.split()[:1] == [ip_a]
        assert in_guest(b["id"], "getent", "hosts", f"dp-web.c.{PROJECT}.internal").stdout.split()[:1] == [ip_a]

        # setMetadata wakes the guest agent's wait_for_change (through its router's metadata proxy):
        # the user of the new key is made without a reboot
        fingerprint = b["metadata"]["fingerprint"]
        keyed = {"fingerprint": fingerprint, "items": [{"key": "ssh-keys", "value": "carol:ssh-ed25519 AAAA carol"}]}
        assert "error" not in wait_op(gce, gce.instances().setMetadata(project=PROJECT, zone=ZONE, instance="dp-reader",
                                                                       body=keyed).execute())
        assert "Created user: carol" in serial(gce, "dp-reader", "Created user: carol", 5)

        # the external address from the simulated internet: dropped until a rule admits port 80 to the tag
        internet = dataplane.internet_names(internet_scope(server.data_dir))[0]
        assert curl(internet, f"http://{nat_ip}/").returncode != 0
        rule = {"name": "allow-web", "network": "global/networks/default", "targetTags": ["web"],
                "sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["80"]}]}
        router = router_namespace(server.data_dir)
        assert "error" not in wait_op(gce, gce.firewalls().insert(project=PROJECT, body=rule).execute())
        admitted = time.monotonic()
        # the change reaches the running router as a job, within a second
        loaded = until(lambda: "allow-web" in subprocess.run(["ip", "netns", "exec", router, "nft", "list", "chain", "ip",
                                                              "gstack_filter", "ingress"],
                                                             capture_output=True, text=True).stdout, 5, 0.02)
        assert loaded and time.monotonic() - admitted < 1.0, time.monotonic() - admitted
        answered = until(lambda: curl(internet, "-o", "/dev/null", "-w", "%{http_code}", f"http://{nat_ip}/").stdout
                         == "200", 10)
        assert answered, server.log_tail()
        # a forwarding rule to a target pool of three: the router's HAProxy spreads connections over
        # all three, and its health check (HAProxy's own, for real) leaves out one that stops serving
        region = ZONE.rsplit("-", 1)[0]
        check = {"name": "dp-hc", "port": 80, "requestPath": "/", "checkIntervalSec": 1, "timeoutSec": 1,
                 "healthyThreshold": 1, "unhealthyThreshold": 1}
        assert "error" not in wait_op(gce, gce.httpHealthChecks().insert(project=PROJECT, body=check).execute())
        members = [gce.instances().get(project=PROJECT, zone=ZONE, instance=n).execute() for n in POOL]
        pool = {"name": "dp-pool", "instances": [m["selfLink"] for m in members],
                "healthChecks": [f"projects/{PROJECT}/global/httpHealthChecks/dp-hc"]}
        assert "error" not in wait_op(gce, gce.targetPools().insert(project=PROJECT, region=region,
                                                                     body=pool).execute())
        fr = {"name": "dp-fr", "IPProtocol": "TCP", "portRange": "80",
              "target": f"projects/{PROJECT}/regions/{region}/targetPools/dp-pool"}
        assert "error" not in wait_op(gce, gce.forwardingRules().insert(project=PROJECT, region=region,
                                                                         body=fr).execute())
        vip = gce.forwardingRules().get(project=PROJECT, region=region, forwardingRule="dp-fr").execute()["IPAddress"]
        seen: set[str] = set()
        assert until(lambda: seen.add(curl(internet, f"http://{vip}/").stdout.strip()) or set(POOL) <= seen, 10), seen
        stop_web_server(members[1]["id"])
        assert until(lambda: {curl(internet, f"http://{vip}/").stdout.strip() for _ in range(6)}
                     == {"dp-web", "dp-web3"}, 10), server.log_tail()
        # egress: to the simulated internet, from the guest's external address
        assert in_ns(a["id"], "ping", "-c", "1", "-W", "2", dataplane.INTERNET_ADDRESS).returncode == 0

        # gcloud compute ssh (where the gcloud CLI is installed, as in CI): its key in project metadata,
        # the guest agent follows it with wait_for_change
        if shutil.which("gcloud") is not None:
            done = gcloud_ssh(server, internet, "tester@dp-web")
            # (its first run prints ssh-keygen's output before the command's)
            assert (done.returncode, done.stdout.strip().splitlines()[-1:]) == (0, ["dp-web"]), done.stderr[-2000:]
            # --internal-ip: to the guest's network address, from a namespace on its network (another guest's)
            # (gcloud first checks over ssh that the address is the instance's: the guest curls its
            # instance id from the metadata server, through its router)
            done = gcloud_ssh(server, netns_links.namespace(int(b["id"])), "tester@dp-web2", "--internal-ip")
            assert (done.returncode, done.stdout.strip()) == (0, "dp-web2"), done.stderr[-2000:]

        # the metadata server: a compute.readonly token for the reader, read through its router
        got = in_ns(b["id"], "curl", "-s", "--max-time", "5", "-H", "Metadata-Flavor: Google",
                    "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token")
        token = json.loads(got.stdout)["access_token"]
        # the proxy says who asks, over whatever the guest claims
        assert in_guest(b["id"], "curl", "-s", "-H", "Metadata-Flavor: Google", "-H", f"X-Gstack-Source-Ip: {ip_a}",
                        "http://metadata.google.internal/computeMetadata/v1/instance/name").stdout == "dp-reader"
        headers = {"Authorization": f"Bearer {token}"}
        listed = requests.get(f"{server.api}projects/{PROJECT}/zones/{ZONE}/instances", headers=headers, timeout=10)
        assert listed.status_code == 200 and {"dp-web", "dp-reader"} <= {i["name"] for i in listed.json()["items"]}
        refused = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/instances/dp-web/stop",
                                headers=headers, timeout=10)
        assert refused.status_code == 403, refused.text

        # the router's /etc holds three files per instance; a deleted instance's leave it
        root = router_root(server.data_dir)
        instance_files = [root + os.path.join(d, name) for d in (guests.DHCP_DIR, guests.DNS_DIR, guests.NFT_DIR)
                          for name in os.listdir(root + d)]
        assert len(instance_files) == 3 * (len(POOL) + 1), instance_files
        for name in (*POOL, "dp-reader"):
            assert "error" not in wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE,
                                                                      instance=name).execute())
        assert until(lambda: not [p for p in instance_files if os.path.exists(p)], 20), instance_files
        assert not netns_links.namespace_exists(netns_links.namespace(int(a["id"])))
        made = made_by(server.data_dir) | set(dataplane.internet_names(internet_scope(server.data_dir)))
        assert made <= everything()
    # gstack serve stopped: the router, the bridges, the simulated internet went with it
    assert made & everything() == set()


def stop_web_server(uid: str) -> None:
    """The guest's startup-script web server killed (the guest runs on): its health check fails."""
    for pid in netns_links.pids(netns_links.namespace(int(uid))):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"http.server" in f.read():
                    os.kill(pid, 9)
        except OSError:
            continue


def gcloud_ssh(server, via: str, target: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """``gcloud compute ssh TARGET --command hostname``, configured by environment (no ``gcloud config``
    calls), its ssh reaching the address from the namespace ``via``: the simulated internet for the
    external address (the host has no route to it: gstack never touches the host's routing), a
    guest's namespace for ``--internal-ip``."""
    home = os.path.join(server.data_dir, "gcloud-home")
    os.makedirs(home, exist_ok=True)
    env = {**os.environ, "HOME": home, "CLOUDSDK_CONFIG": os.path.join(home, "config"),
           "CLOUDSDK_CORE_DISABLE_PROMPTS": "1", "CLOUDSDK_CORE_PROJECT": PROJECT, "CLOUDSDK_COMPUTE_ZONE": ZONE,
           "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false", "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
           "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE": server.api, "CLOUDSDK_AUTH_TOKEN_HOST": server.base + "/token",
           "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE": server.key_path}
    # every ssh gcloud runs goes through ``via``: its --internal-ip check passes no --ssh-flag, so an
    # ``ssh`` first on PATH adds the config (gcloud would split a ProxyCommand flag at its spaces)
    ssh_config, shim = os.path.join(home, "ssh_config"), os.path.join(home, "bin", "ssh")
    with open(ssh_config, "w") as f:
        f.write(f"Host *\n    ProxyCommand ip netns exec {via} socat - TCP:%h:%p\n    ConnectTimeout 5\n")
    os.makedirs(os.path.dirname(shim), exist_ok=True)
    with open(shim, "w") as f:
        f.write(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {ssh_config} "$@"\n')
    os.chmod(shim, 0o755)
    env["PATH"] = os.path.dirname(shim) + os.pathsep + env.get("PATH", "")
    return subprocess.run(["gcloud", "compute", "ssh", target, *flags, "--command", "hostname", "--quiet",
                           "--strict-host-key-checking=no"], env=env, capture_output=True, text=True, timeout=90,
                          check=False)


def router_folder(data_dir: str) -> str:
    """The netns driver's folder of the (only) virtual router the server's netns host runs."""
    folder = os.path.join(data_dir, "netns", "vms")
    for uid in os.listdir(folder):
        with open(os.path.join(folder, uid, "guest.json")) as f:
            if json.load(f)["metadata"].get("gstack-systemvm-role") == "router":
                return os.path.join(folder, uid)
    raise AssertionError("no router runs on the netns host")


def router_namespace(data_dir: str) -> str:
    return netns_links.namespace(int(os.path.basename(router_folder(data_dir))))


def router_root(data_dir: str) -> str:
    """The router's file system as its agent sees it (its /etc is an overlay of its own)."""
    with open(os.path.join(router_folder(data_dir), "agent.pid")) as f:
        return f"/proc/{int(f.read())}/root"


def internet_scope(data_dir: str) -> str:
    folder = os.path.join(data_dir, "netns", "internet")
    with open(os.path.join(folder, os.listdir(folder)[0])) as f:
        return f.read().strip()


def everything() -> set[str]:
    """The driver's namespaces, veths and bridges on this machine, simulated internets included."""
    names = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    for line in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines():
        names.add(line.split(":")[1].strip().split("@")[0])
    return {n for n in names if n.startswith((netns_links.NAMESPACE_PREFIX, netns_links.VETH_PREFIX,
                                              netns_links.BRIDGE_PREFIX, dataplane.INET_PREFIX, dataplane.INET_VETH))}


@needs_root
def test_removing_the_host_removes_its_routers_and_internet() -> None:
    """``release_host``: a router's namespace, both its bridges and the host's simulated internet go."""
    with seeded_engine("sqlite", "gstack-netns-") as engine:
        factory = sessions(engine)
        state = tempfile.mkdtemp(prefix="gstack-netns-state-")
        driver = NetnsDriver(factory, state)
        with write_session(factory) as s:
            cluster = hosts.add_cluster(s, ZONE, f"ns-{uuid.uuid4().hex[:6]}", "netns")
        host = hosts.host_ref(hosts.add_host(factory, {"netns": driver}, ZONE, cluster.name, "ns-release-router",
                                             "netns://local"))
        uid = uuid.uuid4().int >> 66
        network = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/n-{uid}"
        vm = VmSpec(uid, "r-release", "r-release", 1, 256, (), (
            NicSpec("eth0", "42:02:00:00:00:01", dataplane.PUBLIC, None),
            NicSpec("eth1", "42:01:0a:00:00:01", "sub", "10.0.0.1")),
            {"gstack-systemvm-role": "router", "gstack-network": network})
        driver.spawn(host, vm)
        internet, veth = dataplane.internet_names(f"{state}#{host.id}")
        made = {netns_links.namespace(uid), internet, veth, driver.bridge_of(host, dataplane.PUBLIC),
                driver.bridge_of(host, network)}
        assert everything() & made == made
        # the router reaches the simulated internet over the public bridge
        assert in_ns(str(uid), "ping", "-c", "1", "-W", "2", dataplane.INTERNET_ADDRESS).returncode == 0
        driver.release_host(host)
        assert everything() & made == set()
        shutil.rmtree(state, ignore_errors=True)
