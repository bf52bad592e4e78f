"""The simulator's serial console in chunks, on both databases: whatever was appended, the output
returned is exactly the last 1 MB of it (its start and end offsets counting every byte ever
written), and an append writes only the newest chunk, however much output the domain holds (a
router's console gets a line per configuration push for as long as the router lives).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import write_session
from core.hypervisors.simulator import CONSOLE_CHUNK, MAX_CONSOLE, SimulatorDriver, _listed, boot_log
from core.models import SimConsoleChunk, SimDomain
from tests.conftest import BACKENDS
from tests.helpers.databases import seeded_engine, sessions
from tests.helpers.simulator import add_host, vm

# Three long paths, one with two-byte characters: a push's console line is ~800 bytes, and byte
# counts differ from character counts.
FILES = {"/etc/" + "a" * 240: "1", "/etc/" + "é" * 120: "2", "/etc/" + "c" * 240: "3", "/etc/d": "4"}
PUSHED = f"[  OK  ] Reloaded configuration {_listed(sorted(FILES))}.\r\n"


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    with seeded_engine(request.param, "gstack-simconsole-") as engine:
        yield engine


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return sessions(engine)


def chunks(factory: sessionmaker[Session], uid: int) -> list[int]:
    """The byte sizes of the VM's console chunks, oldest first."""
    with factory() as s:
        return list(s.scalars(select(SimConsoleChunk.size).where(SimConsoleChunk.instance_uid == uid)
                              .order_by(SimConsoleChunk.seq)))


def column(factory: sessionmaker[Session], uid: int) -> str:
    with factory() as s:
        return s.scalars(select(SimDomain.console).where(SimDomain.instance_uid == uid)).one()


def text_bytes(parameters: object) -> int:
    """The UTF-8 bytes of the texts among a statement's parameters (one row's or many rows')."""
    if isinstance(parameters, str):
        return len(parameters.encode())
    if isinstance(parameters, dict):
        parameters = list(parameters.values())
    return sum(text_bytes(p) for p in parameters) if isinstance(parameters, (list, tuple)) else 0


def test_the_output_is_the_last_megabyte_of_all_appended(factory):
    driver, host, router = SimulatorDriver(factory), add_host(factory), vm()
    driver.spawn(host, router)
    written = boot_log(router, 1)
    while len(written.encode()) < MAX_CONSOLE + 3 * CONSOLE_CHUNK:
        driver.push_config(host, router.uid, FILES)
        written += PUSHED
        assert len(column(factory, router.uid).encode()) < CONSOLE_CHUNK
    everything = written.encode()
    total = len(everything)
    assert driver.serial_output(router.uid, 0) == (everything[-MAX_CONSOLE:].decode(errors="replace"),
                                                   total - MAX_CONSOLE, total)
    # A start before what is kept begins where the output does; a negative one counts from the end.
    assert driver.serial_output(router.uid, 5)[1] == total - MAX_CONSOLE
    assert driver.serial_output(router.uid, -1000) == (everything[-1000:].decode(errors="replace"), total - 1000, total)
    assert driver.serial_output(router.uid, total) == ("", total, total)
    # The chunks kept hold the last megabyte and no more than a chunk beyond it.
    held = chunks(factory, router.uid)
    assert MAX_CONSOLE <= sum(held) + len(column(factory, router.uid).encode()) < MAX_CONSOLE + 2 * CONSOLE_CHUNK
    with factory() as s:
        dropped = s.scalars(select(SimDomain.console_dropped).where(SimDomain.instance_uid == router.uid)).one()
    assert dropped == total - sum(held) - len(column(factory, router.uid).encode()) > 0


def test_an_append_writes_the_newest_chunk_not_the_console(engine, factory):
    """What one push sends to the database stays under two chunks when the console holds its full
    megabyte (rewritten whole, it was the megabyte each time)."""
    driver, host, router = SimulatorDriver(factory), add_host(factory), vm()
    driver.spawn(host, router)
    while sum(chunks(factory, router.uid)) < MAX_CONSOLE:
        driver.push_config(host, router.uid, FILES)
    sent: list[int] = []

    def count(_conn, _cursor, _statement, parameters, _context, _many) -> None:
        sent[-1] += text_bytes(parameters)

    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(3 * CONSOLE_CHUNK // len(PUSHED.encode())):  # three chunks' rollovers
            sent.append(0)
            driver.push_config(host, router.uid, FILES)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    files = sum(len(path.encode()) + len(content.encode()) + 64 for path, content in FILES.items())
    assert max(sent) < 2 * CONSOLE_CHUNK + files
    assert sum(chunks(factory, router.uid)) < MAX_CONSOLE + 2 * CONSOLE_CHUNK


def test_the_guest_answers_from_output_in_a_chunk(factory):
    """The simulated guest reads its state (a shell prompt) from the end of its output, which may
    have just become a chunk, leaving the domain's own column empty."""
    driver, host, guest = SimulatorDriver(factory), add_host(factory), vm()
    driver.spawn(host, guest)
    for typed in ("\r", "root\r", "secret\r"):
        driver.serial_write(host, guest.uid, typed)
    while column(factory, guest.uid):
        driver.serial_write(host, guest.uid, "echo " + "x" * 500 + "\r")
    _, _, end = driver.serial_output(guest.uid, 0)
    driver.serial_write(host, guest.uid, "hostname\r")
    assert driver.serial_output(guest.uid, end)[0].endswith(f"{guest.name}\r\nroot@{guest.name}:~# ")


def test_a_destroyed_domain_leaves_no_chunk(factory):
    driver, host, gone = SimulatorDriver(factory), add_host(factory), vm()
    driver.spawn(host, gone)
    while not chunks(factory, gone.uid):
        driver.push_config(host, gone.uid, FILES)
    driver.destroy(host, gone.uid)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(SimConsoleChunk)
                        .where(SimConsoleChunk.instance_uid == gone.uid)) == 0
    assert driver.serial_output(gone.uid, 0) == ("", 0, 0)


def test_a_reboot_past_a_chunk_goes_through_the_append(factory):
    """The one-statement spawn appends a boot's output to the domain's column only while it stays
    under a chunk; past it the boot's output is appended as any other, and nothing is lost."""
    driver, host, vm_ = SimulatorDriver(factory), add_host(factory), vm()
    driver.spawn(host, vm_)
    written = boot_log(vm_, 1)
    while len(column(factory, vm_.uid).encode()) + len(boot_log(vm_, 2).encode()) < CONSOLE_CHUNK:
        driver.push_config(host, vm_.uid, FILES)
        written += PUSHED
    driver.power_off(host, vm_.uid)
    written += "[  OK  ] Reached target poweroff.target - System Power Off.\r\n[   99.000000] reboot: Power down\r\n"
    driver.spawn(host, vm_)
    written += boot_log(vm_, 2)
    assert chunks(factory, vm_.uid)
    assert driver.serial_output(vm_.uid, 0) == (written, 0, len(written.encode()))
    with write_session(factory) as s:
        assert s.scalars(select(SimDomain.boots).where(SimDomain.instance_uid == vm_.uid)).one() == 2


def test_appends_to_one_console_at_once_are_all_kept(factory):
    """Two processes' appends to one console (a router's configuration push and a user typing on
    its serial console) take turns: none is lost, and none fails, whichever rolls a chunk over."""
    driver, host, router = SimulatorDriver(factory), add_host(factory), vm()
    driver.spawn(host, router)
    pushes = 120
    lines = {side: f"[  OK  ] Reloaded configuration {_listed(sorted({**FILES, f'/etc/0{side}': side}))}.\r\n"
             for side in ("left", "right")}
    errors: list[BaseException] = []

    def push(side: str) -> None:
        try:
            for _ in range(pushes):
                driver.push_config(host, router.uid, {**FILES, f"/etc/0{side}": side})
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(side,)) for side in lines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    output, start, end = driver.serial_output(router.uid, 0)
    assert start == 0 and end == len(output.encode())
    assert chunks(factory, router.uid)  # the pushes rolled chunks over meanwhile
    assert [output.count(line) for line in lines.values()] == [pushes, pushes]
