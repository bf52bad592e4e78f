"""Round trips to the database per instances.insert request and per job run to RUNNING, in process
(Flask test client), on SQLite or PostgreSQL: the number to cut for PostgreSQL, where each
statement, BEGIN, COMMIT and pool ping waits for the server (goal 6 of issue 15).

Counted on the client side: every statement SQLAlchemy sends (``before_cursor_execute``), every
transaction's BEGIN (psycopg sends it before the first statement), COMMIT and ROLLBACK, every
ping of a pooled connection, and every statement run outside a Session (``core.prepared.Prepared``,
autocommit: counted as statements, listed as ``prepared: ...``). ``-v`` prints the statements of the last insert and
of one job run.

``BENCH_BODY=gcloud``: each insert's body is gcloud's default one (``bench.insert_1000.GCLOUD_BODY``: an
external address, the default service account).

Usage: ``python3 -m bench.profile_roundtrips [sqlite|postgresql] [-v]``."""

from __future__ import annotations

import collections
import os
import sys
import time

import orjson
from sqlalchemy import event, update

from bench.harness import Gstack
from bench.insert_1000 import GCLOUD_BODY

N = 100
WARM_UP = 10
URL = "/compute/v1/projects/demo-project/zones/us-central1-a/instances"
BODY = {"machineType": "zones/us-central1-a/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}
if os.environ.get("BENCH_BODY") == "gcloud":
    BODY = GCLOUD_BODY
UNLIMITED = {"regions": {"*": {"CPUS": 1e6, "INSTANCES": 1e6, "DISKS_TOTAL_GB": 1e6, "IN_USE_ADDRESSES": 1e6}},
             "global": {"CPUS_ALL_REGIONS": 1e6}}


def backend_cpu(database: str | None) -> float:
    """CPU seconds the PostgreSQL backends serving ``database`` have used (0 on SQLite)."""
    if not database:
        return 0.0
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            if not cmd.startswith(b"postgres: ") or f" {database} ".encode() not in cmd:
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return total


def _idle(conn) -> bool:
    """No transaction open on the connection's psycopg connection (libpq's PQTRANS_IDLE)."""
    return conn.connection.driver_connection.info.transaction_status == 0


class Counter:
    def __init__(self, engine):
        self.counts: collections.Counter[str] = collections.Counter()
        self.log: list[str] = []
        event.listen(engine, "before_cursor_execute", self._stmt)
        # What the driver sends: psycopg sends BEGIN with a transaction's first statement, and no
        # COMMIT for a transaction that sent none (a statement run alone, in autocommit, sends neither).
        postgres = engine.dialect.name == "postgresql"
        if not postgres:
            event.listen(engine, "begin", lambda conn: self._add("BEGIN"))
        event.listen(engine, "commit", lambda conn: None if postgres and _idle(conn) else self._add("COMMIT"))
        event.listen(engine, "rollback", lambda conn: self._add("ROLLBACK"))
        ping = engine.dialect.do_ping

        def counted_ping(dbapi_conn):
            self._add("ping")
            return ping(dbapi_conn)

        engine.dialect.do_ping = counted_ping  # type: ignore[method-assign]
        from core.prepared import Prepared

        run = Prepared.all
        counter = self

        def counted_all(prepared, bind, params):
            if bind is engine:
                counter.counts["statements"] += 1
                counter.log.append("prepared: " + " ".join(prepared._sql(bind).sql.split())[:390])
            return run(prepared, bind, params)

        Prepared.all = counted_all

    def _add(self, what: str) -> None:
        self.counts[what] += 1
        self.log.append(what)

    def _stmt(self, conn, cursor, statement, parameters, context, executemany) -> None:
        driver = conn.connection.driver_connection
        if conn.dialect.name == "postgresql" and not driver.autocommit and _idle(conn):
            self._add("BEGIN")
        self.counts["statements"] += 1
        self.log.append(" ".join(statement.split())[:400] + ("  [many]" if executemany else ""))

    def take(self) -> tuple[collections.Counter[str], list[str]]:
        counts, log = self.counts, self.log
        self.counts, self.log = collections.Counter(), []
        return counts, log


def main(backend: str = "sqlite", verbose: bool = False) -> None:
    g = Gstack(backend)
    os.environ["GSTACK_DATABASE_URL"] = g.database_url
    try:
        from bench.inprocess import app_client
        from core.db import write_session
        from core.models import Project

        runtime, client, headers = app_client()
        with write_session(runtime.factory) as s:
            s.execute(update(Project).where(Project.name == "demo-project")
                      .values(quota_limits=orjson.dumps(UNLIMITED).decode()))
        engine = runtime.factory.kw["bind"]

        def insert(i: int) -> None:
            r = client.post(URL, json={**BODY, "name": f"vm-{i:04d}"}, headers=headers,
                            query_string={"prettyPrint": "false"})
            assert r.status_code == 200, r.get_data(as_text=True)

        for i in range(WARM_UP):
            insert(i)
            runtime.engine.run_until_idle()
        counter = Counter(engine)
        totals = {"insert": collections.Counter(), "job": collections.Counter()}
        t = {"insert": 0.0, "job": 0.0}
        cpu = {"insert": 0.0, "job": 0.0}
        db_cpu = {"insert": 0.0, "job": 0.0}
        last: dict[str, list[str]] = {}
        for i in range(WARM_UP, WARM_UP + N):  # one job per insert: what a sequential client sees
            d0 = backend_cpu(g.pg_name)  # before the clocks start: reading /proc costs this process CPU
            t0, c0 = time.perf_counter(), time.process_time()
            insert(i)
            t["insert"] += time.perf_counter() - t0
            cpu["insert"] += time.process_time() - c0
            d1 = backend_cpu(g.pg_name)
            db_cpu["insert"] += d1 - d0
            counts, last["insert"] = counter.take()
            totals["insert"] += counts
            t0, c0 = time.perf_counter(), time.process_time()
            runtime.engine.run_until_idle()
            t["job"] += time.perf_counter() - t0
            cpu["job"] += time.process_time() - c0
            db_cpu["job"] += backend_cpu(g.pg_name) - d1
            counts, last["job"] = counter.take()
            totals["job"] += counts
        for phase in ("insert", "job"):
            per = {k: round(v / N, 2) for k, v in sorted(totals[phase].items())}
            trips = sum(v for k, v in totals[phase].items()) / N
            print(f"{backend} {phase}: {t[phase] / N * 1e3:.2f} ms wall, {cpu[phase] / N * 1e3:.2f} ms CPU here + "
                  f"{db_cpu[phase] / N * 1e3:.2f} ms in PostgreSQL, {trips:.1f} round trips each {per}")
            if verbose:
                print("\n".join("    " + s for s in last[phase]))
        runtime.engine.stop()
    finally:
        g.close()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    main(*(args[:1] or ["sqlite"]), verbose="-v" in sys.argv)
