"""The lighter path of ``instances.get``, ``instances.list`` and an Operation's ``get`` and ``wait``
(gstack/api/fastread.py): the same bytes as the full path, and every check still made on every call (revocation, expiry,
scopes, project access) although the credential comes from the process's caches.

A query parameter the lighter path does not take (``quotaUser``: the full path ignores it, as
Google does) sends the same request through Flask's full path, the reference for the bytes.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.conftest import PROJECT, ZONE, unique, wait_op

FAMILY = "projects/debian-cloud/global/images/family/debian-12"


@pytest.fixture(scope="module")
def instances(server, gce) -> list[str]:
    """Three instances of a zone, by name."""
    names = sorted(unique("fastread") for _ in range(3))
    for name in names:
        wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body={
            "name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}],
        }).execute())
    return names


@pytest.fixture(scope="module")
def operations(server, gce, instances) -> dict[str, str]:
    """The URL of a zonal, a regional and a global Operation, ended, by kind."""
    region = ZONE.rsplit("-", 1)[0]
    made = {"zones": gce.zoneOperations().list(project=PROJECT, zone=ZONE, maxResults=1).execute()["items"][0],
            "regions": gce.addresses().insert(project=PROJECT, region=region,
                                              body={"name": unique("fastread-addr")}).execute(),
            "global": gce.firewalls().insert(project=PROJECT, body={
                "name": unique("fastread-fw"), "network": "global/networks/default",
                "allowed": [{"IPProtocol": "tcp", "ports": ["8080"]}], "sourceRanges": ["10.9.0.0/16"]}).execute()}
    for op in made.values():
        wait_op(gce, op)
    return {kind: op["selfLink"] for kind, op in made.items()}  # on the server's base, as every link


def _url(server, name: str = "") -> str:
    return f"{server.api}projects/{PROJECT}/zones/{ZONE}/instances" + (f"/{name}" if name else "")


def _get(url: str, token: str, **params) -> requests.Response:
    return requests.get(url, headers={"Authorization": "Bearer " + token}, params=params, timeout=30)


def _served_alike(call, url: str, token: str, params: dict) -> requests.Response:
    """``call(url, token, **params)`` three times (the first fills the caches, the others are served
    from them), each answering the bytes and headers of the full path (taken with ``quotaUser``,
    which the lighter path leaves to it); the last answer."""
    full = call(url, token, quotaUser="x", **params)
    assert full.status_code == 200, full.text
    for _ in range(3):
        r = call(url, token, **params)
        assert r.status_code == 200, r.text
        assert r.content == full.content
        assert r.headers["Content-Type"] == full.headers["Content-Type"] == "application/json; charset=UTF-8"
        assert r.headers["Content-Length"] == str(len(full.content))
    return r


@pytest.mark.parametrize("params", [{}, {"prettyPrint": "false"}, {"prettyPrint": "true"}, {"alt": "json"}])
def test_get_bytes_are_the_full_paths(server, instances, params):
    url = _url(server, instances[0])
    r = _served_alike(_get, url, server.token(), params)
    assert r.json()["name"] == instances[0]
    assert r.json()["selfLink"] == url


@pytest.mark.parametrize("kind", ["zones", "regions", "global"])
@pytest.mark.parametrize("params", [{}, {"prettyPrint": "false"}, {"alt": "json"}])
def test_operation_get_bytes_are_the_full_paths(server, operations, kind, params):
    url = operations[kind]
    op = _served_alike(_get, url, server.token(), params).json()
    assert (op["kind"], op["status"], op["selfLink"]) == ("compute#operation", "DONE", url)
    scope = url.split(f"/projects/{PROJECT}/")[1].split("/operations/")[0]  # zones/Z, regions/R or global
    assert kind == "global" or op[kind[:-1]] == f"{server.api}projects/{PROJECT}/{scope}"


@pytest.mark.parametrize("path", ["", f"/zones/{ZONE}"])
@pytest.mark.parametrize("params", [{}, {"prettyPrint": "false"}, {"alt": "json"}])
def test_project_and_zone_bytes_are_the_full_paths(server, path, params):
    url = f"{server.api}projects/{PROJECT}{path}"
    body = _served_alike(_get, url, server.token(), params).json()
    assert (body["kind"], body["selfLink"]) == (("compute#zone" if path else "compute#project"), url)


def test_project_and_zone_errors_and_refusals_are_the_full_paths(server):
    token, other = server.token(), server.token("https://www.googleapis.com/auth/cloud-platform.read-only")
    name = unique("fastz")
    server.admin("project", "create", name)
    stranger = server.token(project=name)
    assert _get(f"{server.api}projects/{name}", stranger).status_code == 200
    for _ in range(2):
        missing = _get(f"{server.api}projects/{PROJECT}/zones/no-such-zone", token)
        assert missing.status_code == 404 and missing.json()["error"]["errors"][0]["reason"] == "notFound"
        for path in ("", f"/zones/{ZONE}"):
            assert _get(f"{server.api}projects/{PROJECT}{path}", other).status_code == 403
            foreign = _get(f"{server.api}projects/{PROJECT}{path}", stranger)
            assert foreign.status_code == 403 and foreign.json()["error"]["errors"][0]["reason"] == "forbidden"


def _wait(url: str, token: str, body: bytes | None = None, **params) -> requests.Response:
    """``operations.wait`` as gcloud sends it (a POST with no body, ``content-length: 0``)."""
    return requests.post(url + "/wait", headers={"Authorization": "Bearer " + token}, params=params, data=body or b"",
                         timeout=130)


@pytest.mark.parametrize("kind", ["zones", "regions", "global"])
@pytest.mark.parametrize("params", [{}, {"prettyPrint": "false"}, {"alt": "json"}])
def test_operation_wait_bytes_are_the_full_paths(server, operations, kind, params):
    token = server.token()
    url = operations[kind]
    assert _served_alike(_wait, url, token, params).content == _get(url, token, quotaUser="x", **params).content
    assert _wait(url, token, body=b"{}").content == _get(url, token).content  # a body: the full path's answer


def test_a_wait_returns_when_the_operation_has_ended(server, gce, instances):
    """The lighter path waits as the full path does: what it answers is the Operation DONE (a stop's,
    queued behind nothing, sent by a caller whose token the caches hold)."""
    token = server.token()
    assert _get(_url(server, instances[2]), token).status_code == 200  # the caches hold the token now
    op = gce.instances().stop(project=PROJECT, zone=ZONE, instance=instances[2]).execute()
    r = _wait(op["selfLink"], token, alt="json")
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["status"]) == (op["name"], "DONE")
    assert gce.instances().get(project=PROJECT, zone=ZONE, instance=instances[2]).execute()["status"] == "TERMINATED"
    missing = _wait(op["selfLink"].rsplit("/", 1)[0] + "/operation-0-missing", token)
    assert missing.status_code == 404 and missing.json()["error"]["errors"][0]["reason"] == "notFound"


def test_a_wait_checks_the_caller_on_every_call(server, operations):
    token, readonly = server.token(), server.token("compute.readonly")
    other = server.token("https://www.googleapis.com/auth/cloud-platform.read-only")
    name = unique("fastw")
    server.admin("project", "create", name)
    stranger = server.token(project=name)
    assert _get(f"{server.api}projects/{name}/zones/{ZONE}/instances", stranger).status_code == 200
    for _ in range(3):
        for good in (token, readonly):
            assert _wait(operations["zones"], good).status_code == 200
        refused = _wait(operations["zones"], other)
        assert refused.status_code == 403 and refused.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"
        foreign = _wait(operations["zones"], stranger)
        assert foreign.status_code == 403 and foreign.json()["error"]["errors"][0]["reason"] == "forbidden"
    assert requests.post(server.base + "/revoke", data={"token": token}, timeout=30).status_code == 200
    revoked = _wait(operations["zones"], token)
    assert revoked.status_code == 401 and revoked.json()["error"]["errors"][0]["reason"] == "authError"


@pytest.mark.parametrize("params", [{}, {"prettyPrint": "false"}, {"maxResults": "2"},
                                    {"maxResults": "2", "orderBy": "creationTimestamp desc"},
                                    {"filter": "name = fastread-*"}])
def test_list_bytes_are_the_full_paths(server, instances, params):
    token = server.token()
    full = _get(_url(server), token, quotaUser="x", **params)
    assert full.status_code == 200, full.text
    for _ in range(2):
        r = _get(_url(server), token, **params)
        assert r.status_code == 200, r.text
        assert r.content == full.content
    page = r.json()
    if params.get("maxResults"):
        assert len(page["items"]) == 2
        following = _get(_url(server), token, pageToken=page["nextPageToken"], **params)
        assert following.content == _get(_url(server), token, pageToken=page["nextPageToken"], quotaUser="x",
                                         **params).content
    if "filter" in params:
        assert {i["name"] for i in page["items"]} >= set(instances)


def test_errors_are_the_full_paths(server, instances):
    token = server.token()
    missing = _get(_url(server, "fastread-missing"), token)
    assert missing.status_code == 404
    assert missing.json()["error"]["errors"][0]["reason"] == "notFound"
    bad_zone = _get(f"{server.api}projects/{PROJECT}/zones/no-such-zone/instances", token)
    assert bad_zone.status_code == 404
    bad_page = _get(_url(server), token, pageToken="garbage")
    assert bad_page.status_code == 400 and bad_page.json()["error"]["errors"][0]["reason"] == "invalid"


def test_operation_errors_and_ids_are_the_full_paths(server, operations):
    token = server.token()
    url = operations["zones"]
    by_name = _get(url, token)
    missing = _get(url.rsplit("/", 1)[0] + "/operation-0-missing", token)
    assert missing.status_code == 404 and missing.json()["error"]["errors"][0]["reason"] == "notFound"
    other_zone = _get(url.replace(f"/zones/{ZONE}/", "/zones/us-central1-b/"), token)  # it is not there
    assert other_zone.status_code == 404
    by_id = _get(url.rsplit("/", 1)[0] + "/" + by_name.json()["id"], token)  # a numeric id: the full path
    assert by_id.status_code == 200 and by_id.content == by_name.content


def test_revoked_token_is_refused_at_once(server, instances, operations):
    token = server.token()
    url = _url(server, instances[0])
    for _ in range(3):
        for target in (url, _url(server), operations["zones"]):
            assert _get(target, token).status_code == 200
    r = requests.post(server.base + "/revoke", data={"token": token}, timeout=30)
    assert r.status_code == 200, r.text
    for target in (url, _url(server), operations["zones"]):
        r = _get(target, token)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["errors"][0]["reason"] == "authError"


def test_expired_token_is_refused(server, instances):
    before = time.time()
    token = server.admin("token", "--project", PROJECT, "--lifetime", "4").stdout.strip()
    after = time.time()  # it expires between before + 4 and after + 4
    url = _url(server, instances[0])
    r = _get(url, token)
    if time.time() < before + 3:  # served before it expired (a slow machine may not get there in time)
        assert r.status_code == 200, r.text
        _get(url, token)
    time.sleep(max(0.0, after + 4.5 - time.time()))
    for target in (url, _url(server)):
        r = _get(target, token)
        assert r.status_code == 401, r.text


def test_scopes_are_checked_on_every_call(server, instances, operations):
    readonly = server.token("compute.readonly")
    other = server.token("https://www.googleapis.com/auth/cloud-platform.read-only")
    url = _url(server, instances[0])
    for _ in range(3):
        assert _get(url, readonly).status_code == 200
        assert _get(operations["global"], readonly).status_code == 200
        for target in (url, _url(server), operations["global"]):
            r = _get(target, other)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"


def test_other_projects_owner_is_forbidden(server, instances, operations):
    name = unique("fastp")
    server.admin("project", "create", name)
    token = server.token(project=name)
    for _ in range(3):
        assert _get(f"{server.api}projects/{name}/zones/{ZONE}/instances", token).status_code == 200
        for target in (_url(server, instances[0]), _url(server), operations["regions"]):
            r = _get(target, token)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["errors"][0]["reason"] == "forbidden"


def test_reads_are_logged_and_counted(server, instances):
    token = server.token()
    path = f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/{instances[1]}"
    metrics = requests.get(server.base + "/metrics", timeout=30)
    for _ in range(3):
        assert _get(_url(server, instances[1]), token).status_code == 200
    deadline = time.monotonic() + 10
    while server.log_tail(400).count(f"GET {path} 200 ") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.log_tail(400).count(f"GET {path} 200 ") >= 3
    if metrics.status_code == 200:  # prometheus_client installed
        before = _requests_counted(metrics.text)
        after = _requests_counted(requests.get(server.base + "/metrics", timeout=30).text)
        assert after >= before + 3


def _requests_counted(text: str) -> float:
    for line in text.splitlines():
        if line.startswith('gstack_http_requests_total{method="GET",status="200"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
