"""A managed group's reconcile run by the group's size: what a run that finds nothing to do costs.

A ``gstack serve`` (its defaults, request log on, its own autohealing monitor off) makes one managed
group per size through the API and waits until it is stable. This process then times the run's
decision (``reconcile._plan``: observe every member, heal, advance the update, size the group) on the
server's database, :data:`ROUNDS` times per group, each in a transaction it rolls back; sizes
alternate. A run comes at every resize, patch, autohealing and update step, and a converging group
runs again and again, so its fixed cost is paid many times. The result holds each size's median
milliseconds per run with its spread, and the ratio of the largest size's median to the smallest's
(the members are the work: the ratio should follow the sizes, the milliseconds per member be small).
The service is imported from wherever ``PYTHONPATH`` finds ``core``, so the same command measures an
older tree.

Usage: ``python3 -m bench.reconcile_plan [sqlite|postgresql] [SIZE ...]`` (default sqlite 250 1000);
writes ``bench/results/reconcile_plan_<backend>.json``.
"""

from __future__ import annotations

import sys
import time

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bench.autoheal_rounds import TEMPLATE, _prepare
from bench.harness import Gstack, by_size, write_result
from bench.managed_group_200 import API, ZONE, _wait_op
from core.db import make_engine
from core.models import Resource
from core.services.instance_group_managers import reconcile, state

ROUNDS = 7


def main(backend: str, sizes: list[int]) -> None:
    g = Gstack(backend)
    try:
        s = _prepare(g)
        for size in sizes:
            name = f"group-{size}"
            _wait_op(s, g.base, s.post(f"{g.base}{API}/zones/{ZONE}/instanceGroupManagers", json={
                "name": name, "baseInstanceName": name, "instanceTemplate": TEMPLATE, "targetSize": size}).json())
            while not s.get(f"{g.base}{API}/zones/{ZONE}/instanceGroupManagers/{name}").json()["status"]["isStable"]:
                time.sleep(0.2)
        engine = make_engine(g.env()["GSTACK_DATABASE_URL"])
        factory = sessionmaker(bind=engine)
        times: dict[int, list[float]] = {size: [] for size in sizes}
        for r in range(ROUNDS):
            for size in (sizes if r % 2 == 0 else sizes[::-1]):
                with factory() as session:
                    group = session.scalar(select(Resource).where(
                        Resource.collection == state.COLLECTION, Resource.name == f"group-{size}"))
                    st = state.load(session, group)
                    t0 = time.perf_counter()
                    create, delete = reconcile._plan(session, group, st, "bench")
                    times[size].append((time.perf_counter() - t0) * 1e3)
                    session.rollback()
                assert create == [] and delete == [], (create, delete)
        engine.dispose()
        write_result(f"reconcile_plan_{backend}", {"backend": backend, "sizes": sizes, "rounds": ROUNDS,
                                                   "plan_ms": by_size(times)})
    finally:
        g.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    chosen = args.pop(0) if args and not args[0].isdigit() else "sqlite"
    main(chosen, [int(a) for a in args] or [250, 1000])
