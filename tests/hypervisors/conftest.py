"""A gstack server in this process with a libvirt cluster on libvirt's test driver.

libvirt's ``test://`` hosts keep their state in the memory of the process that opened them, so
the server runs here (its WSGI server in a thread, its job workers as threads): the tests drive
it over HTTP with google-api-python-client and read the domain XML libvirt stores through the
driver's own connection.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading

import pytest

from tests.conftest import Server, free_port

ZONE = "us-central1-f"  # not seeded: a zone of its own keeps the libvirt host the only choice
LIBVIRT_ZONE = "us-central1-a"
CLUSTER = "kvm1"

# A libvirt test driver node: 8 CPUs, 16 GiB, the "default" network and no domains.
NODE_XML = """<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>8</active><nodes>1</nodes><sockets>1</sockets>
       <cores>4</cores><threads>2</threads></cpu>
  <memory>16777216</memory>
  <network>
    <name>default</name>
    <bridge name='virbr0'/>
    <forward/>
    <ip address='192.168.122.1' netmask='255.255.255.0'>
      <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
    </ip>
  </network>
</node>
"""


class InProcessServer(Server):
    """tests.conftest.Server's helpers (gce, admin, credentials) on a server of this process."""

    app = None
    http = None
    serving: threading.Thread | None = None

    def start(self, timeout: float = 60) -> InProcessServer:
        from werkzeug.serving import make_server

        from core.db import write_session
        from gstack.app import create_app
        from gstack.bootstrap import ensure_demo_credentials
        from gstack.config import Settings

        settings = Settings.from_env(data_dir=self.data_dir, database_url=self.database_url)
        settings.log_requests = False
        settings.workers = 2
        self.app = create_app(settings)
        runtime = self.app.extensions["gstack"]
        with write_session(runtime.factory) as session:
            ensure_demo_credentials(session, self.data_dir, self.base + "/token")
        self.http = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.serving = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.serving.start()
        return self

    def stop(self) -> None:
        if self.http is not None:
            # shutdown() returns once serve_forever's loop has ended, before its thread has: joined
            # here, it is gone when stop() returns (a test checks that no thread outlives it).
            self.http.shutdown()
            if self.serving is not None:
                self.serving.join(10)
            self.http.server_close()
            self.runtime.stop()  # every background thread: the job engine, host monitor, autoscaler ...
            self.http = None

    @property
    def runtime(self):
        return self.app.extensions["gstack"]

    @property
    def driver(self):
        return self.runtime.drivers.get("libvirt")


def libvirt_test_server(prefix: str) -> InProcessServer:
    """A started in-process server on SQLite in a new data directory holding libvirt's test-driver
    node (``NODE_XML``), whose ``test://`` URI is ``server.uri``. Skips where libvirt-python is
    missing."""
    pytest.importorskip("libvirt", reason="libvirt-python is not installed (pip install 'gstack[libvirt]')")
    data_dir = tempfile.mkdtemp(prefix=prefix)
    node = os.path.join(data_dir, "node.xml")
    with open(node, "w") as f:
        f.write(NODE_XML)
    server = InProcessServer("sqlite", data_dir, "sqlite:///" + os.path.join(data_dir, "gstack.sqlite3"),
                             port=free_port()).start()
    server.uri = f"test://{node}"
    return server


@pytest.fixture(scope="module")
def cloud():
    """The in-process server with a libvirt cluster (one test-driver host) in us-central1-a, whose
    simulator hosts are in maintenance so that every VM lands on the libvirt host. Skipped where
    libvirt-python is missing (the simulator's tests in this directory still run)."""
    server = libvirt_test_server("gstack-libvirt-")
    data_dir = server.data_dir
    server.admin("cluster", "add", "--zone", LIBVIRT_ZONE, "--name", CLUSTER, "--hypervisor", "libvirt")
    server.admin("host", "add", "--zone", LIBVIRT_ZONE, "--cluster", CLUSTER, "--name", "kvm1-host1",
                 "--uri", server.uri, "--option", "console_dir=" + os.path.join(data_dir, "console"))
    for i in range(1, 5):
        server.admin("host", "maintenance", f"sim-{LIBVIRT_ZONE}-0{i}", "on")
    yield server
    server.stop()
    server.driver.close()
    violations = server.contract_violations()
    shutil.rmtree(data_dir, ignore_errors=True)
    if violations:
        pytest.fail("responses broke the discovery contract:\n" + violations, pytrace=False)
