"""netns guests that really run: a ``gstack serve`` with a netns host, driven with
google-api-python-client; what the guests do is checked from inside their namespaces with the real
tools (ping, the ssh client against the guest's sshd, nsenter for the hostname).

Needs root, iproute2, openssh (client and server) and ping; skipped with the reason elsewhere.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.sync.client import connect

from core.hypervisors.netns import links as netns_links
from core.hypervisors.netns.agent import Metadata, ssh_keys
from tests.conftest import PROJECT, ZONE, console_ticket, read_until, running_server, wait_op
from tests.helpers.netns import (
    GUEST_TOOLS,
    add_netns_host,
    in_ns,
    instance,
    made_by,
    missing,
    serial,
    standalone_host,
    vm_on,
)

pytestmark = pytest.mark.xdist_group("netns")


WHY = missing(GUEST_TOOLS, "the netns guest tests")
needs_root = pytest.mark.skipif(WHY is not None, reason=WHY or "")


def guest_hostname(uid: str) -> str:
    """The hostname the guest's processes see (its own UTS namespace), read through one of them."""
    pid = netns_links.pids(netns_links.namespace(int(uid)))[0]
    return subprocess.run(["nsenter", "-t", str(pid), "-u", "hostname"], capture_output=True, text=True,
                          check=True).stdout.strip()


def ours() -> set[str]:
    """The namespaces and links of the netns driver on this machine (tests compare the names their
    own guests have: other tests may make theirs meanwhile)."""
    names = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    for line in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines():
        names.add(line.split(":")[1].strip().split("@")[0])
    return {n for n in names if n.startswith((netns_links.NAMESPACE_PREFIX, netns_links.VETH_PREFIX,
                                              netns_links.BRIDGE_PREFIX))}


def bridge_of(data_dir: str, uid: str) -> str:
    with open(os.path.join(data_dir, "netns", "vms", uid, "vm.json")) as f:
        bridge: str = json.load(f)["nics"][0]["bridge"]
        return bridge


@pytest.fixture
def keys() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="gstack-netns-keys-")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(folder, "id")], check=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def ssh(from_uid: str, key: str, user: str, ip: str) -> subprocess.CompletedProcess[str]:
    return in_ns(from_uid, "ssh", "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                 f"{user}@{ip}", "hostname")


@needs_root
def test_two_guests_boot_talk_and_leave_nothing(keys: str) -> None:
    with open(os.path.join(keys, "id.pub")) as f:
        pub = f.read().strip()
    expired = json.dumps({"userName": "bob", "expireOn": "2020-01-01T00:00:00+0000"})
    with running_server("sqlite") as server:
        add_netns_host(server.database_url, server.data_dir)
        gce = server.gce()
        ops = [gce.instances().insert(project=PROJECT, zone=ZONE, body=instance("ns-a", {
                   "ssh-keys": f"alice:{pub} alice\nbob:{pub} google-ssh {expired}", "serial-port-enable": "TRUE",
                   "startup-script": "#!/bin/bash\necho hello from $(hostname)"})).execute(),
               gce.instances().insert(project=PROJECT, zone=ZONE, body=instance("ns-b", {
                   "shutdown-script": "echo goodbye"})).execute()]
        for op in ops:
            assert "error" not in wait_op(gce, op)
        a, b = (gce.instances().get(project=PROJECT, zone=ZONE, instance=n).execute() for n in ("ns-a", "ns-b"))
        ip_a, ip_b = (i["networkInterfaces"][0]["networkIP"] for i in (a, b))
        assert a["status"] == b["status"] == "RUNNING"

        # each in its namespace with its own hostname (the host's stays its own)
        assert guest_hostname(a["id"]) == "ns-a" and guest_hostname(b["id"]) == "ns-b"
        assert socket.gethostname() not in ("ns-a", "ns-b")
        assert in_ns(a["id"], "ip", "-4", "-o", "addr", "show", "eth0").stdout.count(ip_a) == 1
        # they reach each other over their network's bridge
        assert in_ns(a["id"], "ping", "-c", "1", "-W", "2", ip_b).returncode == 0
        assert in_ns(b["id"], "ping", "-c", "1", "-W", "2", ip_a).returncode == 0
        # sshd takes the key the metadata gave alice; bob's expired
        done = ssh(b["id"], os.path.join(keys, "id"), "alice", ip_a)
        assert (done.returncode, done.stdout.strip()) == (0, "ns-a"), done.stderr + serial(gce, "ns-a", "", 0)
        assert ssh(b["id"], os.path.join(keys, "id"), "bob", ip_a).returncode != 0
        assert "startup-script: hello from ns-a" in serial(gce, "ns-a", "hello from ns-a")

        # the serial console through the console proxy's WebSocket: the guest's boot log and its
        # startup-script's output, and its getty answering what is typed
        resp = console_ticket(server, ZONE, "ns-a")
        assert resp.status_code == 200, resp.text
        with connect(resp.json()["url"], open_timeout=30) as ws:
            shown = read_until(ws, "startup-script exit status 0")
            assert "GCE Agent Started." in shown and "startup-script: hello from ns-a" in shown, shown
            ws.send("root\r")
            read_until(ws, "root\r\nPassword: ")
            ws.send("hunter2\r")
            read_until(ws, "Login incorrect\r\nns-a login: ")
        console_log = serial(gce, "ns-a", "Login incorrect")
        assert "root\r\nPassword: \r\nLogin incorrect" in console_log and "hunter2" not in console_log

        # stop: shutdown-script runs, the processes go, the namespace stays
        assert "error" not in wait_op(gce, gce.instances().stop(project=PROJECT, zone=ZONE, instance="ns-b").execute())
        assert "shutdown-script: goodbye" in serial(gce, "ns-b", "goodbye")
        assert netns_links.namespace_exists(netns_links.namespace(int(b["id"])))
        assert netns_links.pids(netns_links.namespace(int(b["id"]))) == []

        # delete: the namespace and its veth go
        of_a = {netns_links.namespace(int(a["id"])), netns_links.veth(int(a["id"]), 0)}
        of_b = {netns_links.namespace(int(b["id"])), netns_links.veth(int(b["id"]), 0)}
        bridge = {bridge_of(server.data_dir, a["id"]), bridge_of(server.data_dir, b["id"])}
        assert len(bridge) == 1 and of_a | of_b | bridge <= ours()  # one network, one bridge
        assert "error" not in wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance="ns-a").execute())
        assert ours() & (of_a | of_b | bridge) == of_b | bridge
        # the zone's virtual router may run on the netns host too: it goes at shutdown as well
        everything = made_by(server.data_dir)
    # gstack serve stopped: the stopped guest, the bridge and anything else the driver made went with it
    assert of_b | bridge <= everything and ours() & everything == set()


def test_ssh_keys_as_google_guest_agent_reads_them() -> None:
    """Instance and project keys, block-project-ssh-keys, expired and malformed entries."""
    future = json.dumps({"userName": "c", "expireOn": "2999-01-01T00:00:00+0000"})
    past = json.dumps({"userName": "d", "expireOn": "2001-01-01T00:00:00+0000"})
    instance = {"ssh-keys": f"a:ssh-ed25519 AAAA a\nc:ssh-ed25519 CCCC google-ssh {future}\n"
                            f"d:ssh-ed25519 DDDD google-ssh {past}\nnot a key line\n:ssh-ed25519 EEEE"}
    project = {"ssh-keys": "b:ssh-ed25519 BBBB b\na:ssh-ed25519 AAA2 a2"}
    assert ssh_keys(instance, project) == {"a": ["ssh-ed25519 AAAA a", "ssh-ed25519 AAA2 a2"],
                                           "c": [f"ssh-ed25519 CCCC google-ssh {future}"],
                                           "b": ["ssh-ed25519 BBBB b"]}
    blocked = {**instance, "block-project-ssh-keys": "TRUE"}
    assert set(ssh_keys(blocked, project)) == {"a", "c"}


@needs_root
def test_removing_the_host_removes_what_it_made() -> None:
    """``release_host`` (``gstack admin host remove``): the VMs' namespaces, veths and bridges go."""
    with standalone_host("ns-release") as (factory, driver, host, _):
        vm = vm_on(factory, host, "vm-release", "10.0.0.2")
        driver.spawn(host, vm)
        made = {netns_links.namespace(vm.uid), netns_links.veth(vm.uid, 0), driver.bridge_of(host, "default")}
        assert ours() & made == made
        driver.release_host(host)
        assert ours() & made == set() and driver.list_instances(host) == {}


class _StandIn(http.server.BaseHTTPRequestHandler):
    """The metadata server's side of what the agent relies on (Metadata-Flavor, recursive JSON, an
    ETag, wait_for_change against last_etag); the real one, through the virtual router, is
    test_netns_dataplane's."""

    tree: dict = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        query = parse_qs(urlsplit(self.path).query)
        assert self.headers["Metadata-Flavor"] == "Google" and query["recursive"] == ["true"]
        if query.get("wait_for_change") == ["true"]:
            deadline = time.monotonic() + float(query["timeout_sec"][0])
            while self._etag() == query["last_etag"][0] and time.monotonic() < deadline:
                time.sleep(0.01)
        body = json.dumps(self.tree).encode()
        self.send_response(200)
        self.send_header("ETag", self._etag())
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _etag(self) -> str:
        return hashlib.sha256(json.dumps(self.tree).encode()).hexdigest()[:16]

    def log_message(self, *args: object) -> None:
        pass


def test_the_agent_follows_the_metadata_server_with_hanging_gets() -> None:
    _StandIn.tree = {"instance": {"attributes": {"ssh-keys": "a:ssh-ed25519 AAAA"}}, "project": {"attributes": {}}}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    metadata = Metadata({"metadata_url": f"http://127.0.0.1:{server.server_address[1]}", "metadata": {}})
    metadata.read_at_boot()
    assert metadata.instance == {"ssh-keys": "a:ssh-ed25519 AAAA"} and metadata.etag
    seen: list[dict[str, str]] = []
    stopping = threading.Event()
    watcher = threading.Thread(target=metadata.watch, args=(lambda: seen.append(dict(metadata.instance)), stopping),
                               daemon=True)
    watcher.start()
    time.sleep(0.1)
    assert seen == []  # hanging: nothing changed
    _StandIn.tree = {"instance": {"attributes": {"ssh-keys": "b:ssh-ed25519 BBBB"}}, "project": {"attributes": {}}}
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen == [{"ssh-keys": "b:ssh-ed25519 BBBB"}]
    stopping.set()
    _StandIn.tree = {}  # ends the hanging GET the watcher is in
    watcher.join(5)
    assert not watcher.is_alive()
    server.shutdown()
