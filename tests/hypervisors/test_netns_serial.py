"""A netns VM's serial log kept to its last bytes (core.hypervisors.netns.serial): on real files,
cut while another process appends to them as a guest does, and through the driver, whose host
check cuts the log of a guest that prints without end. Byte numbers go on from the VM's start,
as GCE's ``start`` and ``next`` do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from core.hypervisors.netns import serial
from tests.helpers.netns import GUEST_TOOLS, missing, standalone_host, vm_on

LINE = 16  # bytes of each numbered line the writers append: line k starts at byte 16 k
# A process appending numbered lines to serial.log (O_APPEND, as the agent's stdout) as fast as it can.
WRITER = ("import os, sys\n"
          "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
          "for k in range(int(sys.argv[2])):\n"
          "    os.write(fd, b'%015d\\n' % k)\n")


def numbered(text: str, start: int) -> list[int]:
    """The numbers of the whole lines of output that begins at byte ``start``, each checked to sit
    at its own place (line k at byte 16 k)."""
    skip = (-start) % LINE
    lines = text[skip:].split("\n")[:-1]
    first = (start + skip) // LINE
    assert [int(line) for line in lines] == list(range(first, first + len(lines)))
    return [first, first + len(lines)]


@pytest.fixture
def folder():
    path = tempfile.mkdtemp(prefix="gstack-serial-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_log_cut_while_a_guest_appends_loses_and_reorders_nothing(folder):
    lines = 6 * serial.MAX_CONSOLE // LINE  # 6 MB
    writer = subprocess.Popen([sys.executable, "-c", WRITER, os.path.join(folder, serial.LOG), str(lines)])
    cut = 0
    while writer.poll() is None:
        cut += serial.trim(folder)
        text, start, end = serial.read(folder, 0)  # (the writer goes on meanwhile)
        assert end - start <= serial.MAX_CONSOLE and (not text or numbered(text, start))
        time.sleep(0.005)
    assert writer.returncode == 0
    cut += serial.trim(folder)
    text, start, end = serial.read(folder, 0)
    assert end == lines * LINE  # every byte counted, from the first
    assert start == end - serial.MAX_CONSOLE  # the last megabyte kept
    assert numbered(text, start)[1] == lines  # ...in order, to the last line
    assert cut >= 3 * serial.MAX_CONSOLE and os.path.getsize(os.path.join(folder, serial.LOG)) < serial.TRIM_AT
    # a reader's next byte from before a cut goes on where it left off (while it is kept)
    tail, at, _ = serial.read(folder, end - 100)
    assert (at, tail) == (end - 100, text[-100:])
    assert serial.read(folder, -LINE) == (text[-LINE:], end - LINE, end)


def test_a_short_log_is_left_whole_and_a_missing_one_is_empty(folder):
    serial.note(folder, "firmware: booting")
    assert serial.trim(folder) == 0
    assert serial.read(folder, 0) == ("firmware: booting\r\n", 0, 19)
    assert serial.read(os.path.join(folder, "gone"), 0) == ("", 0, 0)


WHY = missing(GUEST_TOOLS, "the netns serial test")


@pytest.mark.skipif(WHY is not None, reason=WHY or "")
@pytest.mark.xdist_group("netns")
def test_the_host_check_cuts_a_chatty_guests_log():
    """A guest whose startup script prints 3 MB: the host monitor's list of the host's VMs cuts its
    log, and getSerialPortOutput's numbers go on."""
    script = "#!/bin/bash\nfor i in $(seq 1 200000); do printf 'chatty line %07d\\n' $i; done; echo chatty-done\n"
    with standalone_host("ns-serial") as (factory, driver, host, state):
        vm = vm_on(factory, host, "vm-chatty", "10.0.0.3", {"startup-script": script})
        uid = vm.uid
        driver.spawn(host, vm)
        deadline = time.monotonic() + 120
        while "chatty-done" not in driver.serial_output(uid, -200)[0]:
            assert time.monotonic() < deadline, driver.serial_output(uid, -2000)[0]
            time.sleep(0.5)
        log = os.path.join(state, "vms", str(uid), serial.LOG)
        assert os.path.getsize(log) > serial.TRIM_AT
        _, start, end = driver.serial_output(uid, 0)
        assert driver.list_instances(host) == {uid: "running"}  # the host check
        assert os.path.getsize(log) < serial.TRIM_AT
        text, start_after, end_after = driver.serial_output(uid, 0)
        assert end_after >= end and start_after == end_after - serial.MAX_CONSOLE
        assert "chatty line 0200000" in text and "chatty line 0000001" not in text
