"""Reads at 1,000, 10,000 and 100,000 instances (issue 15, goal 1: each should cost at most 1.5×
what it costs at the smallest size), and the server's start-up time and resident memory at each
size (goal 5).

Growth goes through the API, the path users take: ``instances.bulkInsert`` requests of
:data:`BATCH` instances (a boot disk each, an address in a /12 subnetwork, labels), each waited for
until its Operation is DONE, i.e. every instance of it RUNNING on the zero-latency simulator (hosts
with room for 100,000 e2-micro are added first, and the zones' storage pools are made large enough
for their boot disks). At most two bulk requests are in flight, so the
project's queue stays under the backpressure bound. One in ten batches goes to the second zone, one
in ten has ``env=prod``; 90 of the first 1,000 instances are stopped (``instances.stop``), so
``status = TERMINATED`` matches the same 90 at every size (``status = RUNNING`` all the others).

Where a growth through the API would not end in reasonable time (100,000 instances at the rate
this machine reaches, see ``grow_rate`` in the result), ``BENCH_SCALE_GROW=store`` (or a size
listed in ``BENCH_SCALE_STORE_SIZES``) grows that step by the documented bulk path instead, and
``BENCH_SCALE_API_SECONDS`` bounds the run's growth through the API (the step under way when it
runs out ends by the bulk path):
instances written straight through the core store (``core.resources.store.new_resource``, the
insert each instance takes, thousands per transaction; the body shaped like the API's, no disk
rows, addresses outside IPAM). The JSON's ``grown_by`` says which path grew each size.

At each size ``gstack serve`` (as users run it: request log on) and then gunicorn (the operator's
guide's 2 sync workers; ``BENCH_SCALE_SERVERS=serve`` for the first only) are started afresh (their
start-up time and, after the reads, their resident memory are in the result), and each read is measured by ``wrk`` (one
connection, not a Python client sharing the server's two cores) for :data:`SECONDS` seconds,
alternating in :data:`ROUNDS` rounds with a reference request whose cost does not depend on the
data (the zone's GET). The result holds each read's median latency over the rounds with its spread
(min and max of the rounds' medians), the reference's, and the ratio of each size's medians to the
smallest size's, raw and over the reference's ratio (what is left when the machine was slower in
one round: three other benchmarks share it).

Lists ask for 50 items and every filter matches at least 50 instances at every size or exactly one
(a name, an address): the pages are the same size, only the data around them grows.

    python3 -m bench.scale [sqlite|postgresql] [sizes...]      # default 1000 10000 100000
"""

from __future__ import annotations

import base64
import os
import statistics
import sys
import time
from urllib.parse import urlencode

import orjson
import requests
from sqlalchemy.orm import Session

from bench.harness import Gstack, load_average, write_result, wrk_latency
from core import migrations
from core.db import make_engine, write_session
from core.resources.store import new_resource

PROJECT = "demo-project"
REGION = "us-central1"
ZONES = ("us-central1-a", "us-central1-b")
BATCH = 100  # one bulkInsert: one zone, one set of labels (a tenth of each thousand)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "1"))
API = f"/compute/v1/projects/{PROJECT}"
SUBNET_CIDR = "10.0.0.0/12"  # a million addresses: the default subnetwork's /20 holds 4,092


def _zone_of_batch(k: int) -> str:
    return ZONES[1] if k % 10 == 3 else ZONES[0]


def _labels_of_batch(k: int) -> dict[str, str]:
    return {"env": "prod" if k % 10 == 0 else "dev", "team": f"t{k % 7}"}


def _name(i: int) -> str:
    return f"inst-{i:06d}"


class Client:
    """The API as the benchmark calls it: a session with the project's token."""

    def __init__(self, base: str, token: str):
        self.base = base
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: dict | None = None, **params) -> dict:
        r = self.s.request(method, self.base + path, json=body, params=params or None, timeout=600)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json()

    def done(self, op: dict) -> bool:
        op = self.call("GET", "/compute/v1" + op["selfLink"].split("/compute/v1", 1)[1])
        if op["status"] != "DONE":
            return False
        if op.get("error"):
            raise RuntimeError(f"operation {op['name']} failed: {op['error']}")
        return True

    def wait(self, op: dict) -> None:
        while not self.done(op):
            time.sleep(0.1)


def prepare(g: Gstack) -> None:
    """Quota and simulated hosts for 100,000 e2-micro (2 vCPUs, 1 GB each; nine in ten in the first zone)."""
    for metric in ("CPUS", "INSTANCES", "DISKS_TOTAL_GB", "SSD_TOTAL_GB", "IN_USE_ADDRESSES"):
        g.admin("project", "set-quota", "--project", PROJECT, "--region", REGION, "--metric", metric,
                "--limit", "100000000")
    g.admin("project", "set-quota", "--project", PROJECT, "--metric", "CPUS_ALL_REGIONS", "--limit", "100000000")
    for zone in ZONES:
        for h in range(4):
            g.admin("host", "add", "--zone", zone, "--name", f"scale-{zone[-1]}-{h}", "--cpus", "65536",
                    "--memory-mb", str(64 * 1024 * 1024))
        g.admin("pool", "resize", f"{zone}-primary", "--capacity-gb", "1000000000")  # 100,000 boot disks


def network(c: Client) -> str:
    """A custom network whose subnetwork has room for every instance; its URL."""
    c.wait(c.call("POST", f"{API}/global/networks", {"name": "scale", "autoCreateSubnetworks": False}))
    c.wait(c.call("POST", f"{API}/regions/{REGION}/subnetworks", {
        "name": "scale", "network": f"projects/{PROJECT}/global/networks/scale", "ipCidrRange": SUBNET_CIDR}))
    return f"projects/{PROJECT}/regions/{REGION}/subnetworks/scale"


def grow_api(c: Client, subnet: str, start: int, stop: int, until: float = float("inf")) -> int:
    """Instances ``start`` to ``stop`` through ``instances.bulkInsert``, until all are RUNNING; or
    fewer, when ``until`` (a ``time.monotonic()``) has passed: how many there are then."""
    assert start % BATCH == 0 and stop % BATCH == 0, "sizes are multiples of the batch"
    in_flight: list[dict] = []
    for lo in range(start, stop, BATCH):
        if time.monotonic() > until:
            stop = lo
            break
        k = lo // BATCH
        zone = _zone_of_batch(k)
        body = {
            "count": BATCH,
            "perInstanceProperties": {_name(i): {} for i in range(lo, lo + BATCH)},
            "instanceProperties": {
                "machineType": "e2-micro", "labels": _labels_of_batch(k),
                "networkInterfaces": [{"subnetwork": subnet}],
                "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
                    "sourceImage": "projects/debian-cloud/global/images/family/debian-12", "diskSizeGb": "10"}}],
            },
        }
        in_flight.append(c.call("POST", f"{API}/zones/{zone}/instances/bulkInsert", body))
        while len(in_flight) >= 2:
            c.wait(in_flight.pop(0))
    for op in in_flight:
        c.wait(op)
    return stop


def stop_some(c: Client) -> None:
    """Stop instances 5, 15, ... 995 of the first zone: ``status = TERMINATED`` matches these 90."""
    ops = [c.call("POST", f"{API}/zones/{ZONES[0]}/instances/{_name(i)}/stop") for i in range(5, 1000, 10)
           if _zone_of_batch(i // BATCH) == ZONES[0]]
    for op in ops:
        c.wait(op)


def _store_body(i: int) -> tuple[str, dict]:
    """Instance ``i`` as the bulk path writes it: its zone and a body shaped like the API's."""
    k = i // BATCH
    zone = _zone_of_batch(k)
    base = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}"
    host = 16 + i  # above every address the API handed out (they start at .2 and are fewer than i)
    body = {
        "machineType": f"{base}/zones/{zone}/machineTypes/e2-micro",
        "zone": f"{base}/zones/{zone}",
        "labels": _labels_of_batch(k),
        "networkInterfaces": [{
            "kind": "compute#networkInterface", "name": "nic0", "network": f"{base}/global/networks/scale",
            "subnetwork": f"{base}/regions/{REGION}/subnetworks/scale", "stackType": "IPV4_ONLY",
            "networkIP": f"10.{host >> 16 & 15}.{host >> 8 & 255}.{host & 255}", "fingerprint": "AAAAAAAAAAA=",
        }],
        "disks": [{"kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE", "boot": True,
                   "autoDelete": True, "index": 0, "deviceName": "persistent-disk-0", "interface": "SCSI",
                   "source": f"{base}/zones/{zone}/disks/{_name(i)}", "diskSizeGb": "10"}],
        "metadata": {"kind": "compute#metadata", "fingerprint": "AAAAAAAAAAA="},
        "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": True, "preemptible": False},
        "cpuPlatform": "Intel Broadwell", "labelFingerprint": "AAAAAAAAAAA=", "fingerprint": "AAAAAAAAAAA=",
        "canIpForward": False, "deletionProtection": False,
    }
    return zone, body


def grow_store(database_url: str, start: int, stop: int) -> None:
    """The documented bulk path: instances ``start`` to ``stop`` straight through the core store."""
    engine = make_engine(database_url)
    migrations.prepare(engine)
    for lo in range(start, stop, 5000):
        with write_session(lambda: Session(engine, expire_on_commit=False)) as session:
            for i in range(lo, min(stop, lo + 5000)):
                zone, body = _store_body(i)
                new_resource(session, project=PROJECT, collection="instances", scope=f"zones/{zone}",
                             name=_name(i), kind="compute#instance", body=body, status="RUNNING",
                             region=REGION, subtype="e2-micro")
    engine.dispose()


def settle(database_url: str) -> None:
    if database_url.startswith("postgresql"):
        # What autovacuum does after such growth (it is off on the CI's server): without statistics
        # the planner takes any index on (project, collection, scope) for a lookup by name.
        engine = make_engine(database_url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("CHECKPOINT")  # the growth's writes, flushed now, not during the reads
        engine.dispose()


def _token(key: list, order: str) -> str:
    """The page token a client paging by name reaches after ``key`` (tokens are keyset cursors)."""
    return base64.urlsafe_b64encode(orjson.dumps({"o": order, "k": key})).decode().rstrip("=")


def reads(c: Client, size: int) -> dict[str, tuple[str, dict]]:
    zonal = f"{API}/zones/{ZONES[0]}/instances"
    middle = size // 2 + 1  # batch 0 of each thousand: the first zone
    assert _zone_of_batch(middle // BATCH) == ZONES[0]
    ip = c.call("GET", f"{zonal}/{_name(middle)}")["networkInterfaces"][0]["networkIP"]
    late = _name(size - 600 - size // 10)  # a page deep in the list
    word = f'.*\\binst\\-{middle:06d}\\b.*'  # gcloud's --filter=name:inst-000501
    return {
        "get": (f"{zonal}/{_name(middle)}", {}),
        "project_get": (API, {}),  # gcloud's read before every instance it creates (its quotas count)
        "region_get": (f"{API}/regions/{ZONES[0].rsplit('-', 1)[0]}", {}),  # its quotas count addresses in use
        "list_first_page": (zonal, {"maxResults": 50}),
        "list_later_page": (zonal, {"maxResults": 50, "pageToken": _token([late], "name")}),
        "orderBy_name": (zonal, {"maxResults": 50, "orderBy": "name"}),
        "orderBy_creationTimestamp": (zonal, {"maxResults": 50, "orderBy": "creationTimestamp desc"}),
        "name_eq": (zonal, {"filter": f"name eq {_name(middle)}"}),
        "name_eq_regex": (zonal, {"maxResults": 50, "filter": 'name eq "inst-0001.*"'}),
        "name_eq_gcloud_word": (zonal, {"filter": f'name eq "{word}"'}),
        "status": (zonal, {"maxResults": 50, "filter": "status = TERMINATED"}),
        "status_running": (zonal, {"maxResults": 50, "filter": "status = RUNNING"}),
        "status_not_terminated": (zonal, {"maxResults": 50, "filter": "status != TERMINATED"}),  # gcloud's
        "status_not_running": (zonal, {"maxResults": 50, "filter": '(status ne "RUNNING")'}),  # the 90 stopped
        "labels": (zonal, {"maxResults": 50, "filter": "labels.env=prod"}),
        "networkIP": (zonal, {"filter": f"networkInterfaces.networkIP = {ip}"}),
        "aggregated_zone": (f"{API}/aggregated/instances",
                            {"maxResults": 50, "filter": f'zone eq ".*\\b{ZONES[1]}\\b.*"'}),
        "aggregated_newest_first": (f"{API}/aggregated/instances",
                                    {"maxResults": 50, "orderBy": "creationTimestamp desc"}),
    }


def _items(body: dict) -> int:
    items = body.get("items")
    if isinstance(items, dict):
        return sum(len(v.get("instances", [])) for v in items.values())
    return len(items) if items else int("id" in body and "kind" in body and "items" not in body)


def measure(c: Client, token: str, size: int) -> dict:
    """Each read and the reference, alternating, ROUNDS rounds of SECONDS each under wrk."""
    headers = {"Authorization": f"Bearer {token}"}
    ref = c.base + f"{API}/zones/{ZONES[0]}"
    out = {}
    for name, (path, params) in reads(c, size).items():
        url = c.base + path + ("?" + urlencode(params) if params else "")
        wrk_latency(url, headers, 0.3)  # warm-up
        target, reference = [], []
        for _ in range(ROUNDS):
            target.append(wrk_latency(url, headers, SECONDS))
            reference.append(wrk_latency(ref, headers, SECONDS))
        p50 = [t["p50_ms"] for t in target]
        refs = [r["p50_ms"] for r in reference]
        out[name] = {"median_ms": round(statistics.median(p50), 3), "min_ms": round(min(p50), 3),
                     "max_ms": round(max(p50), 3), "p90_ms": round(statistics.median(t["p90_ms"] for t in target), 3),
                     "requests": sum(t["requests"] for t in target),
                     "reference_median_ms": round(statistics.median(refs), 3),
                     "over_reference": round(statistics.median(t / r for t, r in zip(p50, refs, strict=True)), 2),
                     "items": _items(c.call("GET", path, **params))}
    return out


def memory(pids: list[int]) -> dict:
    """The server's resident memory now and at its peak, after it served every read (goal 5); with
    gunicorn, the largest worker's."""
    best: dict = {}
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        mb = {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}
        if not best or mb["VmRSS"] > best["rss_mb"]:
            best = {"rss_mb": mb["VmRSS"], "peak_rss_mb": mb["VmHWM"], "anonymous_mb": mb["RssAnon"],
                    "file_mb": mb["RssFile"]}
    return best


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _stop(g: Gstack) -> None:
    for p in g.procs:
        p.terminate()
        p.wait(30)
    g.procs.clear()


SERVERS = {"serve": "gstack serve (request log on)", "gunicorn": "gunicorn, 2 sync workers (request log on)"}


def _start(g: Gstack, server: str) -> str:
    if server == "gunicorn":
        return g.gunicorn(workers=2, GSTACK_LOG_REQUESTS="1")
    g.serve(GSTACK_LOG_REQUESTS="1")
    return g.base


def _summary(results: dict[int, dict], serve: dict) -> dict:
    """One server's reads and memory at each size, with the ratios to the smallest size."""
    sizes = list(results)
    small = sizes[0]
    ratios = {str(size): {name: round(results[size][name]["median_ms"] / results[small][name]["median_ms"], 2)
                          for name in results[small]} for size in sizes[1:]}
    # Each ratio over the reference's ratio in the same size's rounds.
    relative = {str(size): {name: round(results[size][name]["over_reference"]
                                        / results[small][name]["over_reference"], 2) for name in results[small]}
                for size in sizes[1:]}
    return {
        "ratio_of_medians": ratios, "ratio_against_reference": relative,
        "serve": {str(k): v for k, v in serve.items()},
        "rss_ratio": {str(s): round(serve[s]["rss_mb"] / serve[small]["rss_mb"], 2) for s in sizes[1:]},
        "startup_ratio": {str(s): round(serve[s]["startup_seconds"] / serve[small]["startup_seconds"], 2)
                          for s in sizes[1:]},
        "reads": {str(k): v for k, v in results.items()},
    }


def main(backend: str = "sqlite", *sizes: int) -> None:
    sizes = sizes or (1000, 10_000, 100_000)
    store_sizes = {int(s) for s in os.environ.get("BENCH_SCALE_STORE_SIZES", "").split(",") if s}
    if os.environ.get("BENCH_SCALE_GROW") == "store":
        store_sizes |= set(sizes)
    servers = os.environ.get("BENCH_SCALE_SERVERS", "serve,gunicorn").split(",")
    # Seconds of growth through the API in the whole run; past them the rest grows by the bulk path.
    budget = float(os.environ.get("BENCH_SCALE_API_SECONDS", "inf"))
    t_api = time.monotonic()
    g = Gstack(backend)
    try:
        prepare(g)
        token = g.token()
        results: dict[str, dict[int, dict]] = {server: {} for server in servers}
        serve: dict[str, dict[int, dict]] = {server: {} for server in servers}
        grown_by, grow_rate, loads = {}, {}, {}
        have, subnet = 0, None
        for size in sizes:
            t = time.perf_counter()
            reached = have
            if size not in store_sizes:
                g.serve(GSTACK_LOG_REQUESTS="1")
                c = Client(g.base, token)
                if subnet is None:
                    subnet = network(c)
                reached = grow_api(c, subnet, have, size, t_api + budget)
                if have == 0:
                    stop_some(c)
                _stop(g)
                grown_by[size] = f"API to {reached}: instances.bulkInsert of {BATCH}, each waited for until DONE"
            if reached < size:
                grow_store(g.database_url, reached, size)
                grown_by[size] = (grown_by.get(size, "") + f"; core store (bulk path) from {reached}").lstrip("; ")
            grown = time.perf_counter() - t
            grow_rate[size] = {"instances": size - have, "seconds": round(grown, 1),
                               "instances_per_second": round((size - have) / grown, 1)}
            print(f"grew to {size} in {grown:.1f}s ({grown_by[size]})", file=sys.stderr)
            have = size
            settle(g.database_url)
            loads[size] = {}
            for server in servers:
                t = time.perf_counter()
                base = _start(g, server)
                started = time.perf_counter() - t
                before = load_average()
                results[server][size] = measure(Client(base, token), token, size)
                loads[size][server] = {"before": before, "after": load_average()}
                pids = [p.pid for p in g.procs]
                if server == "gunicorn":
                    pids = [child for pid in pids for child in _children(pid)]  # the workers
                serve[server][size] = {"startup_seconds": round(started, 2), **memory(pids)}
                _stop(g)
                print(f"measured {server} at {size}", file=sys.stderr)
            # Written after each size: a run stopped before the largest keeps what it measured.
            write_result(f"scale_{backend}", {
                "backend": backend, "load_generator": (f"wrk, 1 connection, {ROUNDS} rounds of {SECONDS:g}s "
                                                       "alternating with the reference"),
                "sizes": list(results[servers[0]]), "goal_ratio": 1.5,
                "grown_by": {str(k): v for k, v in grown_by.items()},
                "grow_rate": {str(k): v for k, v in grow_rate.items()},
                "load_average": {str(k): v for k, v in loads.items()},
                "servers": {SERVERS[server]: _summary(results[server], serve[server]) for server in servers},
            })
    finally:
        g.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0] if args else "sqlite", *(int(a) for a in args[1:]))
