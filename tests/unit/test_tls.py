"""The local CA and the server certificate (gstack/tls.py), HTTPS in gstack's own server, and the
universe settings: checked with Python's ssl client, the trust a real client extends."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import threading

import pytest
import requests
from click.testing import CliRunner
from cryptography import x509
from flask import Flask

from core.links import CANONICAL_BASE
from gstack import tls, universe
from gstack.cli import main
from gstack.config import Settings
from gstack.gce import render
from gstack.serving import PooledWSGIServer


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def load(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def test_the_ca_is_created_once_with_a_private_key(tmp_path):
    data_dir = str(tmp_path / "data")
    first = tls.ca_pem(data_dir)
    assert first == tls.ca_pem(data_dir)  # the same CA at every start: clients trust it once
    assert mode(os.path.join(data_dir, tls.CA_KEY)) == 0o600
    ca = load(os.path.join(data_dir, tls.CA_CERT))
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_server_certificate_names_the_universe_and_is_reissued_when_names_change(tmp_path):
    data_dir = str(tmp_path)
    names = tls.server_names("0.0.0.0", "example.internal")
    assert "0.0.0.0" not in names and "compute.example.internal" in names and "storage.example.internal" in names
    paths = tls.ensure_server_certificate(data_dir, names)
    assert mode(paths.key) == 0o600
    cert, ca = load(paths.cert), load(os.path.join(data_dir, tls.CA_CERT))
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", *universe.hosts("example.internal")}
    assert {str(a) for a in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert load(tls.ensure_server_certificate(data_dir, names).cert).serial_number == cert.serial_number
    again = load(tls.ensure_server_certificate(data_dir, tls.server_names("10.1.2.3")).cert)
    assert again.serial_number != cert.serial_number
    assert "10.1.2.3" in {str(a) for a in again.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)}


@pytest.fixture
def https(tmp_path):
    """gstack's server on TLS with a certificate from a fresh CA, serving its URL scheme back."""
    def app(environ, start_response):
        body = environ["wsgi.url_scheme"].encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    data_dir = str(tmp_path)
    context = tls.server_context(tls.ensure_server_certificate(data_dir, tls.server_names("127.0.0.1")))
    server = PooledWSGIServer("127.0.0.1", 0, app, ssl_context=context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port, os.path.join(data_dir, tls.CA_CERT)
    server.shutdown()
    server.server_close()


def test_https_is_trusted_through_the_ca_and_the_scheme_is_https(https):
    port, ca = https
    for host in ("localhost", "127.0.0.1"):
        assert requests.get(f"https://{host}:{port}/", verify=ca, timeout=5).text == "https"
    with pytest.raises(requests.exceptions.SSLError):  # the system's roots do not know the local CA
        requests.get(f"https://localhost:{port}/", verify=True, timeout=5)


def test_a_silent_connection_does_not_stop_the_server(https):
    """The handshake runs on the connection's thread: one that never says hello holds up no one."""
    port, ca = https
    with socket.create_connection(("127.0.0.1", port)):
        assert requests.get(f"https://127.0.0.1:{port}/", verify=ca, timeout=5).text == "https"


def test_admin_ca_export_prints_the_data_directorys_ca(tmp_path):
    data_dir = str(tmp_path / "data")
    result = CliRunner().invoke(main, ["admin", "ca", "export", "--data-dir", data_dir])
    assert result.exit_code == 0, result.output
    assert result.output == tls.ca_pem(data_dir)
    ssl.create_default_context(cadata=result.output)  # a PEM a client can load as its trust


def test_a_universe_turns_tls_on_and_googles_own_is_the_default(monkeypatch):
    monkeypatch.setenv("GSTACK_UNIVERSE_DOMAIN", "Example.Internal.")
    s = Settings.from_env()
    assert (s.universe_domain, s.tls) == ("example.internal", True)
    monkeypatch.setenv("GSTACK_UNIVERSE_DOMAIN", "googleapis.com")
    assert (Settings.from_env().universe_domain, Settings.from_env().tls) == ("", False)
    monkeypatch.setenv("GSTACK_TLS_CERT", "/etc/ssl/mine.pem")
    assert Settings.from_env().tls


def test_the_descriptor_is_what_gcloud_validates():
    d = universe.descriptor("example.internal")
    assert d["universeDomain"] == "example.internal" and d["state"] == "primary"
    assert universe.token_uri("example.internal") == "https://oauth2.example.internal/token"


def test_admin_keys_name_the_universe(tmp_path, monkeypatch):
    monkeypatch.setenv("GSTACK_UNIVERSE_DOMAIN", "example.internal")
    result = CliRunner().invoke(main, ["admin", "service-account-key", "--project", "demo-project",
                                       "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    key = json.loads(result.stdout)
    assert (key["universe_domain"], key["token_uri"]) == ("example.internal", "https://oauth2.example.internal/token")


@pytest.mark.parametrize(("settings", "url", "links"), [
    (Settings(), "https://localhost:8443/compute/v1/zones", "https://localhost:8443/compute/v1/"),
    (Settings(universe_domain="example.internal"), "https://127.0.0.1:8443/compute/v1/zones",
     "https://compute.example.internal/compute/v1/"),
    (Settings(universe_domain="example.internal", base_url="https://gce.example.com/"),
     "https://compute.example.internal/compute/v1/zones", "https://gce.example.com/compute/v1/"),
])
def test_links_name_the_host_used_the_universe_or_the_configured_base(settings, url, links):
    app = Flask(__name__)
    app.config["GSTACK"] = settings
    with app.test_request_context(url):
        assert render.base_url() == links
        assert render.rewrite_links(b'"' + CANONICAL_BASE.encode() + b'projects/p"') == f'"{links}projects/p"'.encode()
