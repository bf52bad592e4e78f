"""System VMs in a real ``gstack serve``: its workers deploy and sync routers, the API never shows them,
the serial console works over a real WebSocket, and a router whose host fails comes back elsewhere."""

from __future__ import annotations

import time

import pytest
import requests
from googleapiclient.errors import HttpError
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from core.models import Host, Operation, Resource, SimVmFile, SystemVm
from core.systemvms import guests, router, vms
from tests.conftest import (
    BACKENDS,
    PROJECT,
    console_ticket,
    read_until,
    running_server,
    wait_op,
)
from tests.systemvms.conftest import backend_servers, check_all, check_with

ZONE = "us-central1-a"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"
NETWORK = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/default"

# One worker runs the module: its tests share a server and build on each other.
pytestmark = pytest.mark.xdist_group("systemvms-server")


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request):
    # No watchdog thread in the server: its rounds would race the ones the tests run themselves.
    with running_server(request.param, GSTACK_SYSTEMVM_CHECK_INTERVAL="0") as server:
        yield server


@pytest.fixture(scope="module")
def gce(srv):
    return srv.gce()


def until(what, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def db(srv) -> Session:
    if not hasattr(srv, "_engine"):
        srv._engine = srv.engine()
    return Session(srv._engine)


def set_host_status(srv, host_id: int, status: str) -> None:
    """One UPDATE, its transaction's first statement: on SQLite it waits for the write lock (the
    busy timeout). Read first in the same transaction, the row's write could not upgrade the
    read once the server had written since ("database is locked" at once, no wait)."""
    with db(srv) as s:
        s.execute(update(Host).where(Host.id == host_id).values(status=status))
        s.commit()


def router_row(srv) -> SystemVm | None:
    with db(srv) as s:
        return s.scalar(select(SystemVm).where(SystemVm.network_url == NETWORK, SystemVm.region == "us-central1"))


def synced(srv) -> SystemVm | None:
    vm = router_row(srv)
    return vm if vm is not None and vm.state == "Running" and vm.pushed_version == vm.config_version else None


def pushed(srv, uid: int) -> dict[str, SimVmFile]:
    with db(srv) as s:
        return {f.path: f for f in s.scalars(select(SimVmFile).where(SimVmFile.vm_uid == uid))}


def host_of(srv, uid: int) -> int | None:
    with db(srv) as s:
        return s.scalar(select(Resource.host_id).where(Resource.uid == uid))


def insert_instance(gce, name: str, tags: list[str]) -> None:
    wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body={
        "name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro", "tags": {"items": tags},
        "metadata": {"items": [{"key": "serial-port-enable", "value": "TRUE"}]},
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
        "networkInterfaces": [{"network": "global/networks/default"}]}).execute())


def test_router_deployed_and_synced_by_the_server(srv, gce):
    insert_instance(gce, "web-1", ["web"])
    out = srv.admin("systemvm", "sync", "--project", PROJECT, "--network", "default", "--wait", "30").stdout
    assert "done" in out
    vm = until("the router to run with its configuration", lambda: synced(srv))
    files = pushed(srv, vm.uid)
    own = {p for p in files if p.startswith("/etc/gstack/") and p != router.ROUTES}  # web-1's files
    assert set(files) - own == {router.DNSMASQ, router.NFTABLES, router.HAPROXY, router.SYSCTL, router.ROUTES}
    assert len(own) == 3
    check_all({p: f.content for p, f in files.items()})
    assert f"42:01:0a:80:00:02,set:dom.{ZONE}.{PROJECT},10.128.0.2,web-1,infinite" in [
        line for p in own if p.startswith(guests.DHCP_DIR) for line in files[p].content.splitlines()]

    # A firewall rule made through the API reaches the router: only nftables and the file of the
    # instance its tag targets are pushed again.
    before = {p: f.writes for p, f in files.items()}
    wait_op(gce, gce.firewalls().insert(project=PROJECT, body={
        "name": "deny-web-ssh", "network": "global/networks/default", "priority": 100, "targetTags": ["web"],
        "denied": [{"IPProtocol": "tcp", "ports": ["22"]}], "sourceRanges": ["0.0.0.0/0"]}).execute())
    until("the firewall rule on the router", lambda: "deny-web-ssh" in pushed(srv, vm.uid)[router.NFTABLES].content)
    until("the push to be recorded", lambda: synced(srv))
    after = {p: f.writes for p, f in pushed(srv, vm.uid).items()}
    nft_file = next(p for p in own if p.startswith(guests.NFT_DIR))
    assert after == {**before, router.NFTABLES: before[router.NFTABLES] + 1, nft_file: before[nft_file] + 1}
    assert 'ip daddr @fw0_to tcp dport 22 counter drop comment "deny-web-ssh p100"' in \
        pushed(srv, vm.uid)[router.NFTABLES].content
    assert "add element ip gstack_filter fw0_to { 10.128.0.2 }" in pushed(srv, vm.uid)[nft_file].content

    listing = srv.admin("systemvm", "list").stdout
    assert vm.name in listing and "Running" in listing


def test_load_balancer_made_through_the_api_reaches_the_router(srv, gce):
    vm = until("the router", lambda: synced(srv))
    for name in ("web-2", "web-3"):
        insert_instance(gce, name, ["web"])
    base = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}"
    wait_op(gce, gce.httpHealthChecks().insert(project=PROJECT, body={
        "name": "hc", "port": 8080, "requestPath": "/healthz"}).execute())
    wait_op(gce, gce.targetPools().insert(project=PROJECT, region="us-central1", body={
        "name": "pool", "instances": [f"{base}/zones/{ZONE}/instances/web-{i}" for i in (1, 2, 3)],
        "healthChecks": [f"{base}/global/httpHealthChecks/hc"]}).execute())
    wait_op(gce, gce.forwardingRules().insert(project=PROJECT, region="us-central1", body={
        "name": "www", "IPProtocol": "TCP", "portRange": "80",
        "target": f"{base}/regions/us-central1/targetPools/pool"}).execute())
    rule = gce.forwardingRules().get(project=PROJECT, region="us-central1", forwardingRule="www").execute()

    def servers() -> list[str]:
        cfg = pushed(srv, vm.uid)[router.HAPROXY].content
        return backend_servers(cfg, "tp-pool") if "backend tp-pool" in cfg else []

    until("three backends on the router", lambda: servers() == ["web-1", "web-2", "web-3"])
    cfg = pushed(srv, vm.uid)[router.HAPROXY].content
    check_with("haproxy", cfg)
    assert f"frontend fr-www\n    bind {rule['IPAddress']}:80\n" in cfg and "check port 8080" in cfg
    wait_op(gce, gce.targetPools().removeInstance(project=PROJECT, region="us-central1", targetPool="pool", body={
        "instances": [{"instance": f"{base}/zones/{ZONE}/instances/web-2"}]}).execute())
    until("the removed backend gone", lambda: servers() == ["web-1", "web-3"])
    check_with("haproxy", pushed(srv, vm.uid)[router.HAPROXY].content)


def test_system_vms_never_show_in_the_api(srv, gce):
    vm = until("the router", lambda: router_row(srv))
    names = [i["name"] for scoped in gce.instances().aggregatedList(project=PROJECT).execute()["items"].values()
             for i in scoped.get("instances", [])]
    assert vm.name not in names and "web-1" in names
    ops = gce.globalOperations().list(project=PROJECT).execute().get("items", [])
    assert not [o for o in ops if o["operationType"].startswith("systemvms")]
    with pytest.raises(HttpError) as exc:
        gce.instances().list(project=vms.SYSTEM_PROJECT, zone=ZONE).execute()
    assert exc.value.resp.status == 403
    with db(srv) as s:
        assert s.scalar(select(Operation.project).where(Operation.job.like("systemvms.%")).limit(1)) \
            == vms.SYSTEM_PROJECT


def ticket(srv, instance: str, token: str | None = None) -> requests.Response:
    return console_ticket(srv, ZONE, instance, token)


def test_interactive_serial_console_over_a_websocket(srv, gce):
    resp = ticket(srv, "web-1")
    if resp.status_code == 404 and "/console/tickets" in resp.text:
        pytest.fail("the console is not routed: gstack/app.py needs `console.register(app)` (gstack/console.py)")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["proxy"] == f"v-{ZONE}" and body["url"].startswith(srv.base.replace("http", "ws"))
    with connect(body["url"], open_timeout=20) as ws:
        assert read_until(ws, "port 1").startswith(f"serialport: Connected to {PROJECT}.{ZONE}.web-1 port 1")
        ws.send("\r")
        read_until(ws, "web-1 login: ")
        ws.send("root\r")
        read_until(ws, "Password: ")
        ws.send("hunter2\r")
        read_until(ws, "root@web-1:~# ")
        ws.send("hostname\r")
        assert "hostname\r\nweb-1\r\n" in read_until(ws, "web-1\r\nroot@web-1:~# ")
    output = gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance="web-1").execute()["contents"]
    assert "root@web-1:~# hostname\r\nweb-1" in output and "hunter2" not in output
    with pytest.raises(InvalidStatus) as exc:  # a ticket opens one session
        connect(body["url"], open_timeout=10)
    assert exc.value.response.status_code == 403
    # the operator's way to a ticket
    url = srv.admin("systemvm", "console-ticket", "--project", PROJECT, "--zone", ZONE, "--instance", "web-1",
                    "--base-url", srv.base).stdout.strip()
    with connect(url, open_timeout=10) as ws:
        read_until(ws, "port 1")
    # no token, and an instance without serial port access
    assert requests.post(srv.base + "/console/tickets", json={}, timeout=10).status_code == 401
    wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body={
        "name": "closed-1", "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}]}).execute())
    refused = ticket(srv, "closed-1")
    assert refused.status_code == 403 and "serial-port-enable" in refused.json()["error"]["message"]


def test_router_comes_back_when_its_host_fails(srv, gce):
    vm = until("the router", lambda: synced(srv))
    old = host_of(srv, vm.uid)
    with db(srv) as s:
        host_name = s.get(Host, old).name
    srv.admin("host", "set-status", host_name, "Down")
    try:
        out = srv.admin("systemvm", "check").stdout  # the watchdog's round; the server's workers redeploy
        assert vm.name in out and "Down" in out
        until("the router on another host", lambda: host_of(srv, vm.uid) not in (None, old))
        new = host_of(srv, vm.uid)
        # The router row may read synced before the redeploy's push lands: wait for the files too.
        until("its files pushed to the new host",
              lambda: {f.host_id for f in pushed(srv, vm.uid).values()} == {new})
        moved = until("its configuration pushed again", lambda: synced(srv))
        files = pushed(srv, vm.uid)
        assert {f.host_id for f in files.values()} == {new} and moved.state == "Running"
        assert "deny-web-ssh" in files[router.NFTABLES].content
    finally:
        srv.admin("host", "set-status", host_name, "Up")


def test_watchdog_thread_acts_without_anyone_asking(srv):
    """start_watchdog as gstack serve would run it (here beside the server, on its database)."""
    from sqlalchemy.orm import sessionmaker

    from core.hypervisors.registry import default_registry
    from core.systemvms.watchdog import start_watchdog

    vm = until("the router", lambda: synced(srv))
    old = host_of(srv, vm.uid)
    sessions = sessionmaker(bind=srv.engine(), expire_on_commit=False)
    dog = start_watchdog(sessions, default_registry(sessions), interval=0.5)
    try:
        set_host_status(srv, old, "Down")
        until("the router on another host", lambda: host_of(srv, vm.uid) not in (None, old))
        until("its files pushed to the new host",
              lambda: {f.host_id for f in pushed(srv, vm.uid).values()} == {host_of(srv, vm.uid)})
        until("its configuration pushed again", lambda: synced(srv))
        assert {f.host_id for f in pushed(srv, vm.uid).values()} == {host_of(srv, vm.uid)}
    finally:
        dog.stop()
        set_host_status(srv, old, "Up")


def test_operator_restart_and_destroy(srv):
    vm = until("the router", lambda: synced(srv))
    writes = {p: f.writes for p, f in pushed(srv, vm.uid).items()}
    assert "done" in srv.admin("systemvm", "restart", vm.name, "--wait", "30").stdout
    assert {p: f.writes for p, f in pushed(srv, vm.uid).items()} == {p: n + 1 for p, n in writes.items()}
    assert "done" in srv.admin("systemvm", "destroy", vm.name, "--wait", "30").stdout
    assert router_row(srv) is None
    srv.admin("systemvm", "sync", "--project", PROJECT, "--network", "default", "--wait", "30")
    fresh = until("a new router", lambda: synced(srv))
    assert fresh.uid != vm.uid
