"""gstack run inside another process (as the libvirt tests and a developer's own tests run it):
stopping it stops every thread it started, so nothing of it goes on polling a database that is
about to be removed."""

from __future__ import annotations

import threading

from tests.conftest import free_port
from tests.hypervisors.conftest import InProcessServer


def test_a_stopped_in_process_server_leaves_no_thread_running(tmp_path):
    before = set(threading.enumerate())
    server = InProcessServer("sqlite", str(tmp_path), f"sqlite:///{tmp_path}/gstack.sqlite3", port=free_port())
    try:
        server.start()
        started = {t.name for t in threading.enumerate() if t not in before}
        assert {"host-monitor", "autoscaler", "job-heartbeat"} <= started, started  # its background work runs
    finally:
        server.stop()
    assert [t.name for t in threading.enumerate() if t not in before and t.is_alive()] == []
