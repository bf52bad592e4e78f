"""The autohealing monitor's round (``AutohealMonitor.run_once``, every 2 s in each serving process)
by the number of managed instances: a quiet round should cost what is stopped or failing in the
groups' zones, not what the groups hold.

A ``gstack serve`` (its defaults, request log on, its own monitor off) grows managed groups of 250
e2-micro through the API until the zone holds each size, with one VM of the zone that is no member
stopped (the case where the members' names must be looked at). At each size this process runs
:data:`ROUNDS` monitor rounds on the server's database and times each; none may queue anything. The
result holds each size's median milliseconds per round with its spread, and the ratio of the
largest size's median to the smallest's. The monitor is imported from wherever ``PYTHONPATH`` finds
``core``, so the same command measures an older tree.

Usage: ``python3 -m bench.autoheal_rounds [sqlite|postgresql] [SIZE ...]`` (default sqlite 500 2000);
writes ``bench/results/autoheal_rounds_<backend>.json``.
"""

from __future__ import annotations

import sys
import time

import requests
from sqlalchemy.orm import sessionmaker

from bench.harness import Gstack, by_size, write_result
from bench.managed_group_200 import API, ZONE, _wait_op
from core.db import make_engine
from core.services.instance_group_managers.monitor import AutohealMonitor

GROUP = 250
ROUNDS = 9
IMAGE = "projects/debian-cloud/global/images/family/debian-12"
TEMPLATE = "projects/demo-project/global/instanceTemplates/bench-template"


def _prepare(g: Gstack) -> requests.Session:
    for metric in ("CPUS", "INSTANCES", "DISKS_TOTAL_GB", "IN_USE_ADDRESSES"):
        g.admin("project", "set-quota", "--project", "demo-project", "--region", "us-central1", "--metric", metric,
                "--limit", "1000000")
    g.admin("project", "set-quota", "--project", "demo-project", "--metric", "CPUS_ALL_REGIONS", "--limit", "1000000")
    for h in range(4):
        g.admin("host", "add", "--zone", ZONE, "--name", f"bench-host-{h}", "--cpus", "4096", "--memory-mb", "16777216")
    token = g.token()
    g.serve(GSTACK_LOG_REQUESTS="1", GSTACK_AUTOHEAL_INTERVAL="0")
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    disks = [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}]
    _wait_op(s, g.base, s.post(f"{g.base}{API}/global/instanceTemplates", json={"name": "bench-template", "properties": {
        "machineType": "e2-micro", "networkInterfaces": [{"network": "global/networks/default"}], "disks": disks}}).json())
    _wait_op(s, g.base, s.post(f"{g.base}{API}/zones/{ZONE}/instances", json={
        "name": "outsider", "machineType": f"zones/{ZONE}/machineTypes/e2-micro", "disks": disks,
        "networkInterfaces": [{"network": "global/networks/default"}]}).json())
    _wait_op(s, g.base, s.post(f"{g.base}{API}/zones/{ZONE}/instances/outsider/stop").json())
    return s


def _grow(s: requests.Session, base: str, made: int, size: int) -> int:
    while made < size:
        name = f"mig{made // GROUP}"
        _wait_op(s, base, s.post(f"{base}{API}/zones/{ZONE}/instanceGroupManagers", json={
            "name": name, "baseInstanceName": name, "instanceTemplate": TEMPLATE, "targetSize": GROUP}).json())
        while not s.get(f"{base}{API}/zones/{ZONE}/instanceGroupManagers/{name}").json()["status"]["isStable"]:
            time.sleep(0.2)
        made += GROUP
    return made


def main(backend: str, sizes: list[int]) -> None:
    g = Gstack(backend)
    try:
        s = _prepare(g)
        engine = make_engine(g.env()["GSTACK_DATABASE_URL"])
        monitor = AutohealMonitor(sessionmaker(bind=engine), 2.0)
        times: dict[int, list[float]] = {}
        made = 0
        for size in sizes:
            made = _grow(s, g.base, made, size)
            times[size] = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                queued = monitor.run_once()
                times[size].append((time.perf_counter() - t0) * 1e3)
                assert queued == [], queued
            print(f"{size} managed instances: {sorted(times[size])[ROUNDS // 2]:.1f} ms a round", file=sys.stderr)
        engine.dispose()
        write_result(f"autoheal_rounds_{backend}", {"backend": backend, "sizes": sizes, "group_size": GROUP,
                                                    "rounds": ROUNDS, "round_ms": by_size(times)})
    finally:
        g.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    chosen = args.pop(0) if args and not args[0].isdigit() else "sqlite"
    main(chosen, [int(a) for a in args] or [500, 2000])
