"""Universe mode: gstack answers as ``compute.UNIVERSE`` on port 443, its names resolved through
/etc/hosts as the operator's guide says, and each client is configured only as Google documents for
a universe: the universe domain, the CA, a key file. No endpoint override anywhere.

Root only: the test edits /etc/hosts (restored afterwards) and binds port 443.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import httplib2
import pytest
from google.cloud import compute_v1
from google.oauth2 import service_account
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build

from tests.conftest import CLOUD_PLATFORM, PROJECT, ZONE
from tests.helpers.node import node_packages
from tests.helpers.tls import client_env, environ, gcloud_runner, https_server, port_free, universe_names

UNIVERSE = "gstack-test.internal"
API = f"https://compute.{UNIVERSE}/compute/v1/"
NODE_SCRIPT = pathlib.Path(__file__).with_name("node") / "universe_insert.js"

pytestmark = pytest.mark.xdist_group("port-443")


@pytest.fixture(scope="module")
def server():
    if os.geteuid() != 0:
        pytest.skip("universe mode is tested as root: it edits /etc/hosts and binds port 443")
    if not port_free(443):
        pytest.skip("port 443 is taken on this machine")
    with universe_names(UNIVERSE), https_server(universe_domain=UNIVERSE, port=443) as srv:
        yield srv


def credentials(server):
    return service_account.Credentials.from_service_account_file(server.key_path, scopes=[CLOUD_PLATFORM])


def instance(name: str) -> compute_v1.Instance:
    disk = compute_v1.AttachedDisk(boot=True, auto_delete=True, initialize_params=compute_v1.AttachedDiskInitializeParams(
        source_image="projects/debian-cloud/global/images/family/debian-12"))
    return compute_v1.Instance(name=name, machine_type=f"zones/{ZONE}/machineTypes/e2-small", disks=[disk],
                               network_interfaces=[compute_v1.NetworkInterface(network="global/networks/default")])


def test_the_key_file_names_the_universe(server):
    key = server.key()
    assert key["universe_domain"] == UNIVERSE
    assert key["token_uri"] == f"https://oauth2.{UNIVERSE}/token"


def test_gcloud_with_only_the_universe_the_ca_and_a_key_file(server, tmp_path):
    gcloud = gcloud_runner(str(tmp_path / "gcloud"))
    gcloud("config", "set", "core/custom_ca_certs_file", server.ca)
    # gcloud checks the universe's descriptor (on storage.UNIVERSE) with a bare requests call that
    # ignores core/custom_ca_certs_file: that one command is told the CA as requests takes it.
    setting = gcloud("config", "set", "core/universe_domain", UNIVERSE, env={"REQUESTS_CA_BUNDLE": server.ca})
    assert "Failed to update descriptor data" not in setting.stderr
    gcloud("config", "set", "core/project", PROJECT)
    gcloud("config", "set", "core/check_gce_metadata", "false")
    gcloud("auth", "activate-service-account", "--key-file", server.key_path)
    created = gcloud("compute", "instances", "create", "u-gcloud", "--zone", ZONE, "--machine-type", "e2-small",
                     "--image-family", "debian-12", "--image-project", "debian-cloud", "--format=json")
    [vm] = json.loads(created.stdout)
    assert vm["selfLink"] == f"{API}projects/{PROJECT}/zones/{ZONE}/instances/u-gcloud"
    assert vm["status"] == "RUNNING"


def test_google_cloud_compute_result_polls_the_universe(server):
    """``insert(...).result()`` with no hand-made pollers: the operation clients the library builds
    find the universe in GOOGLE_CLOUD_UNIVERSE_DOMAIN, as the instances client does."""
    with environ(REQUESTS_CA_BUNDLE=server.ca, GOOGLE_CLOUD_UNIVERSE_DOMAIN=UNIVERSE):
        client = compute_v1.InstancesClient(credentials=credentials(server))
        operation = client.insert(project=PROJECT, zone=ZONE, instance_resource=instance("u-gcc"))
        operation.result(timeout=60)
        vm = client.get(project=PROJECT, zone=ZONE, instance="u-gcc")
    assert operation.done() and not operation.error_code
    assert vm.self_link == f"{API}projects/{PROJECT}/zones/{ZONE}/instances/u-gcc"
    assert vm.status == "RUNNING"


def test_google_api_python_client_with_the_universe_in_client_options(server):
    http = AuthorizedHttp(credentials(server), http=httplib2.Http(ca_certs=server.ca))
    gce = build("compute", "v1", http=http, static_discovery=True, client_options={"universe_domain": UNIVERSE})
    zone = gce.zones().get(project=PROJECT, zone=ZONE).execute()
    assert zone["selfLink"] == f"{API}projects/{PROJECT}/zones/{ZONE}"


def test_node_google_cloud_compute_with_universe_domain_and_a_key_file(server):
    modules = node_packages()
    proc = subprocess.run(["node", str(NODE_SCRIPT), UNIVERSE, server.key_path, PROJECT, ZONE, "u-node"],
                          env=client_env(NODE_PATH=modules, NODE_EXTRA_CA_CERTS=server.ca),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    vm = json.loads(proc.stdout.strip().splitlines()[-1])
    assert vm == {"status": "RUNNING", "selfLink": f"{API}projects/{PROJECT}/zones/{ZONE}/instances/u-node"}
