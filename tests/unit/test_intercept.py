"""The intercepting proxy's pieces that need no client: the links a caller of Google's hosts gets,
and the proxy's certificate beside the TLS server's (tests/e2e/test_proxy.py drives real clients)."""

from __future__ import annotations

import pytest
from cryptography import x509
from flask import Flask

from core.links import CANONICAL_BASE
from gstack import intercept, tls
from gstack.cli import serve_banner
from gstack.config import Settings
from gstack.gce import render


@pytest.mark.parametrize(("settings", "url", "links"), [
    (Settings(), "https://compute.googleapis.com/compute/v1/zones", CANONICAL_BASE),
    (Settings(), "https://www.googleapis.com:443/compute/v1/zones", CANONICAL_BASE),
    (Settings(universe_domain="example.internal"), "https://compute.googleapis.com/compute/v1/zones", CANONICAL_BASE),
    (Settings(base_url="https://gce.example.com"), "https://compute.googleapis.com/compute/v1/zones",
     "https://gce.example.com/compute/v1/"),
    (Settings(), "http://compute.googleapis.com/compute/v1/zones", "http://compute.googleapis.com/compute/v1/"),
])
def test_callers_of_googles_hosts_get_googles_links(settings, url, links):
    app = Flask(__name__)
    app.config["GSTACK"] = settings
    with app.test_request_context(url):
        assert render.base_url() == links


def load(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def test_the_proxy_certificate_names_googles_hosts_and_leaves_the_servers_alone(tmp_path):
    """Two listeners, two certificate files: neither start reissues the other's certificate."""
    data_dir = str(tmp_path)
    server = tls.ensure_server_certificate(data_dir, tls.server_names("127.0.0.1"))
    serial = load(server.cert).serial_number
    proxy = tls.ensure_server_certificate(data_dir, intercept.HOSTS, prefix=intercept.CERT_PREFIX)
    assert proxy.cert != server.cert and proxy.key != server.key
    sans = load(proxy.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == list(intercept.HOSTS)
    tls.ensure_server_certificate(data_dir, tls.server_names("127.0.0.1"))
    assert load(server.cert).serial_number == serial


def test_the_refusal_names_the_destination_and_the_hosts_served():
    message = intercept.refusal("example.com:443")
    assert "not to example.com:443" in message and "compute.googleapis.com" in message


def test_the_serve_banner_gives_each_client_its_proxy_lines(tmp_path):
    config = Settings(data_dir=str(tmp_path), database_url="sqlite:///gstack.sqlite3", proxy_port=3128)
    text = serve_banner(config, "http://127.0.0.1:8080", "/keys/demo.json", 8080)
    ca = f"{tmp_path}/{tls.CA_CERT}"
    assert (f"HTTPS_PROXY=http://127.0.0.1:3128 REQUESTS_CA_BUNDLE={ca} SSL_CERT_FILE={ca} NODE_EXTRA_CA_CERTS={ca} "
            "GOOGLE_APPLICATION_CREDENTIALS=/keys/demo.json") in text
