"""Real servers for the tests: ``gstack serve`` in a subprocess, on SQLite and on PostgreSQL.

Every API test drives that process over HTTP with Google's own clients, authenticated with a
service-account key against the server's /token.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import requests

PG_ADMIN_DSN = os.environ.get("GSTACK_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
PROJECT = "demo-project"
ZONE = "us-central1-a"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# Every server a test starts, in a subprocess or in this process, checks each compute API response
# against the discovery document (gstack/gce/contract.py): a violation fails the test that got it.
os.environ.setdefault("GSTACK_CHECK_RESPONSES", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except Exception:
        return False


def create_pg_database() -> tuple[str, str]:
    import psycopg

    name = f"gstack_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return name, f"{base}/{name}"


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    """A running ``gstack serve`` and the ways tests talk to it."""

    backend: str
    data_dir: str
    database_url: str
    port: int = field(default_factory=free_port)
    env_extra: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return self.base + "/compute/v1/"

    @property
    def key_path(self) -> str:
        return os.path.join(self.data_dir, f"{PROJECT}-key.json")

    def settings_env(self) -> dict:
        """The variables that point gstack at this server's data and set it up as the test asked."""
        return {"GSTACK_DATA_DIR": self.data_dir, "GSTACK_DATABASE_URL": self.database_url,
                "GSTACK_WAIT_TIMEOUT": "30", **self.env_extra}

    def env(self) -> dict:
        """The environment of a gstack process of this server's: this one's, with :meth:`settings_env`."""
        return {**os.environ, **self.settings_env()}

    def start(self, timeout: float = 60) -> Server:
        with open(os.path.join(self.data_dir, "server.log"), "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gstack.cli", "serve", "--port", str(self.port), "--data-dir", self.data_dir],
                env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gstack serve exited: {self.log_tail()}")
            try:
                requests.get(self.base + "/oauth2/v3/certs", timeout=1)
                if os.path.exists(self.key_path):
                    return self
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a loaded machine
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gstack serve did not start: {self.log_tail()}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def contract_violations(self) -> str:
        """What the server's response check logged (gstack/gce/contract.py); empty when none."""
        try:
            with open(os.path.join(self.data_dir, "contract-violations.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(os.path.join(self.data_dir, "server.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def cli(self, *args: str, stdin: str | None = None):
        """``gstack admin ARGS`` on this server's data directory, run in this process by click's
        test runner: the commands' own code on the server's database without the ~1.2 s of CPU a
        new interpreter costs (the suite runs hundreds; tests/auth/conftest.py's ``admin`` runs it
        as a process, as operators do). Click's Result (exit_code, stdout, stderr, exception)."""
        from click.testing import CliRunner

        from gstack.cli import main

        return CliRunner().invoke(main, ["admin", *args, "--data-dir", self.data_dir], input=stdin,
                                  env=self.settings_env())

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """:meth:`cli`, answered as ``subprocess.run`` would (the traceback of an unexpected
        exception on stderr)."""
        result = self.cli(*args)
        stderr = result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            stderr += "".join(traceback.format_exception(result.exception))
        done = subprocess.CompletedProcess(["gstack", "admin", *args], result.exit_code, result.stdout, stderr)
        if check:
            done.check_returncode()
        return done

    def token(self, *scopes: str, project: str = PROJECT) -> str:
        """A new access token of the project's gstack-admin service account, with ``scopes`` (short
        names as ``gstack admin token`` takes them, or URLs; cloud-platform by default).

        For the default project it is minted as its clients mint one: google-auth signs a JWT with
        the account's key file and trades it at the server's ``/token``. Another project's, whose
        key file no test holds, comes from ``gstack admin token``. (Every token came from a
        ``gstack admin token`` process once: ~1.5 s of CPU each, hundreds of times a run.)"""
        from gstack.admin.credentials import SCOPES

        wanted = [SCOPES.get(s, s) for s in scopes or ("cloud-platform",)]
        if project != PROJECT:
            args = ["token", "--project", project]
            for s in wanted:
                args += ["--scope", s]
            return self.admin(*args).stdout.strip()
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        info = {**self.key(), "token_uri": self.base + "/token"}  # whatever universe the server serves
        creds = service_account.Credentials.from_service_account_info(info, scopes=wanted)
        creds.refresh(Request())
        return creds.token

    def credentials(self, scopes=(CLOUD_PLATFORM,)):
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_file(self.key_path, scopes=list(scopes))

    def gce(self, credentials=None):
        from googleapiclient.discovery import build

        return build("compute", "v1", credentials=credentials or self.credentials(), static_discovery=True,
                     client_options={"api_endpoint": self.api}, cache_discovery=False)

    def compute(self, client_class, credentials=None):
        """A google-cloud-compute client on this server, whose ``ExtendedOperation.result()`` polls it too.

        The library builds the operation clients behind ``result()`` without the caller's
        ``client_options`` (so on compute.googleapis.com); hand it clients on our endpoint, as
        docs/quickstart.rst tells users to.
        """
        from google.cloud import compute_v1

        def make(cls):
            return cls(credentials=credentials or self.credentials(), client_options={"api_endpoint": self.base},
                       transport="rest")

        client = make(client_class)
        services = getattr(client._transport, "_extended_operations_services", None)
        if services is not None:
            services.update(zone_operations=make(compute_v1.ZoneOperationsClient),
                            region_operations=make(compute_v1.RegionOperationsClient),
                            global_operations=make(compute_v1.GlobalOperationsClient))
        return client

    def engine(self):
        """The server's own database, for invariants no API shows (capacity held, jobs left)."""
        from core.db import make_engine

        return make_engine(self.database_url)

    def key(self) -> dict:
        with open(self.key_path) as f:
            return json.load(f)


def project_credentials(server: Server, project: str, scopes=(CLOUD_PLATFORM,)):
    """Create a project with an owner service account; its credentials."""
    from google.oauth2 import service_account

    server.admin("project", "create", project)
    path = os.path.join(server.data_dir, f"{project}-key.json")
    server.admin("service-account-key", "--project", project, "--output", path, "--base-url", server.base)
    return service_account.Credentials.from_service_account_file(path, scopes=list(scopes))


def make_server(backend: str, **env_extra) -> tuple[Server, Callable[[], None]]:
    data_dir = tempfile.mkdtemp(prefix=f"gstack-{backend}-")
    cleanup_db = None
    if backend == "postgresql":
        name, url = create_pg_database()
        cleanup_db = name
        # The suite's servers, workers and bursts share one PostgreSQL of 100 connections: at 40 per
        # process (the default) a burst test's server and workers held 49 while others ran, and a
        # test's own connection was refused. A thread that finds the pool full waits instead.
        env_extra = {"GSTACK_DB_POOL_MAX": "20", **env_extra}
    else:
        url = "sqlite:///" + os.path.join(data_dir, "gstack.sqlite3")
    server = Server(backend, data_dir, url, env_extra=env_extra)

    def cleanup() -> None:
        server.stop()
        violations = server.contract_violations()
        strays = _stray_instance_links(server)
        if cleanup_db:
            drop_pg_database(cleanup_db)
        shutil.rmtree(data_dir, ignore_errors=True)
        if violations:
            pytest.fail("responses broke the compute v1 discovery contract:\n" + violations, pytrace=False)
        if strays:
            pytest.fail("instance links a rename would miss (core.services.instances.updates.link_holders):\n"
                        + strays, pytrace=False)

    return server, cleanup


def _stray_instance_links(server: Server) -> str:
    from tests.helpers.links import stray_instance_links

    engine = server.engine()
    try:
        return stray_instance_links(engine)
    finally:
        engine.dispose()


BACKENDS = ["sqlite", "postgresql"]


@contextmanager
def running_server(backend: str, **env_extra: str) -> Iterator[Server]:
    """A started ``gstack serve`` of its own on ``backend`` (with extra environment), removed
    afterwards: for a fixture whose tests need a server configured, or left, unlike the shared one."""
    if backend == "postgresql" and not pg_available():
        pytest.fail("PostgreSQL is not reachable at " + PG_ADMIN_DSN + " (.ci/run starts it)")
    srv, cleanup = make_server(backend, **env_extra)
    srv.start()
    try:
        yield srv
    finally:
        cleanup()


@pytest.fixture(scope="session", params=BACKENDS)
def server(request) -> Iterator[Server]:
    with running_server(request.param) as srv:
        yield srv


@pytest.fixture(scope="session")
def gce(server):
    return server.gce()


def wait_op(gce, op: dict) -> dict:
    """Wait for an operation the way gcloud does: POST .../wait until DONE."""
    project = op["selfLink"].split("/projects/", 1)[1].split("/", 1)[0]
    for _ in range(60):
        if op["status"] == "DONE":
            return op
        if "zone" in op:
            op = gce.zoneOperations().wait(project=project, zone=op["zone"].rsplit("/", 1)[1],
                                           operation=op["name"]).execute()
        elif "region" in op:
            op = gce.regionOperations().wait(project=project, region=op["region"].rsplit("/", 1)[1],
                                             operation=op["name"]).execute()
        else:
            op = gce.globalOperations().wait(project=project, operation=op["name"]).execute()
    raise AssertionError(f"operation never finished: {op}")


def error_of(exc) -> dict:
    """The Google error envelope of a googleapiclient HttpError."""
    return json.loads(exc.content)["error"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def console_ticket(server, zone: str, instance: str, token: str | None = None) -> requests.Response:
    """POST /console/tickets for an instance's interactive serial console."""
    return requests.post(server.base + "/console/tickets", timeout=10,
                         headers={"Authorization": f"Bearer {token or server.token()}"},
                         json={"project": PROJECT, "zone": zone, "instance": instance})


def read_until(ws, marker: str, timeout: float = 20.0) -> str:
    """What a console WebSocket sends until ``marker`` shows (a timeout error otherwise)."""
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        seen += ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
    return seen
