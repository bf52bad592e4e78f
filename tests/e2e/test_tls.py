"""``gstack serve --tls`` (here GSTACK_TLS=1) with its local CA: gcloud trusts it through
``core/custom_ca_certs_file`` alone, google-api-python-client through the CA file; links are
``https://`` on the host the client used."""

from __future__ import annotations

import json

import certifi
import httplib2
import pytest
import requests
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build

from tests.conftest import PROJECT, ZONE
from tests.helpers.tls import gcloud_runner, https_server


@pytest.fixture(scope="module")
def server():
    with https_server() as srv:
        yield srv


def test_gcloud_signs_in_and_creates_over_https_with_only_the_ca_file(server, tmp_path):
    gcloud = gcloud_runner(str(tmp_path / "gcloud"))
    for prop, value in (("core/custom_ca_certs_file", server.ca), ("core/project", PROJECT),
                        ("core/check_gce_metadata", "false"),
                        ("api_endpoint_overrides/compute", server.api), ("auth/token_host", server.base + "/token")):
        gcloud("config", "set", prop, value)
    gcloud("auth", "activate-service-account", "--key-file", server.key_path)
    created = gcloud("compute", "instances", "create", "tls-vm", "--zone", ZONE, "--machine-type", "e2-small",
                     "--image-family", "debian-12", "--image-project", "debian-cloud", "--format=json")
    [vm] = json.loads(created.stdout)
    assert vm["selfLink"] == f"{server.api}projects/{PROJECT}/zones/{ZONE}/instances/tls-vm"
    assert vm["selfLink"].startswith("https://localhost:")
    assert vm["status"] == "RUNNING"


def test_google_api_python_client_over_https(server):
    http = AuthorizedHttp(server.credentials(), http=httplib2.Http(ca_certs=server.ca))
    gce = build("compute", "v1", http=http, static_discovery=True, client_options={"api_endpoint": server.api})
    zone = gce.zones().get(project=PROJECT, zone=ZONE).execute()
    assert zone["selfLink"] == f"{server.api}projects/{PROJECT}/zones/{ZONE}"
    # the host the client used names the links: the certificate's other name gives other links
    other = server.api.replace("localhost", "127.0.0.1")
    gce = build("compute", "v1", http=http, static_discovery=True, client_options={"api_endpoint": other})
    assert gce.zones().get(project=PROJECT, zone=ZONE).execute()["selfLink"].startswith(other)


def test_plain_http_and_unknown_roots_are_refused(server):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.base + "/oauth2/v3/certs", verify=certifi.where(), timeout=5)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.base.replace("https://", "http://") + "/oauth2/v3/certs", timeout=5)
