"""The server absorbs its own contention: 32 clients inserting, stopping and deleting instances at
once (issue 16) see no 4xx or 5xx and no failed Operation, and leave nothing held behind.

Before, on PostgreSQL, concurrent address allocations gave up with ``400 badRequest`` and the
usage counters' triggers deadlocked into ``500 backendError``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import bindparam, text

from tests.conftest import project_credentials, unique, wait_op

ZONE = "us-central1-b"
THREADS, PER_THREAD = 32, 3
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


class Client:
    """One client thread's raw REST calls; every answer that is not 200 is recorded as a failure."""

    def __init__(self, base: str, token: str, failures: list[str]):
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.base, self.failures = base, failures

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        resp = self.http.request(method, self.base + path, json=body, timeout=60)
        if resp.status_code != 200:
            self.failures.append(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
            return {}
        return resp.json()

    def wait(self, op: dict) -> dict:
        """Wait for an Operation (POST .../wait until DONE); a failed one is a failure too."""
        while op and op.get("status") != "DONE":
            op = self.call("POST", f"zones/{ZONE}/operations/{op['name']}/wait")
        if op and "error" in op:
            self.failures.append(f"{op['operationType']} {op['targetLink']}: {op['error']}")
        return op

    def insert(self, name: str, nic: dict | None = None) -> dict:
        return self.call("POST", f"zones/{ZONE}/instances", {
            "name": name, "machineType": f"zones/{ZONE}/machineTypes/f1-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
            "networkInterfaces": [nic or {"network": "global/networks/default"}]})


@pytest.fixture(scope="module")
def tenant(server) -> tuple[str, str, str]:
    """A project of this module's own on the shared server (its quotas and addresses are its
    alone): its name, its API base URL and a token."""
    project = unique("contend")
    project_credentials(server, project)
    return project, f"{server.api}projects/{project}/", server.token(project=project)


def _mixed_traffic(client: Client, prefix: str, uids: list[int], lock: threading.Lock) -> None:
    """Three inserts at once, then a stop and a delete at once, then the last two deletes: each
    client's calls overlap with every other client's inserts, stops and deletes."""
    names = [f"{prefix}-{n}" for n in range(PER_THREAD)]
    for op in [client.insert(name) for name in names]:
        done = client.wait(op)
        with lock:
            uids.append(int(done.get("targetId", 0)))
    for op in [client.call("POST", f"zones/{ZONE}/instances/{names[0]}/stop"),
               client.call("DELETE", f"zones/{ZONE}/instances/{names[1]}")]:
        client.wait(op)
    for op in [client.call("DELETE", f"zones/{ZONE}/instances/{n}") for n in (names[0], names[2])]:
        client.wait(op)


def test_concurrent_inserts_stops_and_deletes_never_fail(server, tenant):
    project, base, token = tenant
    failures: list[str] = []
    uids: list[int] = []
    lock = threading.Lock()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda i: _mixed_traffic(Client(base, token, failures), f"c{i}", uids, lock), range(THREADS)))
    assert not failures, f"{len(failures)} failures, the first: " + "\n".join(failures[:5])
    assert len(set(uids)) == THREADS * PER_THREAD

    left = requests.get(base + "aggregated/instances", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert all("instances" not in scoped for scoped in left.json()["items"].values())
    quotas = requests.get(base + "regions/us-central1", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    held = {q["metric"]: q["usage"] for q in quotas.json()["quotas"]}
    assert (held["INSTANCES"], held["CPUS"], held["DISKS_TOTAL_GB"]) == (0, 0, 0)
    engine = server.engine()
    try:
        with engine.connect() as conn:
            addresses = conn.execute(text("SELECT COUNT(*) FROM ip_allocations WHERE owner_uid IN :uids")
                                     .bindparams(bindparam("uids", expanding=True)), {"uids": uids}).scalar()
            placed = conn.execute(text("SELECT COUNT(*) FROM resources WHERE project = :p AND host_id IS NOT NULL"),
                                  {"p": project}).scalar()
    finally:
        engine.dispose()
    assert (addresses, placed) == (0, 0)  # no address and no host capacity is held by what was deleted


def test_a_full_subnetwork_is_the_only_refusal(tenant):
    """Six concurrent inserts into a /29 (four addresses for instances): four get an address, and
    the other two GCE's exhaustion error, not a contention error."""
    project, base, token = tenant
    failures: list[str] = []
    client = Client(base, token, failures)
    client.wait(client.call("POST", "global/networks", {"name": "narrow", "autoCreateSubnetworks": False}))
    client.wait(client.call("POST", "regions/us-central1/subnetworks", {
        "name": "narrow", "network": "global/networks/narrow", "ipCidrRange": "10.9.0.0/29"}))
    assert not failures
    nic = {"subnetwork": "regions/us-central1/subnetworks/narrow"}
    with ThreadPoolExecutor(6) as pool:
        ops = list(pool.map(lambda n: Client(base, token, failures).insert(f"n{n}", nic), range(6)))
    assert sum(1 for op in ops if op) == 4
    message = f"IP space of 'projects/{project}/regions/us-central1/subnetworks/narrow' is exhausted."
    assert len(failures) == 2 and all(" 400 " in f and message in f for f in failures), failures
    for op in ops:
        if op:
            client.wait(op)
    for op in [client.call("DELETE", f"zones/{ZONE}/instances/n{n}") for n, op in enumerate(ops) if op]:
        client.wait(op)
    assert len(failures) == 2


def _at_once(requests_: list[tuple[str, dict | None]], headers: dict) -> list[tuple[int, str]]:
    """POST each (url, body) from a thread of its own, all released together by a barrier: each
    answer's status and its first error's reason ("" when 200), sorted."""
    barrier = threading.Barrier(len(requests_))

    def post(request: tuple[str, dict | None]) -> tuple[int, str]:
        barrier.wait()
        resp = requests.post(request[0], json=request[1], headers=headers, timeout=120)
        return resp.status_code, resp.json()["error"]["errors"][0]["reason"] if resp.status_code != 200 else ""

    with ThreadPoolExecutor(len(requests_)) as pool:
        return sorted(pool.map(post, requests_))


@pytest.mark.parametrize("metric, nic", [
    ("INSTANCES", {"network": "global/networks/default"}),
    # gcloud's default NIC: an ephemeral external address
    ("IN_USE_ADDRESSES", {"network": "global/networks/default", "accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}),
], ids=["instances", "in-use-addresses"])
def test_inserts_at_once_do_not_pass_a_quota_together(server, metric, nic):
    """Eight inserts at once into a project with room for three: three are made and five refused
    with quotaExceeded, whatever the order. Each checked its quota against the usage as it read it:
    on PostgreSQL all eight passed (eight instances, a limit of three)."""
    project = unique("quota-race")
    project_credentials(server, project)
    server.admin("project", "set-quota", "--project", project, "--region", "us-central1", "--metric", metric,
                 "--limit", "3")
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {server.token(project=project)}"
    url = f"{server.api}projects/{project}/zones/{ZONE}/instances"
    answers = _at_once([(url, {"name": f"r{i}", "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
                               "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
                               "networkInterfaces": [nic]}) for i in range(8)], dict(http.headers))
    assert answers == [(200, "")] * 3 + [(403, "quotaExceeded")] * 5, answers
    quotas = http.get(f"{server.api}projects/{project}/regions/us-central1").json()["quotas"]
    assert {q["metric"]: q["usage"] for q in quotas}[metric] == 3.0
    listed = http.get(url).json().get("items", [])
    assert len(listed) == 3


def test_starts_at_once_do_not_pass_the_cpus_quota_together(server):
    """Eight stopped instances started at once with CPUS room for three of them: three start, five
    are refused with quotaExceeded (each start checked the usage as it read it, before the others'
    commits)."""
    project = unique("start-race")
    gce = server.gce(project_credentials(server, project))
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {server.token(project=project)}"
    url = f"{server.api}projects/{project}/zones/{ZONE}/instances"
    names = [f"s{i}" for i in range(8)]
    for name in names:
        wait_op(gce, http.post(url, json={
            "name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}]}).json())
    for name in names:
        wait_op(gce, http.post(f"{url}/{name}/stop").json())
    per = 2  # an e2-micro's vCPUs
    server.admin("project", "set-quota", "--project", project, "--region", "us-central1", "--metric", "CPUS",
                 "--limit", str(3 * per))
    answers = _at_once([(f"{url}/{name}/start", None) for name in names], dict(http.headers))
    assert answers == [(200, "")] * 3 + [(403, "quotaExceeded")] * 5, answers
    quotas = http.get(f"{server.api}projects/{project}/regions/us-central1").json()["quotas"]
    assert {q["metric"]: q["usage"] for q in quotas}["CPUS"] == 3 * per


def test_static_addresses_going_in_use_at_once_do_not_pass_a_quota_together(server):
    """Four forwarding rules on reserved static addresses and four instances with ephemeral external
    addresses, all at once, with IN_USE_ADDRESSES room for three: three are made, through the API
    on both databases. (The window this race had on PostgreSQL, a static address going IN_USE
    without the usage lock, is narrow here; tests/core/test_static_address_quota.py and the gate's
    test in tests/core/test_one_statement_insert.py hold it open and fail without the lock.)"""
    project = unique("static-race")
    gce = server.gce(project_credentials(server, project))
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {server.token(project=project)}"
    region = f"{server.api}projects/{project}/regions/us-central1"
    statics = []
    for i in range(4):
        wait_op(gce, http.post(f"{region}/addresses", json={"name": f"ip{i}"}).json())
        statics.append(http.get(f"{region}/addresses/ip{i}").json()["address"])
    wait_op(gce, http.post(f"{region}/targetPools", json={"name": "pool"}).json())
    server.admin("project", "set-quota", "--project", project, "--region", "us-central1", "--metric",
                 "IN_USE_ADDRESSES", "--limit", "3")
    nic = {"network": "global/networks/default", "accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}
    rules = [(f"{region}/forwardingRules", {"name": f"rule{i}", "IPAddress": statics[i], "IPProtocol": "TCP",
                                            "portRange": "80", "target": "regions/us-central1/targetPools/pool"})
             for i in range(4)]
    vms = [(f"{server.api}projects/{project}/zones/{ZONE}/instances", {
        "name": f"vm{i}", "machineType": f"zones/{ZONE}/machineTypes/e2-micro", "networkInterfaces": [nic],
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}]}) for i in range(4)]
    answers = _at_once(rules + vms, dict(http.headers))
    assert answers == [(200, "")] * 3 + [(403, "quotaExceeded")] * 5, answers
    quotas = http.get(region).json()["quotas"]
    assert {q["metric"]: q["usage"] for q in quotas}["IN_USE_ADDRESSES"] == 3.0
