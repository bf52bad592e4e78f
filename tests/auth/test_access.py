"""One gstack, many users and projects: members and roles, service accounts and their keys, and what a
caller sees of projects that are not its own."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import google.auth.transport.requests
import jwt
import pytest
import requests
from google.oauth2 import service_account
from googleapiclient.errors import HttpError

from tests.auth.conftest import admin, cli, make_project, make_user
from tests.conftest import CLOUD_PLATFORM, PROJECT, ZONE, error_of, unique
from tests.helpers.oauth import authorization_code, exchange

CACHE_TTL = 2.1  # the server caches membership lookups for two seconds


def user_token(server, person) -> str:
    code, verifier, redirect_uri = authorization_code(server.base, person.email, person.password)
    return exchange(server.base, code, verifier, redirect_uri).json()["access_token"]


def get(server, path: str, token: str) -> requests.Response:
    return requests.get(server.api + path, headers={"Authorization": "Bearer " + token})


@pytest.fixture(scope="module")
def outsider(server) -> tuple[str, str]:
    """A user who owns a project of its own and nothing else: (project, token)."""
    person = make_user(server, "owner")
    return make_project(server, unique("own"), person), user_token(server, person)


def test_owner_works_in_its_project_only(server, outsider):
    project, token = outsider
    assert get(server, f"projects/{project}/zones", token).status_code == 200
    r = requests.post(f"{server.api}projects/{project}/zones/{ZONE}/disks", headers={"Authorization": "Bearer " +
                      token}, json={"name": unique("mine"), "sizeGb": "10"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", ["zones", f"zones/{ZONE}/instances/vm-1", "global/networks", ""])
def test_inaccessible_project_answers_like_a_missing_one(server, outsider, path):
    """Google does not tell "no such project" from "not yours": both are 403 forbidden."""
    _, token = outsider
    missing = unique("nosuchproject")
    theirs = get(server, f"projects/{PROJECT}/{path}".rstrip("/"), token)
    absent = get(server, f"projects/{missing}/{path}".rstrip("/"), token)
    assert theirs.status_code == absent.status_code == 403
    assert theirs.text.replace(PROJECT, "P") == absent.text.replace(missing, "P")
    assert theirs.json()["error"]["errors"][0]["reason"] == "forbidden"


def test_public_images_are_readable_by_everyone(server, outsider, viewer):
    _, token = outsider
    for t in (token, user_token(server, viewer)):
        r = get(server, "projects/debian-cloud/global/images/family/debian-12", t)
        assert r.status_code == 200 and r.json()["family"] == "debian-12"
    r = requests.delete(f"{server.api}projects/debian-cloud/global/images/{r.json()['name']}",
                        headers={"Authorization": "Bearer " + token})
    assert r.status_code == 403 and r.json()["error"]["message"] == \
        "Required 'compute.images.delete' permission for 'projects/debian-cloud'"


def test_viewer_reads_but_cannot_write(server, viewer):
    from google.oauth2.credentials import Credentials

    gce = server.gce(credentials=Credentials(user_token(server, viewer)))
    assert gce.zones().get(project=PROJECT, zone=ZONE).execute()["name"] == ZONE
    with pytest.raises(HttpError) as e:
        gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": unique("viewer")}).execute()
    assert e.value.resp.status == 403
    assert error_of(e.value)["message"] == f"Required 'compute.disks.create' permission for 'projects/{PROJECT}'"


def test_membership_changes_take_effect(server, outsider):
    person = make_user(server, "member")
    token, unused = user_token(server, person), user_token(server, person)
    project, _ = outsider
    assert cli(server, "project", "add-member", project, person.email, "--role", "viewer").exit_code == 0
    assert get(server, f"projects/{project}/zones", token).status_code == 200
    assert cli(server, "project", "remove-member", project, person.email).exit_code == 0
    time.sleep(CACHE_TTL)
    assert get(server, f"projects/{project}/zones", token).status_code == 403
    assert cli(server, "user", "delete", person.email).exit_code == 0
    assert get(server, f"projects/{PROJECT}/zones", unused).status_code == 401


def test_administrator_reaches_every_project(server, outsider):
    """The first run made an administrator user; its password is in the data directory."""
    path = os.path.join(server.data_dir, "admin-password.txt")
    assert os.stat(path).st_mode & 0o777 == 0o600
    fields = dict(line.split(": ", 1) for line in Path(path).read_text().splitlines())
    project, _ = outsider
    person = type("Admin", (), {"email": fields["email"], "password": fields["password"]})
    token = user_token(server, person)
    assert get(server, f"projects/{project}/zones", token).status_code == 200
    assert get(server, f"projects/{PROJECT}/zones", token).status_code == 200


def test_service_account_roles_and_keys(server, tmp_path):
    """A viewer service account made with the CLI: its key file works with google-auth, its role holds,
    and disabling or deleting the key stops both the JWT-bearer grant and self-signed JWTs."""
    name = "reader-" + unique("sa").split("-")[1]
    email = cli(server, "service-account", "create", name, "--project", PROJECT, "--role", "viewer").stdout.strip()
    assert email == f"{name}@{PROJECT}.iam.gserviceaccount.com"
    key_file = str(tmp_path / "reader.json")
    admin(server, "service-account", "key", "create", email, "--output", key_file, "--base-url", server.base)
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    key = json.loads(Path(key_file).read_text())
    creds = service_account.Credentials.from_service_account_file(key_file, scopes=[CLOUD_PLATFORM])
    gce = server.gce(credentials=creds)
    assert gce.zones().list(project=PROJECT).execute()["items"]
    with pytest.raises(HttpError) as e:
        gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": unique("sa")}).execute()
    assert e.value.resp.status == 403 and error_of(e.value)["errors"][0]["reason"] == "forbidden"

    def self_signed() -> int:
        now = int(time.time())
        token = jwt.encode({"iss": email, "sub": email, "iat": now, "exp": now + 600, "scope": CLOUD_PLATFORM,
                            "jti": uuid.uuid4().hex},
                           key["private_key"], algorithm="RS256", headers={"kid": key["private_key_id"]})
        return get(server, f"projects/{PROJECT}/zones", token).status_code

    def refresh() -> None:
        service_account.Credentials.from_service_account_info(key, scopes=[CLOUD_PLATFORM]).refresh(
            google.auth.transport.requests.Request())

    assert self_signed() == 200
    cli(server, "service-account", "key", "disable", key["private_key_id"])
    assert "DISABLED" in cli(server, "service-account", "key", "list", name, "--project", PROJECT).stdout
    with pytest.raises(google.auth.exceptions.RefreshError, match="Invalid JWT Signature"):
        refresh()
    assert self_signed() == 401
    cli(server, "service-account", "key", "enable", key["private_key_id"])
    refresh()
    assert self_signed() == 200
    cli(server, "service-account", "key", "delete", key["private_key_id"])
    with pytest.raises(google.auth.exceptions.RefreshError, match="Invalid JWT Signature"):
        refresh()
    assert self_signed() == 401


def test_assertions_without_kid(server, tmp_path):
    """Node's google-auth-library and libcloud sign ``{"alg":"RS256","typ":"JWT"}`` with no ``kid``, as
    Google's server-to-server guide shows: the issuer's active keys are tried, each of its two keys
    works, a disabled one does not, and the token works on the API."""
    name = "nokid-" + unique("sa").split("-")[1]
    email = cli(server, "service-account", "create", name, "--project", PROJECT, "--role", "viewer").stdout.strip()
    keys = []
    for n in range(2):
        key_file = str(tmp_path / f"key{n}.json")
        admin(server, "service-account", "key", "create", email, "--output", key_file, "--base-url", server.base)
        keys.append(json.loads(Path(key_file).read_text()))

    def grant(key: dict) -> requests.Response:
        now = int(time.time())
        claims = {"iss": email, "aud": server.base + "/token", "iat": now, "exp": now + 3600,
                  "scope": CLOUD_PLATFORM}
        assertion = jwt.encode(claims, key["private_key"], algorithm="RS256", headers={"typ": "JWT"})
        assert "kid" not in jwt.get_unverified_header(assertion)
        return requests.post(server.base + "/token", data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})

    for key in keys:
        r = grant(key)
        assert r.status_code == 200, r.text
        assert get(server, f"projects/{PROJECT}/zones", r.json()["access_token"]).status_code == 200
    cli(server, "service-account", "key", "disable", keys[0]["private_key_id"])
    r = grant(keys[0])
    assert r.status_code == 400 and r.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    assert grant(keys[1]).status_code == 200
