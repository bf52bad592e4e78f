"""POST /batch/compute/v1: googleapiclient's BatchHttpRequest and gcloud's raw multipart batches."""

from __future__ import annotations

import json

import pytest
import requests
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.batch import parse_multipart

PUBLIC = ["debian-cloud", "ubuntu-os-cloud", PROJECT]
_TOKENS: dict[str, str] = {}


def _token(server) -> str:
    """One admin-CLI token per server (each CLI call costs a process start)."""
    if server.data_dir not in _TOKENS:
        _TOKENS[server.data_dir] = server.token()
    return _TOKENS[server.data_dir]


def _gcloud_batch(server, parts: list[str], boundary: str = "===============5046340073717573934==",
                  outer_auth: str | None = "token", prefix: str = "3a1a23de-e94c-471e-b856-178315d08e18",
                  path: str = "/batch/compute/v1") -> requests.Response:
    """A batch framed exactly like gcloud's (images-list.txt): no Authorization in the parts."""
    chunks = []
    for n, request_line in enumerate(parts):
        method, target = request_line.split(" ", 1)
        chunks.append(
            f"--{boundary}\r\nContent-Type: application/http\r\nMIME-Version: 1.0\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <{prefix}+{n}>\r\n\r\n"
            f"{method} {target} HTTP/1.1\r\nContent-Type: application/json\r\nMIME-Version: 1.0\r\n"
            f"content-length: 0\r\nuser-agent: google-cloud-sdk\r\naccept: application/json\r\n"
            f"accept-encoding: gzip, deflate\r\nHost: 127.0.0.1:{server.port}\r\n\r\n\r\n")
    body = "".join(chunks) + f"--{boundary}--\r\n"
    headers = {"content-type": f'multipart/mixed; boundary="{boundary}"'}
    if outer_auth == "token":
        headers["authorization"] = "Bearer " + _token(server)
    elif outer_auth:
        headers["authorization"] = outer_auth
    return requests.post(server.base + path, data=body.encode(), headers=headers)


def _new_batch(server, callback) -> BatchHttpRequest:
    """gce.new_batch_http_request() posts to the discovery document's rootUrl (compute.googleapis.com) and
    ignores client_options.api_endpoint; a batch for another endpoint names its batch URI."""
    return BatchHttpRequest(callback=callback, batch_uri=server.base + "/batch/compute/v1")


def test_new_batch_http_request_ignores_endpoint(server):
    gce = server.gce()
    assert gce.new_batch_http_request()._batch_uri == "https://compute.googleapis.com/batch/compute/v1"


def test_client_batch_callbacks(server):
    gce = server.gce()
    missing = unique("nodisk")
    results: dict[str, tuple] = {}

    def callback(request_id, response, exception):
        results[request_id] = (response, exception)

    batch = _new_batch(server, callback)
    batch.add(gce.zones().get(project=PROJECT, zone=ZONE), request_id="zone")
    batch.add(gce.disks().get(project=PROJECT, zone=ZONE, disk=missing), request_id="missing")
    batch.add(gce.images().getFromFamily(project="debian-cloud", family="debian-12"), request_id="image")
    batch.add(gce.regions().get(project=PROJECT, region="us-central1"), request_id="region")
    batch.add(gce.disks().list(project=PROJECT, zone=ZONE, maxResults=1, fields="kind"), request_id="fields")
    batch.execute()
    assert set(results) == {"zone", "missing", "image", "region", "fields"}
    zone, exc = results["zone"]
    assert exc is None and zone["name"] == ZONE and zone["kind"] == "compute#zone"
    resp, exc = results["missing"]
    assert resp is None and isinstance(exc, HttpError)
    assert exc.resp.status == 404
    err = json.loads(exc.content)["error"]
    assert err["message"] == f"The resource 'projects/{PROJECT}/zones/{ZONE}/disks/{missing}' was not found"
    assert err["errors"][0]["reason"] == "notFound"
    image, exc = results["image"]
    assert exc is None and image["family"] == "debian-12"
    assert results["region"][0]["name"] == "us-central1"
    assert results["fields"][0] == {"kind": "compute#diskList"}


def test_client_batch_with_inserts(server):
    gce = server.gce()
    names = [unique("bat") for _ in range(3)]
    ops: dict[str, dict] = {}

    def callback(request_id, response, exception):
        assert exception is None, exception
        ops[request_id] = response

    batch = _new_batch(server, callback)
    for name in names:
        batch.add(gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name, "sizeGb": "10"}), request_id=name)
    batch.execute()
    assert set(ops) == set(names)
    for name, op in ops.items():
        assert op["targetLink"].endswith(f"/disks/{name}")
        assert wait_op(gce, op)["status"] == "DONE"
    listed = gce.disks().list(project=PROJECT, zone=ZONE,
                              filter=" OR ".join(f"name = {n}" for n in names)).execute()
    assert sorted(d["name"] for d in listed["items"]) == sorted(names)


def test_gcloud_raw_batch(server):
    parts = [f"GET /compute/v1/projects/{p}/global/images?alt=json&maxResults=500" for p in PUBLIC]
    parts.append(f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE}/disks/{unique('nodisk')}?alt=json")
    r = _gcloud_batch(server, parts)
    assert r.status_code == 200, r.text
    got = parse_multipart(r)
    assert [cid for cid, *_ in got] == [f"<response-3a1a23de-e94c-471e-b856-178315d08e18+{n}>"
                                        for n in range(len(parts))]
    for (_, code, headers, body), project in zip(got[:3], PUBLIC, strict=True):
        assert code == 200
        assert headers["Content-Type"] == "application/json; charset=UTF-8"
        data = json.loads(body)
        assert data["kind"] == "compute#imageList"
        assert data["id"] == f"projects/{project}/global/images"
        assert data["selfLink"] == f"{server.api}projects/{project}/global/images"
    assert json.loads(got[0][3])["items"]
    _, code, headers, body = got[3]
    assert code == 404
    assert json.loads(body)["error"]["errors"][0]["reason"] == "notFound"


def test_raw_batch_status_lines(server):
    r = _gcloud_batch(server, [f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE}",
                               f"GET /compute/v1/projects/{PROJECT}/zones/nowhere-9z"])
    text = r.content.decode()
    assert "HTTP/1.1 200 OK\r\n" in text
    assert "HTTP/1.1 404 Not Found\r\n" in text
    assert "Content-Type: application/http\r\n" in text


def test_raw_batch_full_url_targets(server):
    """googleapiclient writes the request line with the absolute path; some clients send full URLs."""
    r = _gcloud_batch(server, [f"GET {server.api}projects/{PROJECT}/zones/{ZONE}?alt=json"])
    (_, code, _, body), = parse_multipart(r)
    assert code == 200 and json.loads(body)["name"] == ZONE


def test_raw_batch_without_credentials(server):
    r = _gcloud_batch(server, [f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE}?alt=json"], outer_auth=None)
    assert r.status_code == 200
    (_, code, headers, body), = parse_multipart(r)
    assert code == 401
    assert headers["WWW-Authenticate"].startswith("Bearer ")
    assert json.loads(body)["error"]["errors"][0]["reason"] == "required"


def test_raw_batch_bad_outer_token(server):
    r = _gcloud_batch(server, [f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE}?alt=json"],
                      outer_auth="Bearer ya29.garbage")
    (_, code, _, body), = parse_multipart(r)
    assert code == 401
    assert json.loads(body)["error"]["errors"][0]["reason"] == "authError"


def test_raw_batch_part_authorization_wins(server):
    """A part that carries its own Authorization uses it instead of the outer one."""
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <p1>\r\n\r\n"
            f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE} HTTP/1.1\r\n"
            f"Authorization: Bearer ya29.garbage\r\n\r\n\r\n"
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <p2>\r\n\r\n"
            f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE} HTTP/1.1\r\n\r\n\r\n"
            f"--{boundary}--\r\n")
    r = requests.post(server.base + "/batch/compute/v1", data=body.encode(),
                      headers={"Content-Type": f"multipart/mixed; boundary={boundary}",
                               "Authorization": "Bearer " + _token(server)})
    got = parse_multipart(r)
    assert [(cid, code) for cid, code, _, _ in got] == [("<response-p1>", 401), ("<response-p2>", 200)]


def test_raw_batch_with_body(server):
    """POST parts carry a JSON body (gcloud's `disks create d1 d2`)."""
    name = unique("batraw")
    boundary = "xyz"
    payload = json.dumps({"name": name, "sizeGb": "10"})
    body = (f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <ins>\r\n\r\n"
            f"POST /compute/v1/projects/{PROJECT}/zones/{ZONE}/disks?alt=json HTTP/1.1\r\n"
            f"Content-Type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n{payload}\r\n"
            f"--{boundary}--\r\n")
    r = requests.post(server.base + "/batch/compute/v1", data=body.encode(),
                      headers={"Content-Type": f'multipart/mixed; boundary="{boundary}"',
                               "Authorization": "Bearer " + _token(server)})
    (cid, code, _, out), = parse_multipart(r)
    assert cid == "<response-ins>" and code == 200, out
    op = json.loads(out)
    assert op["kind"] == "compute#operation" and op["targetLink"].endswith("/" + name)
    assert wait_op(server.gce(), op)["status"] == "DONE"


@pytest.mark.parametrize("ctype, body", [
    ("application/json", b"{}"),
    ("multipart/mixed; boundary=zzz", b"no parts here"),
    ("multipart/mixed; boundary=zzz", b"--zzz\r\nContent-Type: application/http\r\n\r\nnot a request line\r\n--zzz--"),
])
def test_bad_batch_is_400(server, ctype, body):
    r = requests.post(server.base + "/batch/compute/v1", data=body,
                      headers={"Content-Type": ctype, "Authorization": "Bearer " + _token(server)})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == 400 and err["errors"][0]["reason"] == "invalid"


def test_batch_root_path(server):
    r = _gcloud_batch(server, [f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE}"], path="/batch")
    assert r.status_code == 200
    assert parse_multipart(r)[0][1] == 200


def test_too_many_parts_refused_before_parsing(server):
    """GCE takes at most 1,000 calls in a batch; 20,000 are refused at once, not after parsing them all."""
    import time

    boundary = "many"
    part = (f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <p>\r\n\r\n"
            f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE} HTTP/1.1\r\n\r\n\r\n")
    body = (part * 20_000 + f"--{boundary}--\r\n").encode()
    started = time.monotonic()
    r = requests.post(server.base + "/batch/compute/v1", data=body,
                      headers={"Content-Type": f"multipart/mixed; boundary={boundary}",
                               "Authorization": "Bearer " + _token(server)})
    assert time.monotonic() - started < 2.0
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == "Invalid value for field 'batch': '20000'. A batch may hold at most 1000 requests."


def test_oversized_batch_part_is_refused_alone(server):
    """A part whose body is over the request limit (4 MiB) gets its own 413; the other parts run."""
    boundary = "big"
    payload = json.dumps({"name": unique("huge"), "description": "x" * (4 * 1024 * 1024 + 1)})
    body = (f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <huge>\r\n\r\n"
            f"POST /compute/v1/projects/{PROJECT}/zones/{ZONE}/disks HTTP/1.1\r\n"
            f"Content-Type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n{payload}\r\n"
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <zone>\r\n\r\n"
            f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE} HTTP/1.1\r\n\r\n\r\n--{boundary}--\r\n")
    r = requests.post(server.base + "/batch/compute/v1", data=body.encode(),
                      headers={"Content-Type": f"multipart/mixed; boundary={boundary}",
                               "Authorization": "Bearer " + _token(server)})
    (cid1, code1, _, out1), (cid2, code2, _, _) = parse_multipart(r)
    assert (cid1, code1, cid2, code2) == ("<response-huge>", 413, "<response-zone>", 200)
    assert json.loads(out1)["error"]["message"] == "Request payload size exceeds the limit: 4194304 bytes."
