"""The host monitor's CPU per round at scale: a routine (summary) round and a full round.

``build`` makes a SQLite database of ``size`` instances on 11 simulator hosts (the shape of the
54,000-instance copy the monitor was first measured on): nine in ten RUNNING on their host, one in
ten TERMINATED with its shut-off domain left on the host it ran on last, each with its simulator
domain. Rows go in by executemany (bodies shaped like the API's, ``bench.scale``'s bulk path) in a
minute or so, not through the API.

``measure`` runs one monitor in this process on a database built so (a copy: the full rounds
write nothing when all is in step, but the leases are written) and reports the process's CPU time
(``time.process_time``: SQLite's work included, it runs in the process) per summary round and per
full round, the median of ``rounds`` of each. It imports the monitor from wherever the tree it runs
in has it, so the same command measures an older tree (``cd old-tree && python -m bench.host_monitor
measure ...`` with this file copied there).

    python3 -m bench.host_monitor build 50000 /tmp/hm-50k.sqlite3
    python3 -m bench.host_monitor measure /tmp/hm-50k.sqlite3 [rounds]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import orjson
from sqlalchemy import insert, select
from sqlalchemy.orm import sessionmaker

from bench.harness import Gstack
from bench.scale import PROJECT, REGION, _name, _store_body
from core.db import make_engine
from core.ids import new_uid, rfc3339
from core.models import Host, Resource, SimDomain

HOSTS = 11
CHUNK = 5000


def build(size: int, path: str) -> None:
    """A database of ``size`` instances spread over 11 simulator hosts, written to ``path``."""
    g = Gstack("sqlite")
    for h in range(HOSTS):
        g.admin("host", "add", "--zone", "us-central1-a", "--name", f"mon-{h}", "--cpus", "65536",
                "--memory-mb", str(64 * 1024 * 1024))
    engine = make_engine(g.database_url)
    with engine.begin() as conn:
        hosts = list(conn.scalars(select(Host.id).where(Host.name.like("mon-%")).order_by(Host.id)))
        now = time.time()
        for lo in range(0, size, CHUNK):
            rows, domains = [], []
            for i in range(lo, min(size, lo + CHUNK)):
                uid, host = new_uid(), hosts[i % HOSTS]
                stopped = i % 10 == 5
                _, body = _store_body(i)
                zone = "us-central1-a"
                name = _name(i)
                status = "TERMINATED" if stopped else "RUNNING"
                body.update({"kind": "compute#instance", "id": str(uid), "creationTimestamp": rfc3339(now),
                             "name": name, "status": status, "zone": body["zone"].rsplit("/", 1)[0] + "/" + zone,
                             "selfLink": f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/{zone}"
                                         f"/instances/{name}"})
                rows.append({"uid": uid, "project": PROJECT, "collection": "instances", "scope": f"zones/{zone}",
                             "region": REGION, "name": name, "status": status, "subtype": "e2-micro",
                             "created": now, "body": orjson.dumps(body).decode(),
                             "host_id": None if stopped else host, "last_host_id": host,
                             "vcpus": 0 if stopped else 2, "memory_mb": 0 if stopped else 1024})
                domains.append({"instance_uid": uid, "host_id": host, "name": name,
                                "state": "shutoff" if stopped else "running", "console": "", "console_dropped": 0,
                                "boots": 1})
            conn.execute(insert(Resource), rows)
            conn.execute(insert(SimDomain), domains)
    engine.dispose()
    shutil.copy(g.database_url.removeprefix("sqlite:///"), path)
    g.close()


def _monitor_class() -> type:
    try:
        from core.services.host_monitor import HostMonitor
    except ImportError:  # a tree from before the monitor had a module of its own
        from core.services.hosts import HostMonitor  # type: ignore[attr-defined,no-redef]
    return HostMonitor


def measure(path: str, rounds: int = 5) -> dict:
    from core.hypervisors.registry import default_registry

    work = tempfile.mkdtemp(prefix="gstack-hm-")
    copy = os.path.join(work, "gstack.sqlite3")
    shutil.copy(path, copy)
    engine = make_engine("sqlite:///" + copy)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    monitor = _monitor_class()(factory, default_registry(factory))
    with factory() as s:
        instances = s.query(Resource).filter(Resource.collection == "instances").count()
        hosts = s.query(Host).count()

    def cpu(call) -> float:
        start = time.process_time()
        events = call()
        spent = time.process_time() - start
        assert not [e for e in events if e.instance], events  # all in step: no correction measured
        return spent

    cpu(lambda: monitor.run_once(force=True))  # warm: the first round reads the pages into the cache
    summary, full = [], []
    for _ in range(rounds):
        if monitor._rounds % 10 == 0:  # the next would be a slow round
            full.append(cpu(lambda: monitor.run_once(force=True)))
        summary.append(cpu(monitor.run_once))
        full.append(cpu(lambda: monitor.run_once(force=True)))
    engine.dispose()
    shutil.rmtree(work, ignore_errors=True)
    return {"instances": instances, "hosts": hosts, "rounds": rounds,
            "summary_round_cpu_s": round(statistics.median(summary), 4),
            "full_round_cpu_s": round(statistics.median(full), 4),
            "summary_rounds_s": [round(x, 4) for x in summary], "full_rounds_s": [round(x, 4) for x in full]}


def main(argv: list[str]) -> None:
    if argv[:1] == ["build"]:
        build(int(argv[1]), argv[2])
    elif argv[:1] == ["measure"]:
        print(json.dumps(measure(argv[1], *(int(a) for a in argv[2:3])), indent=1))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
