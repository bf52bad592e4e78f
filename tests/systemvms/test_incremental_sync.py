"""Incremental router syncs: after random instance changes, each synced by rendering only the files
of the instances it names, what the router holds equals a fresh full render, and the tools accept it."""

from __future__ import annotations

import copy
import random

import orjson
import pytest
from sqlalchemy import event, select

from core.db import write_session
from core.hypervisors.base import HostRef
from core.models import Host, Operation, SimDomain, SimVmFile, SystemVm, Zone
from core.models.systemvm import RouterGuest, RouterSyncState
from core.resources import store
from core.resources.context import Call
from core.services import instances
from core.services.host_monitor import HostMonitor
from core.systemvms import guests, nat, pushes, router, sync
from tests.systemvms.conftest import check_all

pytestmark = pytest.mark.xdist_group("systemvms-render")
ZONES = ("us-central1-a", "us-central1-b")
TAGS = ("web", "db", "blue")


def held(cloud) -> dict[str, str]:
    """The files the router holds: a removed instance's are gone, not left empty."""
    with cloud.factory() as s:
        return {f.path: f.content for f in s.scalars(select(SimVmFile).where(SimVmFile.vm_uid == cloud.router().uid))}


def set_router_state(cloud, state: str) -> None:
    """The simulated domain of the router: "stopped" under gstack's feet (a push to it fails), or running again."""
    with write_session(cloud.factory) as s:
        s.scalar(select(SimDomain).where(SimDomain.instance_uid == cloud.router().uid)).state = state


def full_passes(cloud) -> float:
    with cloud.factory() as s:
        return s.get(RouterSyncState, cloud.router().uid).full_at


def set_tags(cloud, name: str, zone: str, tags: list[str]) -> None:
    with write_session(cloud.factory) as s:
        z = s.scalar(select(Zone).where(Zone.name == zone))
        fingerprint = store.body_of(store.find(s, cloud.project, "instances", f"zones/{zone}", name))["tags"]["fingerprint"]
        instances.set_tags(Call(s, cloud.project, "test"), z, name, {"items": tags, "fingerprint": fingerprint})
    cloud.run_jobs()


def test_random_changes_keep_the_router_equal_to_a_full_render(cloud):
    rng = random.Random(15)
    cloud.add("firewalls", "web-from-db", {"network": cloud.network, "priority": 1000, "sourceTags": ["db"],
                                           "targetTags": ["web"], "allowed": [{"IPProtocol": "tcp", "ports": ["80"]}]})
    live: dict[str, str] = {}  # name -> zone
    for i in range(4):
        live[f"vm-{i}"] = ZONES[i % 2]
        cloud.instance(f"vm-{i}", zone=live[f"vm-{i}"], tags=tuple(rng.sample(TAGS, 1)), external=i == 0)
    first_full = full_passes(cloud)
    for step in range(8):
        action = rng.choice(("insert", "delete", "tags", "stop"))
        name = rng.choice(sorted(live))
        if action == "insert" or len(live) < 2:
            name, zone = f"new-{step}", rng.choice(ZONES)
            cloud.instance(name, zone=zone, tags=tuple(rng.sample(TAGS, rng.randint(0, 2))), external=rng.random() < 0.3)
            live[name] = zone
        elif action == "delete":
            cloud.delete_instance(name, live.pop(name))
        elif action == "tags":
            set_tags(cloud, name, live[name], rng.sample(TAGS, rng.randint(0, 2)))
        else:
            cloud.power(name, "stop", live[name])
    for i in range(3):  # a burst: one sync names them all
        live[f"burst-{i}"] = "us-central1-a"
        cloud.instance(f"burst-{i}", tags=("web",), run=False)
    cloud.run_jobs()
    assert full_passes(cloud) == first_full  # every one of those syncs was incremental
    files = held(cloud)
    assert files == cloud.rendered()
    check_all(files)
    assert len([p for p in files if p.startswith(guests.DHCP_DIR)]) == len(live)

    # A change of the network's context (a new tag rule renames the sets) renders every instance again.
    cloud.add("firewalls", "blue-out", {"network": cloud.network, "priority": 100, "direction": "EGRESS",
                                        "targetTags": ["blue"], "denied": [{"IPProtocol": "udp", "ports": ["53"]}]})
    cloud.sync()
    assert full_passes(cloud) > first_full
    files = held(cloud)
    assert files == cloud.rendered()
    check_all(files)
    assert "fw0_to" in files[router.NFTABLES]


def set_hostname(cloud, name: str, hostname: str) -> int:
    """Change the instance's row (its DNS file names the hostname) without asking for a sync: its uid."""
    with write_session(cloud.factory) as s:
        res = store.find(s, cloud.project, "instances", "zones/us-central1-a", name)
        body = store.body_of(res)
        body["hostname"] = hostname
        res.body = orjson.dumps(body).decode()
        return res.uid


def statements_of(cloud, work) -> int:
    """How many statements ``work(session)`` sends, in a transaction of its own (its BEGIN and COMMIT
    not counted)."""
    engine = cloud.factory.kw["bind"]
    sent: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with write_session(cloud.factory) as s:
            work(s)
            s.flush()
            before_commit = len(sent)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return before_commit


def test_requests_join_the_pending_sync_in_one_statement_naming_their_instances(cloud):
    """A request made while one is pending joins it in one statement (the database adds the
    instance to those it names, once); the sync then renders every instance named, so each change
    reaches the router."""
    cloud.instance("named-1")
    cloud.instance("named-2")
    first, second = set_hostname(cloud, "named-1", "one.example.com"), set_hostname(cloud, "named-2", "two.example.com")
    assert statements_of(cloud, lambda s: sync.request_sync(s, cloud.project, cloud.network, first)) >= 2
    for uid in (second, first, second):  # each in a transaction of its own
        assert statements_of(cloud, lambda s, uid=uid: sync.request_sync(s, cloud.project, cloud.network, uid)) == 1
    with write_session(cloud.factory) as s:  # and several in one: the request's row changes once, at flush
        for uid in (first, second, None):
            sync.request_sync(s, cloud.project, cloud.network, uid)
    with cloud.factory() as s:
        pending = list(s.scalars(select(Operation).where(Operation.job == sync.SYNC_JOB, Operation.status == "PENDING",
                                                         Operation.params.contains(cloud.network))))
    assert len(pending) == 1 and pending[0].progress == 0
    assert sorted(orjson.loads(pending[0].params)[sync.INSTANCES]) == sorted([first, second])
    cloud.run_jobs()
    files = held(cloud)
    assert "one.example.com" in files[guests.paths(first)[1]] and "two.example.com" in files[guests.paths(second)[1]]
    assert files == cloud.rendered()
    check_all(files)
    for name in ("named-1", "named-2"):
        cloud.delete_instance(name)


def test_host_monitor_reconciles_in_full_only_when_a_host_is_out_of_step(cloud):
    """Between slow rounds the monitor compares a light summary of each host; a VM that stopped
    outside gstack puts its host out of step, and that round corrects the instance."""
    cloud.instance("watched")
    with cloud.factory() as s:
        res = store.find(s, cloud.project, "instances", "zones/us-central1-a", "watched")
        uid, host_id = res.uid, res.host_id
    monitor = HostMonitor(cloud.factory, cloud.drivers)
    monitor.run_once(force=True)  # a slow round: every host in full
    host = next(h for h in hosts_of(cloud) if h.id == host_id)
    assert monitor.in_step(cloud.drivers.get("simulator"), host)
    with write_session(cloud.factory) as s:
        s.scalar(select(SimDomain).where(SimDomain.instance_uid == uid)).state = "shutoff"
    assert not monitor.in_step(cloud.drivers.get("simulator"), host)
    events = monitor.run_once()  # a fast round
    assert [e.kind for e in events if e.instance and e.instance.endswith("/watched")] == ["drift"]
    assert cloud.body("watched")["status"] == "TERMINATED"
    assert monitor.in_step(cloud.drivers.get("simulator"), host)


def hosts_of(cloud) -> list[HostRef]:
    with cloud.factory() as s:
        return [HostRef(h.id, h.name, h.uri) for h in s.scalars(select(Host))]


def test_a_view_rendered_before_is_not_rendered_again(cloud, monkeypatch):
    """An instance's change leaves the router's view as it was: the main files are those of the last
    render of that view, not rendered afresh; a view that differs in anything is rendered again
    (a NAT's subnetworks, a frozenset, are compared too)."""
    cloud.instance("kept")
    renders: list[router.RouterView] = []
    monkeypatch.setattr(pushes, "render_view", lambda v: renders.append(v) or router.render_view(v))
    with cloud.factory() as s:
        vm = s.get(SystemVm, cloud.router().id)
        v = router.view(s, vm)
    first = pushes._render(vm.uid, v)
    renders.clear()
    assert pushes._render(vm.uid, copy.deepcopy(v)) == first and not renders
    assert first[0] == router.render_view(v)
    v.nat_gateways.append(nat.Gateway("nat-router", "nat-1", ("203.0.113.9",), frozenset({"sub"})))
    files, digests = pushes._render(vm.uid, v)
    assert len(renders) == 1 and files == router.render_view(v)
    assert files[router.NFTABLES] != first[0][router.NFTABLES] and digests != first[1]


def test_the_renders_kept_are_bounded_by_their_size():
    """The oldest render goes first once the views and files kept pass the bound; a render larger
    than the whole bound is not kept; a router rendered again replaces its own."""
    kept = pushes._Renders(100)
    kept.put(1, b"k1", {"a": "x" * 40}, {"a": "d1"})
    kept.put(2, b"k2", {"a": "y" * 40}, {"a": "d2"})
    assert kept.get(1, b"k1") == ({"a": "x" * 40}, {"a": "d1"}) and kept.get(1, b"other") is None
    kept.put(3, b"k3", {"a": "z" * 40}, {"a": "d3"})  # 1 was read last: 2 goes
    assert kept.get(2, b"k2") is None and kept.get(1, b"k1") is not None and kept.get(3, b"k3") is not None
    kept.put(3, b"k3b", {"a": "w"}, {"a": "d4"})
    assert kept.get(3, b"k3") is None and kept.get(3, b"k3b") == ({"a": "w"}, {"a": "d4"})
    kept.put(4, b"k4", {"a": "v" * 200}, {"a": "d5"})
    assert kept.get(4, b"k4") is None and kept.size == sum(item[3] for item in kept.items.values()) <= 100


def test_a_removal_the_router_missed_is_done_by_the_next_full_pass(cloud):
    """A deleted instance's files leave the router; when the push that removes them fails, the router
    keeps its record of the instance, and the next full pass removes them."""
    cloud.instance("stays")
    cloud.instance("goes")
    cloud.instance("goes-too")
    goes, goes_too = (int(cloud.body(name)["id"]) for name in ("goes", "goes-too"))
    cloud.delete_instance("goes")
    files = held(cloud)
    assert files == cloud.rendered() and not [p for p in files if str(goes) in p]

    set_router_state(cloud, "stopped")
    cloud.delete_instance("goes-too")  # its sync's push fails
    assert len([p for p in held(cloud) if str(goes_too) in p]) == 3
    with cloud.factory() as s:
        assert s.scalar(select(RouterGuest.domain).where(RouterGuest.instance_uid == goes_too)) == ""
        assert (s.get(SystemVm, cloud.router().id).last_error or "").startswith("configuration push failed")
    set_router_state(cloud, "running")
    with write_session(cloud.factory) as s:  # as when RECONCILE_SECONDS have passed
        s.get(RouterSyncState, cloud.router().uid).full_at = 0.0
    cloud.sync()
    files = held(cloud)
    assert files == cloud.rendered() and not [p for p in files if str(goes_too) in p]
    with cloud.factory() as s:
        assert s.scalar(select(RouterGuest).where(RouterGuest.instance_uid.in_([goes, goes_too]))) is None
