"""The simulator's spawn, on both databases: one statement starts what it can (a new VM, a stopped,
paused or moved one), and what it leaves (a host Down or failing spawns, a VM running already, a
console at its limit, a VM twice in a batch) is spawned as before, one VM after another. Each test
asserts the domains and errors a spawn leaves, exactly as the one-by-one spawn made them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import write_session
from core.hypervisors.base import DriverError, HostRef
from core.hypervisors.simulator import MAX_CONSOLE, SimulatorDriver, boot_log
from core.models import Host, SimDomain
from tests.conftest import BACKENDS
from tests.helpers.databases import seeded_engine, sessions
from tests.helpers.simulator import add_host, vm

OFF = "[  OK  ] Reached target poweroff.target - System Power Off.\r\n[   99.000000] reboot: Power down\r\n"


@pytest.fixture(scope="module", params=BACKENDS)
def factory(request: pytest.FixtureRequest) -> Iterator[sessionmaker[Session]]:
    with seeded_engine(request.param, "gstack-simspawn-") as engine:
        yield sessions(engine)


def domain(factory: sessionmaker[Session], uid: int) -> tuple[int, str, str, int, int] | None:
    """(host id, state, console, bytes dropped, boots) of the VM's domain."""
    with factory() as s:
        d = s.scalar(select(SimDomain).where(SimDomain.instance_uid == uid))
        return None if d is None else (d.host_id, d.state, d.console, d.console_dropped, d.boots)


def knob(factory: sessionmaker[Session], host: HostRef) -> int:
    with factory() as s:
        return s.get_one(Host, host.id).fail_next_spawns


def transactions(factory: sessionmaker[Session], call: Callable[[], object]) -> int:
    """The transactions ``call`` began (a statement run on its own, PostgreSQL's spawn, begins none)."""
    engine: Engine = factory.kw["bind"]
    begun: list[object] = []

    def count(conn: object) -> None:
        begun.append(conn)

    event.listen(engine, "begin", count)
    try:
        call()
    finally:
        event.remove(engine, "begin", count)
    return len(begun)


def one_statement(factory: sessionmaker[Session]) -> int:
    """The transactions of a spawn made by the one statement: none on PostgreSQL, where it is its own
    transaction; one on SQLite, where it joins the queue of writers."""
    return 0 if factory.kw["bind"].dialect.name == "postgresql" else 1


def test_a_new_vm_runs_after_one_statement(factory):
    driver, host, new = SimulatorDriver(factory), add_host(factory), vm()
    assert transactions(factory, lambda: driver.spawn_many([(host, new)])) == one_statement(factory)
    assert domain(factory, new.uid) == (host.id, "running", boot_log(new, 1), 0, 1)


def test_a_stopped_or_moved_vm_boots_again_with_its_console_kept(factory):
    driver, first, second, again = SimulatorDriver(factory), add_host(factory), add_host(factory), vm()
    driver.spawn(first, again)
    driver.power_off(first, again.uid)
    assert transactions(factory, lambda: driver.spawn(first, again)) == one_statement(factory)
    assert domain(factory, again.uid) == (first.id, "running", boot_log(again, 1) + OFF + boot_log(again, 2), 0, 2)
    assert transactions(factory, lambda: driver.spawn(second, again)) == one_statement(factory)  # it moves here
    assert domain(factory, again.uid) == (second.id, "running",
                                          boot_log(again, 1) + OFF + boot_log(again, 2) + boot_log(again, 3), 0, 3)
    driver.spawn(second, again)  # running here: left as it is
    assert domain(factory, again.uid) == (second.id, "running",
                                          boot_log(again, 1) + OFF + boot_log(again, 2) + boot_log(again, 3), 0, 3)


def test_a_down_host_refuses_its_vms_and_the_others_start(factory):
    driver, up, down = SimulatorDriver(factory), add_host(factory), add_host(factory, status="Down")
    a, b, c = vm(), vm(), vm()
    errors = driver.spawn_many([(up, a), (down, b), (up, c)])
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], DriverError) and errors[1].retry_elsewhere
    assert str(errors[1]) == f"host {down.name} is not reachable"
    assert domain(factory, b.uid) is None
    assert domain(factory, a.uid) == (up.id, "running", boot_log(a, 1), 0, 1)
    missing = HostRef(10**6, "nowhere", "sim://nowhere")
    assert str(driver.spawn_many([(missing, vm())])[0]) == "host nowhere is not reachable"


def test_injected_failures_fail_the_first_spawns_of_their_host_only(factory):
    driver, failing, fine = SimulatorDriver(factory), add_host(factory, fail_next_spawns=2), add_host(factory)
    vms = [vm() for _ in range(4)]
    errors = driver.spawn_many([(failing, vms[0]), (fine, vms[1]), (failing, vms[2]), (failing, vms[3])])
    assert [str(e) if e else None for e in errors] == [
        f"simulated spawn failure on host {failing.name}", None, f"simulated spawn failure on host {failing.name}", None]
    assert all(e.retry_elsewhere for e in errors if e is not None)
    assert knob(factory, failing) == 0
    assert [domain(factory, v.uid) is not None for v in vms] == [False, True, False, True]
    assert driver.spawn_many([(failing, vms[0])]) == [None]  # the failures are used up


def test_a_vm_twice_in_a_batch_boots_once(factory):
    driver, host, twice = SimulatorDriver(factory), add_host(factory), vm()
    assert driver.spawn_many([(host, twice), (host, twice)]) == [None, None]
    assert domain(factory, twice.uid) == (host.id, "running", boot_log(twice, 1), 0, 1)


def test_a_console_at_its_limit_keeps_its_last_megabyte(factory):
    driver, host, full = SimulatorDriver(factory), add_host(factory), vm()
    driver.spawn(host, full)
    driver.power_off(host, full.uid)
    with write_session(factory) as s:
        d = s.scalars(select(SimDomain).where(SimDomain.instance_uid == full.uid)).one()
        d.console = "x" * (MAX_CONSOLE - 10)
    driver.spawn(host, full)
    log = boot_log(full, 2)
    dropped = MAX_CONSOLE - 10 + len(log) - MAX_CONSOLE
    # A console held whole in the domain's row (as before the console's chunks) becomes a chunk.
    assert domain(factory, full.uid) == (host.id, "running", "", dropped, 2)
    assert driver.serial_output(full.uid, 0) == (("x" * (MAX_CONSOLE - 10) + log)[dropped:], dropped, dropped + MAX_CONSOLE)
