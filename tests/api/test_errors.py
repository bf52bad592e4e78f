"""Google's JSON error envelope on every failure path: routing, unimplemented methods, verbs, bodies."""

from __future__ import annotations

import pytest
import requests
from googleapiclient.errors import HttpError

from tests.conftest import PROJECT, ZONE, error_of, running_server, unique


@pytest.fixture(scope="module")
def auth(server) -> dict:
    return {"Authorization": "Bearer " + server.token()}


def assert_envelope(r: requests.Response, code: int, reason: str, status: str, message: str | None = None) -> dict:
    """The v1 error format: {error: {code, message, errors: [{message, domain, reason}], status}}."""
    assert r.status_code == code, r.text
    assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
    body = r.json()
    assert list(body) == ["error"]
    err = body["error"]
    assert err["code"] == code
    assert err["status"] == status
    assert isinstance(err["message"], str) and err["message"]
    first = err["errors"][0]
    assert first["message"] == err["message"]
    assert first["domain"] == "global"
    assert first["reason"] == reason
    if message is not None:
        assert err["message"] == message
    return err


def test_unknown_path_is_json_404(server, auth):
    for path in ("/compute/v1/nothing/here", f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/frobnicators",
                 "/compute/v2/projects", "/no-such-thing"):
        r = requests.get(server.base + path, headers=auth)
        assert_envelope(r, 404, "notFound", "NOT_FOUND",
                        f"The requested URL {path} was not found on this server.")
        assert "<html" not in r.text.lower()


def test_unknown_path_without_credentials_is_still_json(server):
    r = requests.get(server.api + "nothing")
    assert r.status_code == 404
    assert r.json()["error"]["errors"][0]["reason"] == "notFound"


def test_unimplemented_discovery_method(server, auth):
    r = requests.get(f"{server.api}projects/{PROJECT}/global/externalVpnGateways", headers=auth)
    assert_envelope(r, 501, "notImplemented", "UNIMPLEMENTED",
                    "Method 'compute.externalVpnGateways.list' is not implemented by gstack.")
    r = requests.post(f"{server.api}projects/{PROJECT}/global/externalVpnGateways", headers=auth, json={"name": "x"})
    assert_envelope(r, 501, "notImplemented", "UNIMPLEMENTED")


def test_unimplemented_method_through_client(server):
    gce = server.gce()
    with pytest.raises(HttpError) as e:
        gce.externalVpnGateways().list(project=PROJECT).execute()
    assert e.value.resp.status == 501
    assert error_of(e.value)["errors"][0]["reason"] == "notImplemented"


def test_unimplemented_method_still_needs_auth(server):
    r = requests.get(f"{server.api}projects/{PROJECT}/global/externalVpnGateways")
    assert_envelope(r, 401, "required", "UNAUTHENTICATED")


def test_wrong_http_verb(server, auth):
    path = f"/compute/v1/projects/{PROJECT}/zones"
    r = requests.delete(server.base + path, headers=auth)
    err = assert_envelope(r, 405, "httpMethodNotAllowed", "INVALID_ARGUMENT",
                          f"Method DELETE is not allowed for {path}.")
    assert err
    assert "GET" in r.headers.get("Allow", "")
    r = requests.put(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", headers=auth, json={})
    assert r.status_code == 405
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


@pytest.mark.parametrize("data", ["{bad", '{"name": ', "[1, 2]", '"a string"', "\xff\xfe"])
def test_malformed_json_body(server, auth, data):
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks",
                      headers={**auth, "Content-Type": "application/json"}, data=data.encode("latin-1"))
    assert_envelope(r, 400, "invalid", "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token.")


def test_unknown_body_field(server, auth):
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", headers=auth,
                      json={"name": unique("err"), "bogus": 1})
    assert_envelope(r, 400, "invalid", "INVALID_ARGUMENT",
                    "Invalid JSON payload received. Unknown name \"bogus\" at 'resource': Cannot find field.")


def test_missing_resource_is_404(server):
    gce = server.gce()
    name = unique("nodisk")
    with pytest.raises(HttpError) as e:
        gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()
    assert e.value.resp.status == 404
    err = error_of(e.value)
    assert err["message"] == f"The resource 'projects/{PROJECT}/zones/{ZONE}/disks/{name}' was not found"
    assert err["errors"] == [{"message": err["message"], "domain": "global", "reason": "notFound"}]
    assert err["status"] == "NOT_FOUND"


def test_missing_zone_is_404(server):
    gce = server.gce()
    with pytest.raises(HttpError) as e:
        gce.disks().list(project=PROJECT, zone="nowhere-1z").execute()
    assert e.value.resp.status == 404
    assert error_of(e.value)["message"] == f"The resource 'projects/{PROJECT}/zones/nowhere-1z' was not found"


def test_bad_request_id(server, auth):
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", headers=auth,
                      params={"requestId": "not-a-uuid"}, json={"name": unique("err")})
    err = assert_envelope(r, 400, "invalid", "INVALID_ARGUMENT")
    assert err["message"].startswith("Invalid value for field 'requestId': 'not-a-uuid'.")
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", headers=auth,
                      params={"requestId": "00000000-0000-0000-0000-000000000000"}, json={"name": unique("err")})
    assert_envelope(r, 400, "invalid", "INVALID_ARGUMENT")


def test_error_envelope_has_vary_header(server):
    r = requests.get(f"{server.api}projects/{PROJECT}/zones")
    assert r.status_code == 401
    assert r.headers["Vary"] == "Origin, X-Origin, Referer"


def test_errors_respect_pretty_print(server, auth):
    r = requests.get(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks/{unique('x')}", headers=auth,
                     params={"prettyPrint": "false"})
    assert r.status_code == 404
    assert "\n" not in r.text
    r = requests.get(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks/{unique('x')}", headers=auth)
    assert r.text.startswith("{\n  ")


# -- what the server itself refuses: oversized lines and headers, odd paths, deep input ----------------

def raw_http(server, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send one hand-made HTTP/1.1 request (what requests would refuse to build) and read the answer."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:  # the server answered before reading all we sent, and closed
                break
            if not chunk:
                break
            data += chunk
    head_, _, payload = data.partition(b"\r\n\r\n")
    lines = head_.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, payload


def assert_raw_envelope(answer: tuple[int, dict[str, str], bytes], code: int, reason: str) -> dict:
    import json

    status, headers, payload = answer
    assert status == code, payload[:300]
    assert headers["content-type"] == "application/json; charset=UTF-8"
    err = json.loads(payload)["error"]
    assert err["code"] == code and err["errors"][0]["reason"] == reason and err["message"]
    return err


def test_overlong_url_is_a_json_414(server, auth):
    path = f"/compute/v1/projects/{PROJECT}/zones?filter=" + "a" * 70_000
    answer = raw_http(server, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert_raw_envelope(answer, 414, "badRequest")


def test_overlong_header_is_a_json_431(server, auth):
    r = requests.get(f"{server.api}projects/{PROJECT}/zones", headers={**auth, "X-Big": "a" * 70_000})
    assert r.status_code == 431
    assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert r.json()["error"]["errors"][0]["reason"] == "badRequest"


def test_double_slash_is_not_redirected(server, auth):
    for path in (f"/compute/v1/projects/{PROJECT}/zones//instances", f"/compute/v1/projects//{PROJECT}/zones",
                 f"/compute/v1//projects/{PROJECT}/zones/{ZONE}"):
        r = requests.get(server.base + path, headers=auth, allow_redirects=False)
        assert_envelope(r, 404, "notFound", "NOT_FOUND", f"The requested URL {path} was not found on this server.")


def test_oauth_paths_answer_json(server):
    r = requests.get(server.base + "/token", allow_redirects=False)
    assert r.status_code == 405
    assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
    r = requests.post(server.base + "/oauth2//v4/token", data={"grant_type": "x"}, allow_redirects=False)
    assert r.status_code == 404 and r.json()["error"]["errors"][0]["reason"] == "notFound"


def test_deeply_nested_body_is_a_400(server, auth):
    nested = '{"a":' * 1000 + "1" + "}" * 1000
    for body in ('{"name": "deep", "labels": ' + nested + "}", "[" * 1000 + "]" * 1000):
        r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks",
                          headers={**auth, "Content-Type": "application/json"}, data=body)
        err = assert_envelope(r, 400, "invalid", "INVALID_ARGUMENT")
        assert "Invalid JSON payload received." in err["message"]


def test_deeply_nested_filter_is_a_400(server, auth):
    for expr in ("(" * 300 + "name=x" + ")" * 300, "NOT " * 2000 + "name=x"):
        r = requests.get(f"{server.api}projects/{PROJECT}/zones", headers=auth, params={"filter": expr})
        err = assert_envelope(r, 400, "invalid", "INVALID_ARGUMENT")
        assert err["message"].startswith("Invalid value for field 'filter'")
        assert "nested too deeply" in err["message"]


def test_oversized_body_is_refused_before_it_is_read(server, auth):
    """A Content-Length over the limit (4 MiB) is answered at once: the server does not wait for 200 MB."""
    path = f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/disks"
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {200 * 1024 * 1024}\r\nConnection: close\r\n\r\n")
    err = assert_raw_envelope(raw_http(server, head.encode(), b'{"name": "big", "description": "'), 413, "badRequest")
    assert err["message"] == "Request payload size exceeds the limit: 4194304 bytes."
    assert err["status"] == "INVALID_ARGUMENT"


def test_body_under_the_limit_still_works(server, auth):
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", headers=auth,
                      json={"name": unique("small"), "bogus": "x" * (3 * 1024 * 1024)})
    assert_envelope(r, 400, "invalid", "INVALID_ARGUMENT",  # read whole, and validated
                    "Invalid JSON payload received. Unknown name \"bogus\" at 'resource': Cannot find field.")


def test_method_override_body_is_limited(server, auth):
    """The X-HTTP-Method-Override form body (a long GET filter) meets the same limit, before it is read."""
    path = f"/compute/v1/projects/{PROJECT}/zones"
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}\r\n"
            f"X-HTTP-Method-Override: GET\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\nConnection: close\r\n\r\n")
    assert_raw_envelope(raw_http(server, head.encode(), b"filter=name%3D"), 413, "badRequest")


def test_chunked_body_stops_at_the_limit():
    """A body of unknown length (chunked) is read only up to the limit, then refused with 413."""
    with running_server("sqlite", GSTACK_MAX_REQUEST_BYTES="2048") as srv:
        auth = "Bearer " + srv.token()
        payload = b'{"name": "chunky", "description": "' + b"x" * 4096 + b'"}'
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 1024]), payload[i:i + 1024])
                          for i in range(0, len(payload), 1024)) + b"0\r\n\r\n"
        head = (f"POST /compute/v1/projects/{PROJECT}/zones/{ZONE}/disks HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                "Connection: close\r\n\r\n")
        err = assert_raw_envelope(raw_http(srv, head.encode(), chunks), 413, "badRequest")
        assert err["message"] == "Request payload size exceeds the limit: 2048 bytes."
        small = b'{"name": "%s", "sizeGb": "10"}' % unique("small").encode()
        status, _, body = raw_http(srv, head.encode(), b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))
        assert status == 200, body  # a chunked body under the limit is read whole
