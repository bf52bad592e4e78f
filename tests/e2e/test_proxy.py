"""The intercepting proxy (``gstack serve --proxy-port``): clients that hard-code Google's hosts and
have no endpoint setting, configured with only ``HTTPS_PROXY`` and gstack's CA, as the operator's
guide says. Each client is the real one, installed by the test (npm and PyPI packages into a cache
directory), skipped with the reason when it cannot be installed.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
import requests
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account

from gstack import tls
from tests.conftest import CLOUD_PLATFORM, PROJECT, ZONE, Server, free_port
from tests.helpers.node import node_packages
from tests.helpers.tls import client_env, environ

GOOGLE = "https://www.googleapis.com/compute/v1/"
NODE_SCRIPT = pathlib.Path(__file__).with_name("node") / "proxy_list.js"
CACHE = os.environ.get("GSTACK_TEST_CACHE", os.path.expanduser("~/.cache/gstack-tests"))
ANSIBLE_PACKAGES = ("ansible>=10", "google-auth", "requests")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy",
                   "all_proxy")


class ProxyServer(Server):
    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.env_extra['GSTACK_PROXY_PORT']}"

    @property
    def ca(self) -> str:
        return os.path.join(self.data_dir, tls.CA_CERT)

    def client_env(self, **extra: str) -> dict[str, str]:
        """A client's environment: the machine's CA and proxy settings gone, then only the proxy and the CA."""
        env = {k: v for k, v in client_env().items() if k not in PROXY_VARIABLES}
        return {**env, "HTTPS_PROXY": self.proxy, "REQUESTS_CA_BUNDLE": self.ca, "NODE_EXTRA_CA_CERTS": self.ca,
                **extra}


@pytest.fixture(scope="module")
def server():
    data_dir = tempfile.mkdtemp(prefix="gstack-proxy-")
    srv = ProxyServer("sqlite", data_dir, "sqlite:///" + os.path.join(data_dir, "gstack.sqlite3"),
                      env_extra={"GSTACK_PROXY_PORT": str(free_port())})
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        violations = srv.contract_violations()
        shutil.rmtree(data_dir, ignore_errors=True)
        if violations:
            pytest.fail("responses broke the compute v1 discovery contract:\n" + violations, pytrace=False)


def api_session(server) -> requests.Session:
    """The test's own view of the server, on its plain endpoint (no proxy)."""
    creds = service_account.Credentials.from_service_account_file(server.key_path, scopes=[CLOUD_PLATFORM])
    session = AuthorizedSession(creds)
    session.trust_env = False
    return session


def test_other_destinations_are_refused_with_the_reason(server):
    with pytest.raises(requests.exceptions.ProxyError, match="tunnels only to Google API hosts"):
        requests.get("https://example.com/", proxies={"https": server.proxy}, timeout=10)
    plain = requests.get("http://compute.googleapis.com/compute/v1/", proxies={"http": server.proxy}, timeout=10)
    assert plain.status_code == 403
    assert "not to GET http://compute.googleapis.com/compute/v1/" in plain.text


def test_python_client_through_the_proxy_gets_googles_links(server):
    with environ(**server.client_env()):
        creds = service_account.Credentials.from_service_account_file(server.key_path, scopes=[CLOUD_PLATFORM])
        zone = AuthorizedSession(creds).get(f"https://compute.googleapis.com/compute/v1/projects/{PROJECT}/zones/{ZONE}")
    assert zone.status_code == 200, zone.text
    assert zone.json()["selfLink"] == f"{GOOGLE}projects/{PROJECT}/zones/{ZONE}"


def test_node_key_file_sign_in_lists_instances(server, tmp_path):
    """The key file names Google's token endpoint, as one Google issued would: Node signs in there
    (it ignores ``token_uri`` anyway), through the proxy."""
    modules = node_packages()
    key = json.loads(pathlib.Path(server.key_path).read_text())
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps({**key, "token_uri": "https://oauth2.googleapis.com/token"}))
    created = api_session(server).post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/instances", json={
        "name": "px-node", "machineType": f"zones/{ZONE}/machineTypes/e2-small",
        "disks": [{"boot": True, "autoDelete": True,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}]})
    assert created.status_code == 200, created.text
    proc = subprocess.run(["node", str(NODE_SCRIPT), str(key_file), PROJECT, ZONE],
                          env=server.client_env(NODE_PATH=modules), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"name": "px-node", "selfLink": f"{GOOGLE}projects/{PROJECT}/zones/{ZONE}/instances/px-node"} in listed


# --- Ansible's google.cloud collection ---------------------------------------------------------------

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
    gcp: &gcp {{project: {project}, auth_kind: serviceaccount, service_account_file: {key}}}
  tasks:
    - google.cloud.gcp_compute_network:
        <<: *gcp
        name: px-net
        auto_create_subnetworks: true
        state: {state}
    - google.cloud.gcp_compute_disk:
        <<: *gcp
        name: px-disk
        zone: {zone}
        size_gb: 10
        state: {state}
    - google.cloud.gcp_compute_instance:
        <<: *gcp
        name: px-vm
        zone: {zone}
        machine_type: e2-small
        disks:
          - auto_delete: true
            boot: true
            initialize_params:
              source_image: projects/debian-cloud/global/images/family/debian-12
        network_interfaces:
          - network: {{selfLink: "{google}projects/{project}/global/networks/px-net"}}
        state: {state}
"""
# Deleting runs the tasks in reverse: the instance before the network it uses.


def ansible_playbook() -> str:
    """``ansible-playbook`` from PyPI's ``ansible`` (which carries google.cloud), installed once into
    a virtual environment under the cache directory, with the google-auth and requests its gcp
    modules import (the venv sees the base interpreter's packages, not this test venv's, and a
    fresh machine's base interpreter has neither)."""
    venv = os.path.join(CACHE, "ansible")
    binary = os.path.join(venv, "bin", "ansible-playbook")
    python = os.path.join(venv, "bin", "python")
    if os.path.exists(binary) and subprocess.run([python, "-c", "import google.auth, requests"],
                                                 capture_output=True).returncode == 0:
        return binary
    made = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], capture_output=True,
                          text=True)
    proc = made if made.returncode else subprocess.run(
        [os.path.join(venv, "bin", "pip"), "install", "-q", "--no-input", *ANSIBLE_PACKAGES], capture_output=True,
        text=True, timeout=600)
    if proc.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.skip(f"could not install {' '.join(ANSIBLE_PACKAGES)}: {proc.stderr[-500:]}")
    return binary


def run_playbook(server, binary: str, tmp: pathlib.Path, state: str) -> dict[str, int]:
    text = PLAYBOOK.format(project=PROJECT, key=server.key_path, zone=ZONE, state=state, google=GOOGLE)
    if state == "absent":
        head, _, tasks = text.partition("  tasks:\n")
        steps = re.split(r"(?m)^(?=    - google)", tasks)
        text = head + "  tasks:\n" + "".join(reversed(steps[1:]))
    book = tmp / f"{state}.yml"
    book.write_text(text)
    proc = subprocess.run([binary, str(book)], env=server.client_env(ANSIBLE_HOME=str(tmp / "home")),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    recap = re.search(r"localhost\s*:\s*(.*)", proc.stdout.split("PLAY RECAP")[-1])
    assert recap, proc.stdout
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap.group(1))}


def test_ansible_creates_finds_unchanged_and_deletes(server, tmp_path):
    binary = ansible_playbook()
    api = api_session(server)
    assert run_playbook(server, binary, tmp_path, "present")["changed"] == 3
    vm = api.get(f"{server.api}projects/{PROJECT}/zones/{ZONE}/instances/px-vm").json()
    assert vm["networkInterfaces"][0]["network"].endswith("/global/networks/px-net")
    assert run_playbook(server, binary, tmp_path, "present")["changed"] == 0
    assert run_playbook(server, binary, tmp_path, "absent")["changed"] == 3
    gone = api.get(f"{server.api}projects/{PROJECT}/global/networks/px-net")
    assert gone.status_code == 404


# --- Apache libcloud ----------------------------------------------------------------------------------

def libcloud_driver(monkeypatch, key_path: str, ca: str, credential_file: str):
    """A GCENodeDriver on a key file. libcloud reads its CA from SSL_CERT_FILE when it is imported
    (else certifi's bundle); in this process it is set as libcloud's documentation says,
    ``libcloud.security.CA_CERTS_PATH``."""
    pytest.importorskip("libcloud", reason="apache-libcloud is not installed (the test extra has it)")
    import libcloud.security
    from libcloud.compute.providers import Provider, get_driver

    monkeypatch.setattr(libcloud.security, "CA_CERTS_PATH", ca)
    with open(key_path) as f:
        email = json.load(f)["client_email"]
    return get_driver(Provider.GCE)(email, key_path, project=PROJECT, datacenter=ZONE, credential_file=credential_file)


def libcloud_round_trip(driver, name: str, links: str) -> None:
    """List, create a node, create and attach a disk, destroy both: libcloud follows the links
    gstack returns (operations, the node's disks), so this fails when it cannot."""
    before = {n.name for n in driver.list_nodes()}
    node = driver.create_node(name, "e2-small", f"{links}projects/debian-cloud/global/images/family/debian-12")
    assert node.extra["selfLink"] == f"{links}projects/{PROJECT}/zones/{ZONE}/instances/{name}"
    volume = driver.create_volume(10, f"{name}-data", location=ZONE)
    assert driver.attach_volume(node, volume)
    attached = driver.ex_get_node(name, ZONE)
    assert any(d["source"].endswith(f"/disks/{name}-data") for d in attached.extra["disks"])
    assert driver.destroy_node(node)
    assert driver.destroy_volume(volume)
    assert {n.name for n in driver.list_nodes()} == before


def test_libcloud_lists_creates_attaches_and_destroys(server, tmp_path, monkeypatch):
    with environ(**server.client_env()):
        driver = libcloud_driver(monkeypatch, server.key_path, server.ca, str(tmp_path / "auth"))
        libcloud_round_trip(driver, "px-libcloud", GOOGLE)
