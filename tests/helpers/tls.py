"""``gstack serve`` over HTTPS (its own CA) for the e2e tests, the clients' CA settings, and the
/etc/hosts lines a universe needs (restored afterwards)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from gstack import tls, universe
from tests.conftest import Server

# Where a machine (or a sandbox) may already point clients at its own roots; every one is removed
# from a client's environment so the only trust it has is what the test configures.
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "NIX_SSL_CERT_FILE",
                "HTTPLIB2_CA_CERTS", "NODE_EXTRA_CA_CERTS", "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
                "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "GOOGLE_CLOUD_UNIVERSE_DOMAIN", "GOOGLE_APPLICATION_CREDENTIALS")
HOSTS_FILE = "/etc/hosts"


def client_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CA_VARIABLES}
    env.update(extra)
    return env


@dataclass
class HTTPSServer(Server):
    """A ``gstack serve`` on TLS, reached by a name its certificate carries."""

    host: str = "localhost"

    @property
    def base(self) -> str:
        return f"https://{self.host}" + ("" if self.port == 443 else f":{self.port}")

    @property
    def ca(self) -> str:
        return os.path.join(self.data_dir, tls.CA_CERT)


@contextmanager
def environ(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` (and without the machine's CA settings) for a while."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(client_env(**values))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def https_server(universe_domain: str = "", port: int | None = None) -> Iterator[HTTPSServer]:
    """A started HTTPS server on SQLite (these tests check the wire); while it runs, this process's
    requests trust its CA (REQUESTS_CA_BUNDLE), which is made before the server starts."""
    data_dir = tempfile.mkdtemp(prefix="gstack-tls-")
    tls.ensure_ca(data_dir)
    env_extra = {"GSTACK_TLS": "1", "GSTACK_UNIVERSE_DOMAIN": universe_domain}
    server = HTTPSServer("sqlite", data_dir, "sqlite:///" + os.path.join(data_dir, "gstack.sqlite3"),
                         env_extra=env_extra, host=f"compute.{universe_domain}" if universe_domain else "localhost")
    if port is not None:
        server.port = port
    try:
        with environ(REQUESTS_CA_BUNDLE=server.ca):
            server.start()
            yield server
    finally:
        server.stop()
        violations = server.contract_violations()
        shutil.rmtree(data_dir, ignore_errors=True)
        if violations:
            pytest.fail("responses broke the compute v1 discovery contract:\n" + violations, pytrace=False)


@contextmanager
def universe_names(universe_domain: str) -> Iterator[None]:
    """The universe's host names resolved to this machine through /etc/hosts, as the operator's
    guide tells operators; the file's bytes are put back afterwards."""
    with open(HOSTS_FILE, "rb") as f:
        original = f.read()
    line = "127.0.0.1 " + " ".join(universe.hosts(universe_domain)) + "\n"
    with open(HOSTS_FILE, "ab") as f:
        f.write((b"" if original.endswith(b"\n") or not original else b"\n") + line.encode())
    try:
        yield
    finally:
        with open(HOSTS_FILE, "wb") as f:
            f.write(original)


def port_free(port: int) -> bool:
    """Is nothing listening on ``port``? (Connections of a server that has gone, in TIME_WAIT, do not
    count: the server binds with SO_REUSEADDR, as this check does.)"""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def gcloud_runner(config_dir: str, **extra_env: str):
    """``gcloud`` with a configuration of its own and no CA but what that configuration says."""
    if shutil.which("gcloud") is None:
        pytest.skip("the gcloud CLI is not installed here")
    base_env = client_env(CLOUDSDK_CONFIG=config_dir, CLOUDSDK_CORE_DISABLE_PROMPTS="1", **extra_env)

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["gcloud", *args], env={**base_env, **(env or {})}, capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"gcloud {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    run("config", "set", "component_manager/disable_update_check", "true")
    return run
