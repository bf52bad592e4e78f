"""CPU of a simulated router's configuration push when its serial console holds its full 1 MB,
against the same push to a new router's (a few KB), in the same run: a push appends a line to the
console, which was rewritten whole at each append (issue 15: a cost that grew with the router's age).
Goal: the ratio stays about 1.

Each round times ``PUSHES`` pushes of the same two files to one domain, then to the other
(``time.process_time``: this process's CPU, the database driver's included; PostgreSQL's server
work is not counted). Rounds alternate which domain goes first; medians and spread are reported.

Usage: ``python3 -m bench.console_push [sqlite|postgresql ...]`` (default both).
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid

from sqlalchemy.orm import sessionmaker

from bench.harness import Gstack, write_result
from core import migrations
from core.db import make_engine, write_session
from core.hypervisors.base import HostRef, NicSpec, VmSpec
from core.hypervisors.simulator import MAX_CONSOLE, SimulatorDriver
from core.models import Host
from core.services import hosts
from core.services.seed import seed

ROUNDS, PUSHES = 7, 200
FILES = {"/etc/dnsmasq.d/hosts.d/i-1": "dhcp-host=42:01:0a:00:00:02,10.0.0.2\n" * 4,
         "/etc/nftables.d/i-1.nft": "add element inet gstack vms { 10.0.0.2 }\n" * 4}
FILL = {f"/etc/{c}" + c * 240: c for c in "abcd"}  # ~800 bytes of console per push


def _router(driver: SimulatorDriver, host: HostRef, name: str) -> int:
    uid = uuid.uuid4().int >> 66
    driver.spawn(host, VmSpec(uid, name, name, 1, 512, (), (NicSpec("nic0", "42:01:0a:00:00:01", "default", "10.0.0.1"),)))
    return uid


def measure(backend: str) -> dict:
    g = Gstack(backend)  # a new database (a temporary SQLite file, or a PostgreSQL database), removed after
    engine = make_engine(g.database_url)
    try:
        migrations.prepare(engine)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        with write_session(factory) as s:
            seed(s)
            cluster = hosts.add_cluster(s, "us-central1-a", "bench-console", "simulator")
            row = Host(cluster_id=cluster.id, zone_id=cluster.zone_id, name="bench-console-host", cpus=8,
                       memory_mb=16384, status="Up")
            s.add(row)
            s.flush()
            host = hosts.host_ref(row)
        driver = SimulatorDriver(factory)
        new, old = _router(driver, host, "router-new"), _router(driver, host, "router-old")
        while driver.serial_output(old, 0)[2] < MAX_CONSOLE + 64 * 1024:
            driver.push_config(host, old, FILL)

        def round_ms(uid: int) -> float:
            start = time.process_time()
            for _ in range(PUSHES):
                driver.push_config(host, uid, FILES)
            return (time.process_time() - start) / PUSHES * 1e3

        times: dict[str, list[float]] = {"new": [], "full": []}
        for r in range(ROUNDS):
            order = [("new", new), ("full", old)] if r % 2 == 0 else [("full", old), ("new", new)]
            for label, uid in order:
                times[label].append(round(round_ms(uid), 3))
        ratios = [f / n for f, n in zip(times["full"], times["new"], strict=True)]
        result = {"per_push_ms": {k: {"median": statistics.median(v), "min": min(v), "max": max(v), "rounds": v}
                                  for k, v in times.items()},
                  "full_over_new": {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
                                    "max": round(max(ratios), 3)}}
    finally:
        engine.dispose()
        g.close()
    return result


def main(backends: list[str]) -> None:
    result = {"rounds": ROUNDS, "pushes_per_round": PUSHES,
              "backends": {b: measure(b) for b in backends}, "goal": {"full_over_new": 1.0}}
    for backend, r in result["backends"].items():
        print(f"{backend}: new {r['per_push_ms']['new']['median']} ms, full {r['per_push_ms']['full']['median']} ms "
              f"per push; full/new {r['full_over_new']}")
    print(write_result("console_push", result))


if __name__ == "__main__":
    main(sys.argv[1:] or ["sqlite", "postgresql"])
