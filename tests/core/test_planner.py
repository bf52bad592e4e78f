"""core.planner on a real database: first fit over a zone's Up hosts by vCPUs and memory after the
cluster's over-provisioning factors, storage pools the same way, usage read from the resources
placed (its counters kept by triggers), and ``None`` when the zone has no room.

The seeded zone us-central1-a has four simulator hosts of 32 vCPUs and 128 GiB (their cluster
over-provisions CPU 4x and memory 1x) and one zone-wide pool of 20480 GB (2x).
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core import planner
from core.db import writing
from core.models import CapacityUsage, Cluster, Host, Pod, Resource, StoragePool
from tests.helpers.core import add_resource, zone_id

ZONE = "us-central1-a"
HOST_VCPUS = 32 * 4  # after the cluster's 4x CPU over-provisioning
HOST_MB = 128 * 1024  # memory is not over-provisioned
POOL_GB = 20480 * 2
PRIMARY = f"{ZONE}-primary"


def hosts(session: Session, zone: str = ZONE) -> list[Host]:
    return list(session.scalars(select(Host).where(Host.zone_id == zone_id(session, zone)).order_by(Host.id)))


def pool(session: Session, zone: str = ZONE) -> StoragePool:
    return session.scalars(select(StoragePool).where(StoragePool.zone_id == zone_id(session, zone))).one()


def name_of(found: Host | StoragePool | None) -> str | None:
    return found.name if found is not None else None


def place(session: Session, vcpus: int, memory_mb: int = 1024, **kwargs) -> str | None:
    """The name of the host planner.place_vm chooses in us-central1-a."""
    return name_of(planner.place_vm(session, zone_id(session, ZONE), vcpus, memory_mb, **kwargs))


def place_disk(session: Session, size_gb: int, zone: str = ZONE) -> str | None:
    """The name of the pool planner.place_disk chooses."""
    return name_of(planner.place_disk(session, zone_id(session, zone), size_gb))


def name(n: int) -> str:
    return f"sim-{ZONE}-{n:02d}"


def test_the_first_up_host_with_room_is_chosen(session):
    assert [h.name for h in hosts(session)] == [name(1), name(2), name(3), name(4)]
    assert place(session, 2, 4096) == name(1)


def test_cpu_is_over_provisioned_by_the_cluster_factor(session):
    assert place(session, HOST_VCPUS) == name(1)
    assert place(session, HOST_VCPUS + 1) is None
    session.scalars(select(Cluster).where(Cluster.zone_id == zone_id(session, ZONE))).one().cpu_overprovisioning = 8.0
    session.flush()
    assert place(session, 32 * 8) == name(1)
    assert place(session, 32 * 8 + 1) is None


def test_memory_is_over_provisioned_by_the_cluster_factor(session):
    assert place(session, 1, HOST_MB) == name(1)
    assert place(session, 1, HOST_MB + 1) is None
    session.scalars(select(Cluster).where(Cluster.zone_id == zone_id(session, ZONE))).one().memory_overprovisioning = 1.5
    session.flush()
    assert place(session, 1, HOST_MB * 3 // 2) == name(1)
    assert place(session, 1, HOST_MB * 3 // 2 + 1) is None


def test_what_placed_vms_hold_is_taken_from_their_host(session):
    first, second = hosts(session)[:2]
    add_resource(session, "instances", host_id=first.id, vcpus=HOST_VCPUS - 8, memory_mb=1024)
    add_resource(session, "instances", host_id=second.id, vcpus=2, memory_mb=HOST_MB - 2048)
    assert planner.host_usage(session, [first.id, second.id, hosts(session)[2].id]) == {
        first.id: (HOST_VCPUS - 8, 1024), second.id: (2, HOST_MB - 2048)}
    assert place(session, 9, 2048) == name(2)  # 8 vCPUs left on the first
    assert place(session, 9, 2049) == name(3)  # 2048 MB left on the second
    assert place(session, 8, HOST_MB - 1024) == name(1)
    assert place(session, 8, HOST_MB - 1023) == name(3)


def test_first_fit_not_best_fit(session):
    """The first host with room wins even when a later one would be filled tighter."""
    first, second = hosts(session)[:2]
    add_resource(session, "instances", host_id=first.id, vcpus=28, memory_mb=0)
    add_resource(session, "instances", host_id=second.id, vcpus=HOST_VCPUS - 10, memory_mb=0)
    assert place(session, 8) == name(1)


def test_hosts_not_up_are_never_chosen(session):
    first, second, third, fourth = hosts(session)
    first.status, second.status = "Down", "Maintenance"
    session.flush()
    assert place(session, 1) == name(3)
    third.status = fourth.status = "Down"
    session.flush()
    assert place(session, 1) is None


def test_an_exhausted_zone_places_nothing_and_other_zones_are_not_used(session):
    for host in hosts(session):
        add_resource(session, "instances", host_id=host.id, vcpus=HOST_VCPUS, memory_mb=0)
    assert place(session, 1) is None
    assert name_of(planner.place_vm(session, zone_id(session, "us-central1-b"), 1, 1024)) == "sim-us-central1-b-01"


def test_a_burst_is_placed_from_one_read_of_the_usage(session):
    capacity = planner.ZoneCapacity(session, zone_id(session, ZONE))
    placed = [capacity.place_vm(100, 1024) for _ in range(5)]
    assert [name_of(h) for h in placed] == [name(1), name(2), name(3), name(4), None]
    capacity.unplace_vm(hosts(session)[1], 100, 1024)
    assert name_of(capacity.place_vm(100, 1024)) == name(2)
    assert name_of(capacity.place_vm(28, 1024)) == name(1)  # what is left on each host still counts
    assert capacity.place_vm(29, 1024) is None


def test_excluded_hosts_are_skipped(session):
    first, second = hosts(session)[:2]
    assert place(session, 1, exclude=frozenset({first.id})) == name(2)
    assert place(session, 1, exclude=frozenset({first.id, second.id})) == name(3)


def test_the_previous_host_is_preferred_and_the_hypervisor_kind_kept(session):
    third = hosts(session)[2]
    assert place(session, 1, prefer=third.id) == name(3)
    add_resource(session, "instances", host_id=third.id, vcpus=HOST_VCPUS, memory_mb=0)
    assert place(session, 1, prefer=third.id) == name(1)  # full: the first fit of the same kind
    kvm = _libvirt_host(session)
    assert place(session, 1, prefer=kvm.id) == "kvm-test-1"
    add_resource(session, "instances", host_id=kvm.id, vcpus=8, memory_mb=0)
    assert place(session, 1, prefer=kvm.id) is None  # simulator hosts have room, but are not libvirt


def _libvirt_host(session: Session) -> Host:
    """A libvirt cluster (no CPU over-provisioning) with one 8-vCPU host, added to the zone."""
    zid = zone_id(session, ZONE)
    pod = session.scalars(select(Pod).where(Pod.zone_id == zid)).one()
    cluster = Cluster(pod_id=pod.id, zone_id=zid, name="kvm", hypervisor="libvirt", cpu_overprovisioning=1.0)
    session.add(cluster)
    session.flush()
    host = Host(cluster_id=cluster.id, zone_id=zid, name="kvm-test-1", uri="test:///default", cpus=8,
                memory_mb=8192, status="Up")
    session.add(host)
    session.flush()
    return host


def test_disks_take_the_first_up_pool_with_room_after_over_provisioning(session):
    primary = pool(session)
    assert place_disk(session, POOL_GB) == PRIMARY
    assert place_disk(session, POOL_GB + 1) is None
    add_resource(session, "disks", pool_id=primary.id, size_gb=POOL_GB - 100)
    assert planner.pool_usage(session, [primary.id]) == {primary.id: POOL_GB - 100}
    assert place_disk(session, 100) == PRIMARY
    assert place_disk(session, 101) is None
    session.add(StoragePool(zone_id=zone_id(session, ZONE), name="second", capacity_gb=500, overprovisioning=1.0,
                            status="Up"))
    session.flush()
    assert place_disk(session, 101) == "second"
    assert place_disk(session, 501) is None
    primary.status = "Maintenance"
    session.flush()
    assert place_disk(session, 50) == "second"


def test_pool_room_is_taken_as_a_burst_is_placed(session):
    capacity = planner.ZoneCapacity(session, zone_id(session, ZONE))
    primary = pool(session)
    assert [name_of(capacity.place_disk(POOL_GB // 4)) for _ in range(4)] == [PRIMARY] * 4
    assert capacity.place_disk(1) is None
    capacity.unplace_disk(primary, 10)
    assert name_of(capacity.place_disk(10)) == PRIMARY
    assert capacity.place_disk(11) is None
    assert place_disk(session, POOL_GB, "europe-west1-b") == "europe-west1-b-primary"  # a zone of its own


def _summed(session: Session) -> dict[tuple[str, int], tuple[int, int, int, int]]:
    """What each host and pool holds, summed over the resources placed on it (what the counters replace)."""
    out = {}
    for holder, column in (("host", Resource.host_id), ("pool", Resource.pool_id)):
        for holder_id, count, vcpus, memory, size in session.execute(
                select(column, func.count(), func.sum(Resource.vcpus), func.sum(Resource.memory_mb),
                       func.sum(Resource.size_gb)).where(column.is_not(None)).group_by(column)):
            out[(holder, holder_id)] = (count, vcpus or 0, memory or 0, size or 0) if holder == "host" else \
                (count, 0, 0, size or 0)
    return out


def _counted(session: Session) -> dict[tuple[str, int], tuple[int, int, int, int]]:
    return {(c.holder, c.holder_id): (c.count, c.vcpus, c.memory_mb, c.size_gb)
            for c in session.scalars(select(CapacityUsage).where(CapacityUsage.count != 0))}


def test_the_capacity_counters_follow_every_change_of_what_resources_hold(session):
    """Placing, moving, resizing, releasing and deleting, each in a flushed statement of its own:
    the triggers' counters equal the sums over the resources after every step."""
    first, second = hosts(session)[:2]
    primary = pool(session)
    vm = add_resource(session, "instances", host_id=first.id, vcpus=4, memory_mb=4096)
    disk = add_resource(session, "disks", pool_id=primary.id, size_gb=10)
    unplaced = add_resource(session, "instances", vcpus=2, memory_mb=2048)
    assert _counted(session) == _summed(session)
    steps = [lambda: setattr(vm, "host_id", second.id), lambda: setattr(vm, "vcpus", 8),
             lambda: setattr(disk, "size_gb", 50), lambda: setattr(unplaced, "host_id", first.id),
             lambda: setattr(vm, "host_id", None), lambda: setattr(disk, "pool_id", None),
             lambda: setattr(disk, "pool_id", primary.id), lambda: session.delete(unplaced),
             lambda: session.delete(disk)]
    for step in steps:
        step()
        session.flush()
        assert _counted(session) == _summed(session)
    assert planner.host_usage(session, [first.id, second.id]) == {}  # nothing left on either


def _committed(engine: Engine, collection: str, **columns: int) -> int:
    with Session(engine) as s, writing(s):
        return add_resource(s, collection, **columns).uid


def _remove(engine: Engine, uids: list[int]) -> None:
    with Session(engine) as s, writing(s):
        for res in s.scalars(select(Resource).where(Resource.uid.in_(uids))):
            s.delete(res)


def test_a_placement_waiting_for_another_sees_what_that_one_placed(engine):
    """Two transactions placing in one zone take turns, and the second decides on what the first
    committed: the host and the pool it filled are full for the second (on PostgreSQL, a read of the
    counters in the statement that waited for the hosts' lock would see them as they were before)."""
    made: list[int] = []
    seen: dict[str, str | None] = {}
    with Session(engine) as first, writing(first):
        zid = zone_id(first, ZONE)
        capacity = planner.ZoneCapacity(first, zid, disks=True)
        host, store = capacity.place_vm(HOST_VCPUS, 1024), capacity.place_disk(POOL_GB)
        assert host is not None and store is not None and host.name == name(1)
        made += [add_resource(first, "instances", host_id=host.id, vcpus=HOST_VCPUS, memory_mb=1024).uid,
                 add_resource(first, "disks", pool_id=store.id, size_gb=POOL_GB).uid]

        def second() -> None:
            with Session(engine) as s, writing(s):
                other = planner.ZoneCapacity(s, zid, disks=True)
                seen["host"], seen["pool"] = name_of(other.place_vm(1, 1024)), name_of(other.place_disk(1))
                s.rollback()

        waiting = threading.Thread(target=second)
        waiting.start()
        time.sleep(0.5)
        assert waiting.is_alive()  # it waits for the first (its lock on the hosts; SQLite's one writer)
    try:
        waiting.join(30)
        assert seen == {"host": name(2), "pool": None}
    finally:
        _remove(engine, made)


def test_the_hosts_are_locked_before_the_pools(engine):
    """PostgreSQL: a placement that waits for a pool another transaction holds (a disk's placement)
    holds the zone's hosts meanwhile, as every placing transaction takes them: hosts, then pools."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite's writers take turns")
    with Session(engine) as disk, writing(disk):
        zid = zone_id(disk, ZONE)
        assert place_disk(disk, 1) == PRIMARY  # the pool is locked

        def placing() -> None:
            with Session(engine) as s, writing(s):
                planner.ZoneCapacity(s, zid, disks=True).hosts()

        waiting = threading.Thread(target=placing)
        waiting.start()
        time.sleep(0.5)
        assert waiting.is_alive()
        with Session(engine) as probe, writing(probe), pytest.raises(OperationalError, match="could not obtain lock"):
            probe.execute(select(Host.id).where(Host.zone_id == zid).with_for_update(nowait=True)).all()
    waiting.join(30)
    assert not waiting.is_alive()


def test_a_placement_lets_rows_that_refer_to_a_host_go_on_and_holds_the_monitors_claim(engine):
    """PostgreSQL: while a placement holds the zone's hosts, a row that merely refers to one (the
    foreign key check of a VM's domain or last host: ``FOR KEY SHARE``) goes on at once, and the
    host monitor's claim of a host for a VM found running there (:func:`planner.hold_host`) waits
    for the placement to end, so the next placement reads the counters with that VM in them."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite's writers take turns")
    with Session(engine) as placing, writing(placing):
        zid = zone_id(placing, ZONE)
        assert planner.ZoneCapacity(placing, zid).hosts()  # the zone's hosts are locked
        host_id = hosts(placing)[0].id
        with Session(engine) as referring, writing(referring):  # what a foreign key check takes
            referring.execute(select(Host.id).where(Host.id == host_id).with_for_update(key_share=True, read=True,
                                                                                     nowait=True)).all()
        claimed: list[float] = []

        def monitor() -> None:
            with Session(engine) as s, writing(s):
                planner.hold_host(s, host_id)
                claimed.append(time.monotonic())

        waiting = threading.Thread(target=monitor)
        waiting.start()
        time.sleep(0.5)
        assert waiting.is_alive() and not claimed
        ended = time.monotonic()
    waiting.join(30)
    assert claimed and claimed[0] >= ended
