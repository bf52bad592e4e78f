"""The GCE metadata server: ``gstack metadata`` (a subprocess beside ``gstack serve``, on SQLite and
PostgreSQL) serving one instance, driven over HTTP with requests and with google-auth's own
Compute Engine credentials (``compute_engine.Credentials``, ``IDTokenCredentials``,
``google.auth.default()``) pointed at it by ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP``; their
tokens then call gstack's API through googleapiclient with the instance's scopes and no more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import jwt
import pytest
import requests

from tests.conftest import ZONE, free_port, unique, wait_op
from tests.helpers.compute import fresh_project

READONLY = "https://www.googleapis.com/auth/compute.readonly"
FAMILY = "projects/debian-cloud/global/images/family/debian-12"
FLAVOR = {"Metadata-Flavor": "Google"}


class Metadata:
    """A running ``gstack metadata`` for one instance."""

    def __init__(self, server, project: str, instance: str):
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(server.data_dir, f"metadata-{instance}.log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gstack.cli", "metadata", "--project", project, "--zone", ZONE, "--instance",
             instance, "--port", str(self.port), "--data-dir", server.data_dir, "--issuer", server.base],
            env=server.env(), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, "gstack metadata exited"
            try:
                requests.get(self.root + "/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("gstack metadata did not start")

    def get(self, path: str, headers=FLAVOR, **params) -> requests.Response:
        return requests.get(f"{self.root}/computeMetadata/v1/{path}", headers=headers, params=params, timeout=30,
                            allow_redirects=False)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@dataclass
class Guest:
    md: Metadata
    inst: dict
    number: str  # the project's
    project: str
    gce: object  # googleapiclient, as the project's owner


@pytest.fixture(scope="module")
def guest(server) -> Iterator[Guest]:
    """A compute.readonly instance in a project of its own (its common metadata changes here), and
    its metadata server."""
    project, gce = fresh_project(server, "mdsrv")
    name = unique("md")
    body = {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro", "description": "a guest",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}],
            "networkInterfaces": [{"network": "global/networks/default",
                                   "accessConfigs": [{"name": "External NAT", "type": "ONE_TO_ONE_NAT"}]}],
            "tags": {"items": ["web"]},
            "metadata": {"items": [{"key": "startup-script", "value": "echo hi"},
                                   {"key": "enable-guest-attributes", "value": "TRUE"}]},
            "serviceAccounts": [{"email": "default", "scopes": [READONLY]}]}
    op = wait_op(gce, gce.instances().insert(project=project, zone=ZONE, body=body).execute())
    assert "error" not in op, op
    inst = gce.instances().get(project=project, zone=ZONE, instance=name).execute()
    number = gce.projects().get(project=project).execute()["id"]
    md = Metadata(server, project, name)
    try:
        yield Guest(md, inst, number, project, gce)
    finally:
        md.stop()
        wait_op(gce, gce.instances().delete(project=project, zone=ZONE, instance=name).execute())


def test_google_rules(guest):
    md, inst = guest.md, guest.inst
    refused = md.get("instance/id", headers={})
    assert refused.status_code == 403 and "Missing Metadata-Flavor:Google header" in refused.text
    assert refused.headers["Metadata-Flavor"] == "Google"
    proxied = md.get("instance/id", headers={**FLAVOR, "X-Forwarded-For": "10.0.0.9"})
    assert proxied.status_code == 403 and "X-Forwarded-For" in proxied.text
    root = requests.get(md.root + "/", timeout=10)  # how google-auth's ping detects GCE
    assert root.status_code == 200 and root.headers["Metadata-Flavor"] == "Google"
    missing = md.get("instance/no-such-key")
    assert missing.status_code == 404
    assert "The requested URL <code>/computeMetadata/v1/instance/no-such-key</code> was not found" in missing.text
    moved = md.get("instance", recursive="true")
    assert moved.status_code == 301 and moved.headers["Location"] == "/computeMetadata/v1/instance/?recursive=true"
    assert md.get("instance/id/").status_code == 404
    got = md.get("instance/id")
    assert got.text == inst["id"] and got.headers["Content-Type"] == "application/text"
    assert got.headers["ETag"] == md.get("instance/id").headers["ETag"]
    assert md.get("instance/id", alt="json").json() == int(inst["id"])
    assert md.get("instance/network-interfaces/").text == "0/\n"
    assert md.get("instance/scheduling/", alt="json").json() == ["automatic-restart", "on-host-maintenance",
                                                                "preemptible"]
    assert md.get("instance/scheduling/", recursive="true", alt="text").text == (
        "automatic-restart TRUE\non-host-maintenance MIGRATE\npreemptible FALSE\n")
    assert md.get("instance/id", alt="xml").status_code == 400
    assert requests.post(md.root + "/computeMetadata/v1/instance/id", headers=FLAVOR, timeout=10).status_code == 405


def test_instance_and_project_tree(guest):
    md, inst, number, project, gce = guest.md, guest.inst, guest.number, guest.project, guest.gce
    name = inst["name"]
    assert md.get("").text == "instance/\nproject/\nuniverse/\n"
    assert md.get("instance/hostname").text == f"{name}.{ZONE}.c.{project}.internal"
    assert md.get("instance/zone").text == f"projects/{number}/zones/{ZONE}"
    assert md.get("instance/machine-type").text == f"projects/{number}/machineTypes/e2-micro"
    assert md.get("instance/image").text.startswith("projects/debian-cloud/global/images/debian-12")
    now = gce.instances().get(project=project, zone=ZONE, instance=name).execute()  # other tests change it
    assert md.get("instance/tags").json() == now["tags"]["items"]
    assert md.get("instance/description").text == "a guest"
    assert md.get("instance/attributes/").text == "".join(f"{k}\n" for k in sorted(
        i["key"] for i in now["metadata"]["items"]))
    assert md.get("instance/attributes/startup-script").text == "echo hi"
    nic = inst["networkInterfaces"][0]
    tree = md.get("instance/", recursive="true").json()
    got = tree["networkInterfaces"][0]
    assert got["ip"] == nic["networkIP"] and got["network"] == f"projects/{number}/networks/default"
    assert got["accessConfigs"] == [{"externalIp": nic["accessConfigs"][0]["natIP"], "type": "ONE_TO_ONE_NAT"}]
    assert got["mac"].startswith("42:01:") and got["gateway"] and got["subnetmask"]
    assert tree["scheduling"] == {"automaticRestart": "TRUE", "onHostMaintenance": "MIGRATE", "preemptible": "FALSE"}
    assert tree["disks"][0]["deviceName"] == inst["disks"][0]["deviceName"] and tree["maintenanceEvent"] == "NONE"
    email = f"{number}-compute@developer.gserviceaccount.com"
    assert tree["serviceAccounts"]["default"] == {"aliases": ["default"], "email": email, "scopes": [READONLY]}
    assert md.get("instance/service-accounts/").text == f"{email}/\ndefault/\n"
    assert md.get("instance/service-accounts/default/scopes").text == READONLY + "\n"
    assert md.get("project/project-id").text == project
    assert md.get("project/numeric-project-id").text == number
    assert md.get("project/attributes/", recursive="true").json() == {
        i["key"]: i["value"] for i in gce.projects().get(project=project).execute()["commonInstanceMetadata"]
        .get("items", [])}


def _waiting(md: Metadata, path: str, **params) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def wait() -> None:
        started = time.monotonic()
        out["response"] = md.get(path, wait_for_change="true", **params)
        out["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=wait)
    thread.start()
    return thread, out


# A wait reads the whole view every FULL_LOOK_INTERVAL (10 s) anyway; well before it, only the stamp
# of what the API and the guest change (core.services.instance_metadata.view_stamp) wakes it.
WOKEN = 5.0


def test_wait_for_change_wakes_on_set_metadata_tags_and_stop(guest):
    md, inst, project, gce = guest.md, guest.inst, guest.project, guest.gce
    name = inst["name"]
    first = md.get("instance/attributes/", recursive="true")
    quiet = md.get("instance/attributes/", recursive="true", wait_for_change="true",
                   last_etag=first.headers["ETag"], timeout_sec="1")
    assert quiet.headers["ETag"] == first.headers["ETag"]
    assert md.get("instance/attributes/", recursive="true", wait_for_change="true",
                  last_etag="0000", timeout_sec="30").headers["ETag"] == first.headers["ETag"]  # differs: at once

    thread, out = _waiting(md, "instance/attributes/", recursive="true", last_etag=first.headers["ETag"],
                           timeout_sec="30")
    current = gce.instances().get(project=project, zone=ZONE, instance=name).execute()
    items = [*current["metadata"]["items"], {"key": "ssh-keys", "value": "alice:ssh-ed25519 AAAA alice"}]
    wait_op(gce, gce.instances().setMetadata(project=project, zone=ZONE, instance=name, body={
        "fingerprint": current["metadata"]["fingerprint"], "items": items}).execute())
    thread.join(30)
    assert out["response"].json()["ssh-keys"] == "alice:ssh-ed25519 AAAA alice" and out["seconds"] < WOKEN

    tags = md.get("instance/tags")
    thread, out = _waiting(md, "instance/tags", last_etag=tags.headers["ETag"], timeout_sec="30")
    wait_op(gce, gce.instances().setTags(project=project, zone=ZONE, instance=name, body={
        "fingerprint": current["tags"]["fingerprint"], "items": ["web", "db"]}).execute())
    thread.join(30)
    assert out["response"].json() == ["db", "web"] and out["seconds"] < WOKEN  # the API keeps tags sorted

    common = md.get("project/attributes/", recursive="true")
    thread, out = _waiting(md, "project/attributes/", recursive="true", last_etag=common.headers["ETag"],
                           timeout_sec="30")
    fingerprint = gce.projects().get(project=project).execute()["commonInstanceMetadata"].get("fingerprint")
    wait_op(gce, gce.projects().setCommonInstanceMetadata(project=project, body={
        "fingerprint": fingerprint, "items": [{"key": "block-project-ssh-keys", "value": "TRUE"}]}).execute())
    thread.join(30)
    assert out["response"].json() == {"block-project-ssh-keys": "TRUE"} and out["seconds"] < WOKEN

    event = md.get("instance/maintenance-event")
    thread, out = _waiting(md, "instance/maintenance-event", last_etag=event.headers["ETag"], timeout_sec="30")
    wait_op(gce, gce.instances().stop(project=project, zone=ZONE, instance=name).execute())
    thread.join(30)
    assert out["seconds"] < WOKEN and out["response"].text == "NONE"  # the value is the same, its guest is not
    assert out["response"].headers["ETag"] != event.headers["ETag"]
    wait_op(gce, gce.instances().start(project=project, zone=ZONE, instance=name).execute())


def test_guest_attributes_are_shown_by_the_api(guest):
    md, inst, project, gce = guest.md, guest.inst, guest.project, guest.gce
    url = f"{md.root}/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519"
    assert requests.put(url, data="AAAAC3Nza", headers=FLAVOR, timeout=10).status_code == 200
    assert requests.put(url, data="x", timeout=10).status_code == 403
    assert md.get("instance/guest-attributes/").text == "hostkeys/\n"
    assert md.get("instance/guest-attributes/hostkeys/ssh-ed25519").text == "AAAAC3Nza"
    shown = gce.instances().getGuestAttributes(project=project, zone=ZONE, instance=inst["name"],
                                               queryPath="hostkeys/").execute()
    assert shown["queryValue"]["items"] == [{"namespace": "hostkeys", "key": "ssh-ed25519", "value": "AAAAC3Nza"}]
    one = gce.instances().getGuestAttributes(project=project, zone=ZONE, instance=inst["name"],
                                             variableKey="hostkeys/ssh-ed25519").execute()
    assert one["variableValue"] == "AAAAC3Nza"
    listed = md.get("instance/guest-attributes/", recursive="true")
    thread, out = _waiting(md, "instance/guest-attributes/", recursive="true", last_etag=listed.headers["ETag"],
                           timeout_sec="30")
    assert requests.delete(url, headers=FLAVOR, timeout=10).status_code == 200
    thread.join(30)
    assert out["seconds"] < WOKEN and "ssh-ed25519" not in out["response"].text  # a wait wakes on the guest's writes
    assert md.get("instance/guest-attributes/hostkeys/ssh-ed25519").status_code == 404
    bad = requests.put(f"{md.root}/computeMetadata/v1/instance/guest-attributes/a%20b/c", data="x", headers=FLAVOR,
                       timeout=10)
    assert bad.status_code == 400


def test_identity_token_verifies_against_the_published_jwks(guest, server):
    md, inst, number = guest.md, guest.inst, guest.number
    assert md.get("instance/service-accounts/default/identity").status_code == 400
    token = md.get("instance/service-accounts/default/identity", audience="https://svc.example", format="full").text
    keys = jwt.PyJWKClient(server.base + "/oauth2/v3/certs").get_signing_key_from_jwt(token)
    claims = jwt.decode(token, keys.key, algorithms=["RS256"], audience="https://svc.example")
    assert claims["email"] == f"{number}-compute@developer.gserviceaccount.com"
    assert claims["google"]["compute_engine"]["instance_name"] == inst["name"]
    assert claims["google"]["compute_engine"]["instance_id"] == inst["id"]
    token_url = "instance/service-accounts/default/token"
    first, again = md.get(token_url).json(), md.get(token_url).json()
    assert first["token_type"] == "Bearer" and again["access_token"] == first["access_token"]
    assert 3000 < again["expires_in"] <= first["expires_in"] <= 3600
    assert md.get(token_url, scopes="https://www.googleapis.com/auth/cloud-platform").status_code == 400


# google-auth reads GCE_METADATA_HOST when it is imported: the client runs in a process of its own.
_CLIENT = """
import json, sys
import google.auth
from google.auth import compute_engine
from google.auth.transport.requests import Request
from google.oauth2 import id_token
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

api, certs, project, zone, name = sys.argv[1:]
out = {}
creds, found = google.auth.default()
out["default"] = [type(creds).__name__, found]
creds = compute_engine.Credentials()
creds.refresh(Request())
out["email"] = creds.service_account_email
gce = build("compute", "v1", credentials=creds, static_discovery=True, client_options={"api_endpoint": api},
            cache_discovery=False)
out["read"] = gce.instances().get(project=project, zone=zone, instance=name).execute()["name"]
try:
    gce.instances().setLabels(project=project, zone=zone, instance=name, body={"labels": {}}).execute()
    out["write"] = "allowed"
except HttpError as exc:
    out["write"] = [exc.resp.status, json.loads(exc.content)["error"]["errors"][0]["reason"]]
ids = compute_engine.IDTokenCredentials(Request(), "https://svc.example", use_metadata_identity_endpoint=True)
ids.refresh(Request())
out["id"] = id_token.verify_token(ids.token, Request(), audience="https://svc.example", certs_url=certs)["email"]
print(json.dumps(out))
"""


def test_google_auth_credentials_call_the_api_with_the_instance_scopes_and_verify_id_tokens(guest, server):
    md, inst, number, project = guest.md, guest.inst, guest.number, guest.project
    address = f"127.0.0.1:{md.port}"
    env = {**os.environ, "GCE_METADATA_HOST": address, "GCE_METADATA_IP": address, "NO_GCE_CHECK": "false"}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    done = subprocess.run([sys.executable, "-c", _CLIENT, server.api, server.base + "/oauth2/v3/certs", project, ZONE, inst["name"]], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["default"] == ["Credentials", project]
    assert out["email"] == f"{number}-compute@developer.gserviceaccount.com"
    assert out["read"] == inst["name"]
    assert out["write"] == [403, "insufficientPermissions"]
    assert out["id"] == out["email"]  # an ID token verified by google-auth against gstack's JWKS
