"""A fuzzer of the compute API: request bodies and query parameters drawn from the discovery
document's schemas (hypothesis-jsonschema over ``schemas/``, the JSON Schemas the server validates
bodies with), sent to a real server for a spread of collections and methods.

Whatever comes in, the server answers with no 5xx, every error is Google's envelope, and input it
refuses changes nothing: a collection lists afterwards what it listed before, plus only what an
accepted insert made. Accepted writes end in a user's error, never an internal one.

Bodies come in four kinds, from shallow to deep in the server: anything the schema admits (mostly
refused by the services' own checks), a valid base body with schema-typed values laid over it (so
the services' deeper checks run), a valid body with one field of a wrong type or an edge value,
and bytes that are not a JSON object at all (deep nesting, NaN, a bare string, broken UTF-8).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from gstack.gce.discovery import by_id
from tests.chaos.conftest import LONG, assert_google_error, scaled
from tests.conftest import PROJECT, ZONE, Server
from tests.helpers.batch import parse_multipart

pytestmark = [pytest.mark.chaos, pytest.mark.xdist_group("chaos")]  # one worker: one chaos_server

REGION = "us-central1"
SCHEMAS = os.path.join(os.path.dirname(__file__), "..", "..", "schemas")
IMAGE = "projects/debian-cloud/global/images/family/debian-12"
BOOT = [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}]
NIC = [{"network": "global/networks/default"}]
# Fuzzed inserts: method id, collection path (under the project), a valid body but for its name.
INSERTS: dict[str, tuple[str, dict]] = {
    "compute.addresses.insert": (f"regions/{REGION}/addresses", {}),
    "compute.firewalls.insert": ("global/firewalls", {
        "network": "global/networks/default", "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}],
        "sourceRanges": ["0.0.0.0/0"]}),
    "compute.networks.insert": ("global/networks", {"autoCreateSubnetworks": False}),
    "compute.disks.insert": (f"zones/{ZONE}/disks", {"sizeGb": "10"}),
    "compute.instances.insert": (f"zones/{ZONE}/instances", {
        "machineType": f"zones/{ZONE}/machineTypes/f1-micro", "disks": BOOT, "networkInterfaces": NIC}),
    "compute.subnetworks.insert": (f"regions/{REGION}/subnetworks", {
        "network": "global/networks/default", "ipCidrRange": "10.250.0.0/24"}),
    "compute.routes.insert": ("global/routes", {
        "network": "global/networks/default", "destRange": "10.251.0.0/16",
        "nextHopGateway": "global/gateways/default-internet-gateway"}),
    "compute.instanceTemplates.insert": ("global/instanceTemplates", {"properties": {
        "machineType": "f1-micro", "disks": BOOT, "networkInterfaces": NIC}}),
}
LISTS = {
    "compute.instances.list": f"zones/{ZONE}/instances",
    "compute.disks.list": f"zones/{ZONE}/disks",
    "compute.addresses.list": f"regions/{REGION}/addresses",
    "compute.firewalls.list": "global/firewalls",
    "compute.zoneOperations.list": f"zones/{ZONE}/operations",
    "compute.instances.aggregatedList": "aggregated/instances",
    "compute.machineTypes.list": f"zones/{ZONE}/machineTypes",
}
FUZZ = settings(max_examples=scaled(14, 600), deadline=None, database=None, derandomize=not LONG,
                suppress_health_check=list(HealthCheck))

# -- strategies -------------------------------------------------------------------------------

names = st.uuids().map(lambda u: f"fz-{u.hex[:12]}")
edge_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.text(min_size=300, max_size=2000),
    st.lists(st.integers(), max_size=5), st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    st.integers(min_value=50, max_value=300).map(lambda n: json.loads("[" * n + "]" * n)),
)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.integers(min_value=500, max_value=5000).map(lambda n: b'{"name":' + b"[" * n + b"]" * n + b"}"),
    st.sampled_from([b"", b"null", b"[]", b'"name"', b'{"name": NaN}', b"\xff\xfe{}", b'{"name": "\xc3"}',
                     b'{"name": "a", "name": 1}', b"{" * 3000]),
)
filter_tokens = st.sampled_from([
    "name", "status", "zone", "labels.env", "creationTimestamp", "networkInterfaces.networkIP", "=", "!=", ":",
    "<", ">=", "eq", "ne", "AND", "OR", "NOT", "-", "(", ")", '"', "'", "*", ":*", "RUNNING", "fz-.*", "1", "true",
    "\\", " ", "~", "(((((((((((((((((((((((((",
])
filters = st.one_of(st.lists(filter_tokens, max_size=25).map(" ".join), st.text(max_size=60),
                    st.integers(min_value=100, max_value=2000).map(lambda n: "(" * n + "name = a" + ")" * n))


def query_value(spec: dict) -> st.SearchStrategy[str]:
    """A value of a query parameter of the discovery spec ``spec``, or a string it does not admit."""
    junk = st.one_of(st.text(max_size=30), st.sampled_from(["", "-1", "1e99", "true", "%00", "a" * 5000]))
    if "enum" in spec:
        typed = st.sampled_from(spec["enum"])
    elif spec.get("type") == "integer":
        typed = st.integers(min_value=-(2**40), max_value=2**40).map(str)
    elif spec.get("type") == "boolean":
        typed = st.sampled_from(["true", "false"])
    else:
        typed = st.text(max_size=40)
    return st.one_of(typed, junk)


def query_params(method_id: str, extra: dict[str, st.SearchStrategy[str]] | None = None) -> st.SearchStrategy:
    """Any subset of the method's query parameters, each fuzzed (``filter`` from a filter grammar)."""
    specs = {n: p for n, p in by_id()[method_id].parameters.items() if p.get("location") == "query"}
    strategies = {n: filters if n == "filter" else query_value(p) for n, p in specs.items()}
    return st.fixed_dictionaries({}, optional={**strategies, **(extra or {})})


@functools.cache
def body_schema(method_id: str) -> dict:
    with open(os.path.join(SCHEMAS, "index.json")) as f:
        name = json.load(f)[method_id]
    with open(os.path.join(SCHEMAS, name)) as f:
        return json.load(f)


def bodies(method_id: str, base: dict) -> st.SearchStrategy[tuple[str | None, bytes]]:
    """(the name the body asks for, the body's bytes) of the four kinds the module docstring names."""
    schema = body_schema(method_id)
    fields = sorted(schema["properties"])

    def valid(name: str) -> dict:
        return {**base, "name": name}

    admitted = from_schema(schema).map(lambda b: (b.get("name") if isinstance(b.get("name"), str) else None, b))
    overlaid = st.builds(lambda b, n: (n, {**b, **valid(n)}), from_schema(schema), names)
    mutated = st.builds(lambda n, field, value: (n, {**valid(n), field: value}), names, st.sampled_from(fields),
                        edge_values)
    as_json = st.one_of(admitted, overlaid, mutated).map(lambda nb: (nb[0], json.dumps(nb[1]).encode()))
    return st.one_of(as_json, raw_bodies.map(lambda raw: (None, raw)))


# -- the server -------------------------------------------------------------------------------

class Fuzzed:
    """Raw HTTP to the server as the project's owner; every answer checked: no 5xx, errors in
    Google's envelope, successes JSON."""

    def __init__(self, server: Server):
        self.base = f"{server.api}projects/{PROJECT}/"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {server.token()}"

    def send(self, method: str, path: str, params: dict | None = None, data: bytes | None = None) -> requests.Response:
        headers = {"Content-Type": "application/json"} if data is not None else {}
        resp = self.http.request(method, self.base + path, params=params, data=data, headers=headers, timeout=60)
        assert resp.status_code < 500, f"{method} {path} {params} {data!r:.300} -> {resp.status_code} {resp.text[:500]}"
        if resp.status_code >= 400:
            assert_google_error(resp)
        else:
            resp.json()
        return resp

    def names(self, path: str) -> set[str]:
        out, token = set(), None
        while True:
            page = self.send("GET", path, {"maxResults": "500", **({"pageToken": token} if token else {})}).json()
            items = page.get("items", [])
            if isinstance(items, dict):  # an aggregated list: scope -> {collection: [...]}
                items = [item for scoped in items.values() for v in scoped.values() if isinstance(v, list)
                         for item in v]
            out |= {item["name"] for item in items}
            token = page.get("nextPageToken")
            if not token:
                return out

    def finish(self, ops: list[dict]) -> None:
        """Wait for accepted writes: each ends DONE, and an error it ends with is a user's (4xx)."""
        for op in ops:
            scope = f"zones/{ZONE}/" if "zone" in op else f"regions/{REGION}/" if "region" in op else "global/"
            while op["status"] != "DONE":
                op = self.send("POST", f"{scope}operations/{op['name']}/wait").json()
            assert op.get("httpErrorStatusCode", 200) < 500, op


@pytest.fixture(scope="module")
def fuzzed(chaos_server) -> Fuzzed:
    return Fuzzed(chaos_server)


def run(test: Callable[..., None], **strategies: st.SearchStrategy) -> None:
    FUZZ(given(**strategies)(test))()


@pytest.mark.parametrize("method_id", sorted(INSERTS))
def test_fuzzed_inserts(fuzzed, method_id):
    path, base = INSERTS[method_id]
    before = fuzzed.names(path)
    accepted: dict[str, dict] = {}

    def insert(body: tuple[str | None, bytes], params: dict) -> None:
        resp = fuzzed.send("POST", path, params, body[1])
        if resp.status_code == 200:
            accepted[resp.json()["targetLink"].rsplit("/", 1)[1]] = resp.json()

    run(insert, body=bodies(method_id, base), params=query_params(method_id))
    fuzzed.finish(list(accepted.values()))
    made = fuzzed.names(path) - before
    assert made <= set(accepted), f"refused inserts made {sorted(made - set(accepted))}"


@pytest.mark.parametrize("method_id", sorted(LISTS))
def test_fuzzed_list_parameters(fuzzed, method_id):
    path = LISTS[method_id]
    before = fuzzed.names(path)

    def list_page(params: dict) -> None:
        fuzzed.send("GET", path, params)

    run(list_page, params=query_params(method_id))
    assert fuzzed.names(path) == before


def test_fuzzed_paths_and_writes_on_them(fuzzed):
    """Resource names and actions in the path: junk names, a ``//``, dot segments, encoded
    slashes. Reads and deletes of what is not there are 4xx, and nothing existing changes."""
    path = f"zones/{ZONE}/instances"
    before = fuzzed.names(path)
    segment = st.one_of(st.text(max_size=70), st.sampled_from(["", ".", "..", "%2F", "a/b", "\x00", "é" * 40]))

    def call(name: str, verb: tuple[str, str], body: bytes) -> None:
        method, suffix = verb
        fuzzed.send(method, f"{path}/{quote(name, safe='/')}{suffix}", None, body if method == "POST" else None)

    run(call, name=segment, body=raw_bodies | st.just(b"{}"),
        verb=st.sampled_from([("GET", ""), ("DELETE", ""), ("POST", "/stop"), ("POST", "/setLabels"),
                              ("POST", "/setMetadata"), ("GET", "/getSerialPortOutput"), ("POST", "/nothing")]))
    assert fuzzed.names(path) == before


@pytest.mark.parametrize("case", ["body-5MiB", "body-chunked-5MiB", "url-70KiB", "header-70KiB", "double-slash"])
def test_oversized_and_odd_requests(fuzzed, case):
    """What the HTTP layer refuses before a view sees it is still Google's envelope, and makes nothing."""
    path = f"zones/{ZONE}/disks"
    before = fuzzed.names(path)
    url, big = fuzzed.base + path, b'{"name": "big", "description": "' + b"x" * (5 << 20) + b'"}'
    headers = dict(fuzzed.http.headers)
    if case == "body-5MiB":
        resp = requests.post(url, data=big, headers={**headers, "Content-Type": "application/json"}, timeout=60)
    elif case == "body-chunked-5MiB":
        chunks = (big[i:i + 65536] for i in range(0, len(big), 65536))
        resp = requests.post(url, data=chunks, headers={**headers, "Content-Type": "application/json"}, timeout=60)
    elif case == "url-70KiB":
        resp = requests.get(url, params={"filter": "name = " + "a" * (70 << 10)}, headers=headers, timeout=60)
    elif case == "header-70KiB":
        resp = requests.get(url, headers={**headers, "X-Padding": "a" * (70 << 10)}, timeout=60)
    else:
        resp = requests.get(fuzzed.base + f"zones/{ZONE}//disks", headers=headers, timeout=60,
                            allow_redirects=False)
    assert 400 <= resp.status_code < 500, (case, resp.status_code, resp.text[:300])
    assert_google_error(resp)
    assert fuzzed.names(path) == before


def test_what_the_long_run_found(fuzzed):
    """Regressions of what GSTACK_CHAOS_LONG=1 found: JSON null is proto3's "unset". A null
    ``description`` or ``shieldedInstanceConfig.enableVtpm`` was stored and listed as null (the
    response contract's 500 on every later list), and a null ``name`` was refused as
    "Invalid value ... 'None'" instead of a missing field."""
    disk = {"name": "null-description", "sizeGb": "10", "description": None}
    instance = {"name": "null-description-vm", "description": None, "shieldedInstanceConfig": {"enableVtpm": None},
                "scheduling": {"preemptible": None, "onHostMaintenance": "MIGRATE"}, "machineType": f"zones/{ZONE}/machineTypes/f1-micro",
                "disks": [{**BOOT[0], "initializeParams": {"sourceImage": IMAGE, "description": None}}]}
    region_disk = {"name": "null-description", "sizeGb": "200", "description": None,
                   "replicaZones": [f"zones/{ZONE}", f"zones/{REGION}-b"]}
    ops = [fuzzed.send("POST", path, data=json.dumps(body).encode())
           for path, body in ((f"zones/{ZONE}/disks", disk), (f"zones/{ZONE}/instances", instance),
                              (f"regions/{REGION}/disks", region_disk))]
    assert [op.status_code for op in ops] == [200] * 3, [op.text[:300] for op in ops]
    fuzzed.finish([op.json() for op in ops])
    for path, name in ((f"zones/{ZONE}/disks", "null-description"), (f"zones/{ZONE}/disks", "null-description-vm"),
                       (f"zones/{ZONE}/instances", "null-description-vm"), (f"regions/{REGION}/disks", "null-description")):
        assert name in fuzzed.names(path)  # a list checks every item against the contract
    for path in (f"regions/{REGION}/addresses", "global/firewalls", f"zones/{ZONE}/disks"):
        resp = fuzzed.send("POST", path, data=b'{"name": null}')
        assert assert_google_error(resp, 400)["message"] == "Required field 'resource.name' not specified"


def test_fuzzed_batches(chaos_server, fuzzed):
    """Multipart batches of fuzzed parts (request lines, headers, bodies, boundaries): the batch is
    answered 200 with a part per request or refused in Google's envelope; a part's own answer is
    never a 5xx."""
    token = fuzzed.http.headers["Authorization"]
    request_line = st.one_of(
        st.sampled_from([f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE}/disks", "POST /compute/v1/projects/"
                         f"{PROJECT}/zones/{ZONE}/disks", "GET /compute/v1/../../etc/passwd", "GET /token",
                         f"DELETE /compute/v1/projects/{PROJECT}/global/networks/default", "BREW /coffee"]),
        st.text(max_size=60))
    part = st.tuples(request_line, st.text(max_size=40), raw_bodies | st.just(b"{}"))

    def send(parts: list, boundary: str) -> None:
        body = b"".join(f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <{i}>\r\n\r\n"
                        f"{line} HTTP/1.1\r\nX-Junk: {header}\r\nContent-Type: application/json\r\n\r\n".encode(
                            "utf-8", "surrogatepass") + payload + b"\r\n"
                        for i, (line, header, payload) in enumerate(parts)) + f"--{boundary}--\r\n".encode()
        resp = requests.post(chaos_server.base + "/batch/compute/v1", data=body, timeout=60, headers={
            "Authorization": token, "Content-Type": f"multipart/mixed; boundary={boundary}"})
        assert resp.status_code < 500, resp.text[:500]
        if resp.status_code != 200:
            assert_google_error(resp)
            return
        for _, code, _, content in parse_multipart(resp):
            assert code < 500, content[:500]

    run(send, parts=st.lists(part, max_size=4),
        boundary=st.one_of(st.just("b0undary"), st.text(alphabet="abc-=_019", min_size=1, max_size=70)))


def test_fuzzed_token_requests(chaos_server):
    """The token endpoint answers any form with RFC 6749's JSON error (or a token), never a 5xx."""
    grants = st.sampled_from(["urn:ietf:params:oauth:grant-type:jwt-bearer", "refresh_token", "authorization_code",
                              "client_credentials", "urn:ietf:params:oauth:grant-type:device_code", "password", ""])
    form = st.fixed_dictionaries({"grant_type": grants | st.text(max_size=20)}, optional={
        key: st.text(max_size=300) for key in ("assertion", "refresh_token", "code", "client_id", "client_secret",
                                               "scope", "redirect_uri", "code_verifier", "device_code")})

    def send(data: dict) -> None:
        resp = requests.post(chaos_server.base + "/token", data=data, timeout=60,
                             headers={"X-Forwarded-For": "192.0.2.77"})  # its failures limit only this address
        assert resp.status_code < 500, resp.text[:500]
        assert "error" in resp.json() or "access_token" in resp.json(), resp.text[:300]

    run(send, data=form)


def test_batch_part_header_with_a_bare_cr(chaos_server, fuzzed):
    """Found by the long run: a bare CR inside a part's header line was a 500 (werkzeug refuses a
    header value holding one); it is read as a space, as RFC 9112 allows."""
    body = (f"--b\r\nContent-Type: application/http\r\nContent-ID: <p1>\r\n\r\n"
            f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE}/disks HTTP/1.1\r\nX-Junk: 0\r0\r\n\r\n{{}}\r\n--b--\r\n")
    resp = requests.post(chaos_server.base + "/batch/compute/v1", data=body.encode(), timeout=60, headers={
        "Authorization": fuzzed.http.headers["Authorization"], "Content-Type": "multipart/mixed; boundary=b"})
    assert resp.status_code == 200, resp.text[:300]
    assert [code for _, code, _, _ in parse_multipart(resp)] == [200]
