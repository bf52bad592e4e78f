"""Reads at 1,000 and at 100,000 instances (issue 15, goal 1): each should cost at most 1.5× more;
and ``gstack serve``'s start-up time and resident memory at each size (goal 5).

The instances are written straight through the core store (``new_resource``, the insert every
instance takes, thousands per transaction): through the API the growth would take hours. Then
``gstack serve`` (as users run it: request log on) answers each read many times, interleaved with
a reference request whose cost does not depend on the data (a zone's GET), and the JSON result holds
the median and spread of each read at each size and the ratio of the medians.

Lists ask for 50 items and every filter matches at least 50 instances at both sizes or exactly one
(a name, an address): the pages are the same size, only the data around them grows.

    python3 -m bench.scale [sqlite|postgresql] [small large]
"""

from __future__ import annotations

import base64
import os
import statistics
import sys
import time

import orjson
import requests
from sqlalchemy.orm import Session

from bench.harness import Gstack, write_result
from core import migrations
from core.db import make_engine, write_session
from core.resources.store import new_resource

PROJECT = "demo-project"
ZONES = ("us-central1-a", "us-central1-b")
REPEATS = int(os.environ.get("BENCH_REPEATS", "25"))


def _body(i: int) -> tuple[str, dict, str]:
    """Instance ``i``: its zone, a body shaped like the API's, its status. One in ten is in the
    second zone, one in ten has ``env=prod``, one in ten is TERMINATED (different tenths)."""
    zone = ZONES[1] if i % 10 == 3 else ZONES[0]
    base = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}"
    body = {
        "machineType": f"{base}/zones/{zone}/machineTypes/e2-micro",
        "zone": f"{base}/zones/{zone}",
        "labels": {"env": "prod" if i % 10 == 0 else "dev", "team": f"t{i % 7}"},
        "networkInterfaces": [{
            "kind": "compute#networkInterface", "name": "nic0", "network": f"{base}/global/networks/default",
            "subnetwork": f"{base}/regions/us-central1/subnetworks/default", "stackType": "IPV4_ONLY",
            "networkIP": f"10.{128 + i // 65536}.{i // 256 % 256}.{i % 256}", "fingerprint": "AAAAAAAAAAA=",
            "accessConfigs": [{"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": "External NAT",
                               "networkTier": "PREMIUM", "natIP": f"34.{i // 65536}.{i // 256 % 256}.{i % 256}"}],
        }],
        "disks": [{"kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE", "boot": True,
                   "autoDelete": True, "index": 0, "deviceName": "persistent-disk-0", "interface": "SCSI",
                   "source": f"{base}/zones/{zone}/disks/inst-{i:06d}", "diskSizeGb": "10"}],
        "metadata": {"kind": "compute#metadata", "fingerprint": "AAAAAAAAAAA="},
        "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": True, "preemptible": False},
        "cpuPlatform": "Intel Broadwell", "labelFingerprint": "AAAAAAAAAAA=", "fingerprint": "AAAAAAAAAAA=",
        "canIpForward": False, "deletionProtection": False,
    }
    return zone, body, "TERMINATED" if i % 10 == 5 else "RUNNING"


def grow(database_url: str, start: int, stop: int) -> None:
    engine = make_engine(database_url)
    migrations.prepare(engine)
    for lo in range(start, stop, 5000):
        with write_session(lambda: Session(engine, expire_on_commit=False)) as session:
            for i in range(lo, min(stop, lo + 5000)):
                zone, body, status = _body(i)
                new_resource(session, project=PROJECT, collection="instances", scope=f"zones/{zone}",
                             name=f"inst-{i:06d}", kind="compute#instance", body=body, status=status,
                             region="us-central1", subtype="e2-micro")
    if engine.dialect.name == "postgresql":
        # What autovacuum does after such growth (it is off on the CI's server): without statistics
        # the planner takes any index on (project, collection, scope) for a lookup by name.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("CHECKPOINT")  # the growth's writes, flushed now, not during the reads
    engine.dispose()


def _token(key: list, order: str) -> str:
    """The page token a client paging by name reaches after ``key`` (tokens are keyset cursors)."""
    return base64.urlsafe_b64encode(orjson.dumps({"o": order, "k": key})).decode().rstrip("=")


def reads(size: int) -> dict[str, tuple[str, dict]]:
    zonal = f"/compute/v1/projects/{PROJECT}/zones/{ZONES[0]}/instances"
    ip = _body(size // 2)[1]["networkInterfaces"][0]["networkIP"]
    late = f"inst-{size - 600 - size // 10:06d}"  # a page deep in the list
    return {
        "get": (f"{zonal}/inst-{size // 2:06d}", {}),
        "list_first_page": (zonal, {"maxResults": 50}),
        "list_later_page": (zonal, {"maxResults": 50, "pageToken": _token([late], "name")}),
        "orderBy_name": (zonal, {"maxResults": 50, "orderBy": "name"}),
        "orderBy_creationTimestamp": (zonal, {"maxResults": 50, "orderBy": "creationTimestamp desc"}),
        "name_eq": (zonal, {"filter": f"name eq inst-{size // 2:06d}"}),
        "name_eq_regex": (zonal, {"maxResults": 50, "filter": 'name eq "inst-0001.*"'}),
        "name_eq_gcloud_word": (zonal, {"filter": f'name eq ".*\\binst\\-{size // 2:06d}\\b.*"'}),
        "status": (zonal, {"maxResults": 50, "filter": "status = TERMINATED"}),
        "labels": (zonal, {"maxResults": 50, "filter": "labels.env=prod"}),
        "networkIP": (zonal, {"filter": f"networkInterfaces.networkIP = {ip}"}),
        "aggregated_zone": (f"/compute/v1/projects/{PROJECT}/aggregated/instances",
                            {"maxResults": 50, "filter": f'zone eq ".*\\b{ZONES[1]}\\b.*"'}),
    }


def measure(g: Gstack, s: requests.Session, size: int) -> dict:
    ref = f"/compute/v1/projects/{PROJECT}/zones/{ZONES[0]}"
    out = {}
    for name, (path, params) in reads(size).items():
        times, refs = [], []
        for n in range(REPEATS + 3):
            for target, into in ((path, times), (ref, refs)):
                t = time.perf_counter()
                r = s.get(g.base + target, params=params if target == path else None)
                elapsed = time.perf_counter() - t
                r.raise_for_status()
                if n >= 3:  # warm-up
                    into.append(elapsed)
        items = r_items(s.get(g.base + path, params=params).json())
        out[name] = {"median_ms": statistics.median(times) * 1e3,
                     "p10_ms": sorted(times)[len(times) // 10] * 1e3, "p90_ms": sorted(times)[-len(times) // 10] * 1e3,
                     "reference_median_ms": statistics.median(refs) * 1e3, "items": items}
    return out


def memory(pid: int) -> dict:
    """The server's resident memory now and at its peak (goal 5: at 100k within 1.5× of at 1k),
    after it served every read of :func:`reads`."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    mb = {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}
    return {"rss_mb": mb["VmRSS"], "peak_rss_mb": mb["VmHWM"], "anonymous_mb": mb["RssAnon"],
            "file_mb": mb["RssFile"]}


def r_items(body: dict) -> int:
    items = body.get("items")
    if isinstance(items, dict):
        return sum(len(v.get("instances", [])) for v in items.values())
    return len(items) if items else int("id" in body and "kind" in body and "items" not in body)


def main(backend: str = "sqlite", small: int = 1000, large: int = 100_000) -> None:
    g = Gstack(backend)
    try:
        g.admin("project", "set-quota", "--project", PROJECT, "--metric", "CPUS_ALL_REGIONS", "--limit", "1000000")
        token = g.token()
        results = {}
        have = 0
        for size in (small, large):
            t = time.perf_counter()
            grow(g.database_url, have, size)
            print(f"grew to {size} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
            have = size
            t = time.perf_counter()
            g.serve(GSTACK_LOG_REQUESTS="1")
            started = time.perf_counter() - t
            s = requests.Session()
            s.headers["Authorization"] = f"Bearer {token}"
            results[size] = measure(g, s, size)
            results[size]["serve"] = {"startup_seconds": round(started, 2), **memory(g.procs[-1].pid)}
            for p in g.procs:
                p.terminate()
                p.wait(10)
            g.procs.clear()
        serve = {size: results[size].pop("serve") for size in results}
        ratios = {name: round(results[large][name]["median_ms"] / results[small][name]["median_ms"], 2)
                  for name in results[small]}
        # Each read's median over the reference's in the same round: what is left of the ratio when
        # the machine itself was slower in one round (other work on its two cores).
        relative = {name: round(ratios[name] * results[small][name]["reference_median_ms"]
                                / results[large][name]["reference_median_ms"], 2) for name in ratios}
        write_result(f"scale_{backend}", {
            "backend": backend, "server": "gstack serve (request log on)", "repeats": REPEATS,
            "sizes": [small, large], "goal_ratio": 1.5, "ratio_of_medians": ratios,
            "ratio_against_reference": relative,
            "serve": {str(k): v for k, v in serve.items()},
            "rss_ratio": round(serve[large]["rss_mb"] / serve[small]["rss_mb"], 2),
            "startup_ratio": round(serve[large]["startup_seconds"] / serve[small]["startup_seconds"], 2),
            "ratio_of_p10": {name: round(results[large][name]["p10_ms"] / results[small][name]["p10_ms"], 2)
                             for name in ratios},
            "reads": {str(k): v for k, v in results.items()},
        })
    finally:
        g.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0] if args else "sqlite", *(int(a) for a in args[1:3]))
