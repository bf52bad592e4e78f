"""Mixed traffic from 32 clients (issue 16's load run): lists, gets, inserts, stops, starts and deletes,
each write followed by ``operations.wait`` until DONE, against a simulator that takes 0.2 s per
hypervisor call.

Reports, as JSON (also written to ``bench/results/mixed_load-<layout>.json``): the 5xx count and
connection errors, latency percentiles by kind of call, the tail of ``operations.wait`` (how long a
write took to be DONE, and how long after its job ended the client's wait returned), and the API
process's RSS and open file descriptors before and after; then an audit of the database (no
operation left undone, no duplicate instance).

Layouts:

- ``embedded``: one ``gstack serve`` running its own job threads;
- ``scaleout`` (PostgreSQL): HAProxy in front of two ``gstack serve`` processes that run no jobs, two
  ``gstack worker`` processes, and the first API process killed (-9) halfway through. Clients retry
  a write that got no answer (a reset or a 502/503 from the proxy) with the same ``requestId``, as
  Google's clients do; the report counts what failed around the kill against what was in flight.

Usage: ``python3 -m bench.mixed_load [sqlite|postgresql] [embedded|scaleout] [seconds] [clients]``
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime

import requests
from sqlalchemy import create_engine, text

from bench.harness import Gstack, free_port, write_result

ZONE = "us-central1-a"
PROJECT = "demo-project"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"
LATENCY = "0.2"
JOB_THREADS = "4"
RETRYABLE = {429, 502, 503, 504}


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"count": len(ordered), "p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 1)}


def process_usage(pid: int) -> dict:
    """RSS (MiB) and open file descriptors of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return {"rss_mib": round(rss_kb / 1024, 1), "open_fds": len(os.listdir(f"/proc/{pid}/fd"))}


class Tally:
    """What every client saw, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: Counter[int] = Counter()
        self.connection_errors = 0
        self.failed_calls: list[str] = []  # calls that failed for good (after retries, if any)
        self.op_total: list[float] = []  # a write's POST to its DONE
        self.wait_after_done: list[float] = []  # a job's endTime to the client's wait returning
        self.in_flight = 0
        self.errors_at: list[float] = []  # when a 5xx or connection error was seen

    def record(self, kind: str, seconds: float, status: int | None) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            if status is None:
                self.connection_errors += 1
            else:
                self.statuses[status] += 1
            if status is None or status >= 500:
                self.errors_at.append(time.monotonic())


class Client:
    """One client: raw REST with a token, its own instances, and a weighted choice of call each turn."""

    def __init__(self, base: str, token: str, index: int, tally: Tally, retry_writes: bool):
        self.api = f"{base}/compute/v1/projects/{PROJECT}/zones/{ZONE}/"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.index, self.tally, self.retry_writes = index, tally, retry_writes
        self.mine: dict[str, str] = {}  # name -> RUNNING | TERMINATED
        self.serial = 0
        self.rng = random.Random(index)

    def call(self, kind: str, method: str, path: str, **kw) -> requests.Response | None:
        with self.tally.lock:
            self.tally.in_flight += 1
        t0 = time.perf_counter()
        try:
            resp = self.http.request(method, self.api + path, timeout=120, **kw)
        except requests.RequestException:
            resp = None
        finally:
            with self.tally.lock:
                self.tally.in_flight -= 1
        self.tally.record(kind, time.perf_counter() - t0, resp.status_code if resp is not None else None)
        return resp

    def write(self, kind: str, method: str, path: str, body: dict | None = None) -> dict | None:
        """A write with a requestId, sent again on no answer or a proxy's 5xx when retrying; its
        Operation waited for until DONE."""
        params = {"requestId": str(uuid.uuid4())}
        start = time.perf_counter()
        for _ in range(20 if self.retry_writes else 1):
            resp = self.call(kind, method, path, params=params, json=body)
            if resp is not None and resp.status_code not in RETRYABLE:
                break
            time.sleep(0.5)
        if resp is None or resp.status_code != 200:
            self.fail(f"{kind} {path}: {resp.status_code if resp is not None else 'no answer'}")
            return None
        return self.wait(resp.json(), start)

    def wait(self, op: dict, start: float) -> dict | None:
        while op["status"] != "DONE":
            resp = self.call("operations.wait", "POST", f"operations/{op['name']}/wait")
            if resp is None or resp.status_code in RETRYABLE:
                time.sleep(0.5)
                continue
            if resp.status_code != 200:
                self.fail(f"wait {op['name']}: {resp.status_code}")
                return None
            op = resp.json()
        returned = time.time()
        with self.tally.lock:
            self.tally.op_total.append(time.perf_counter() - start)
            if "endTime" in op:
                self.tally.wait_after_done.append(max(0.0, returned - datetime.fromisoformat(op["endTime"]).timestamp()))
        if "error" in op:
            self.fail(f"{op['operationType']} {op['targetLink']}: {op['error']}")
            return None
        return op

    def fail(self, what: str) -> None:
        with self.tally.lock:
            self.tally.failed_calls.append(what)

    def turn(self) -> None:
        running = [n for n, s in self.mine.items() if s == "RUNNING"]
        stopped = [n for n, s in self.mine.items() if s == "TERMINATED"]
        roll = self.rng.random()
        if not self.mine or (roll < 0.15 and len(self.mine) < 4):
            self.serial += 1
            name = f"load-{self.index}-{self.serial}"
            body = {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
                    "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}]}
            if self.write("instances.insert", "POST", "instances", body):
                self.mine[name] = "RUNNING"
        elif roll < 0.25 and (running or stopped):
            name = self.rng.choice(running or stopped)
            action, after = ("stop", "TERMINATED") if self.mine[name] == "RUNNING" else ("start", "RUNNING")
            if self.write(f"instances.{action}", "POST", f"instances/{name}/{action}"):
                self.mine[name] = after
        elif roll < 0.32 or len(self.mine) >= 4:
            name = self.rng.choice(list(self.mine))
            if self.write("instances.delete", "DELETE", f"instances/{name}"):
                del self.mine[name]
        elif roll < 0.60:
            self.call("instances.list", "GET", "instances", params={"maxResults": "50"})
        elif roll < 0.85:
            self.call("instances.get", "GET", f"instances/{self.rng.choice(list(self.mine))}")
        elif roll < 0.93:
            self.call("operations.list", "GET", "operations", params={"maxResults": "20"})
        else:
            self.call("machineTypes.list", "GET", "machineTypes")


HAPROXY = """global
  maxconn 2000
  stats socket {socket}
defaults
  mode http
  timeout connect 2s
  timeout client 130s
  timeout server 130s
  retries 3
  option redispatch
frontend api
  bind 127.0.0.1:{port}
  default_backend gstack
backend gstack
  balance roundrobin
  option httpchk GET /healthz
{servers}
"""


def start_scaleout(g: Gstack) -> tuple[list[subprocess.Popen], subprocess.Popen]:
    """Two API processes (no jobs) and two workers behind HAProxy on ``g.port``: the API processes
    and the proxy."""
    ports = [free_port(), free_port()]
    apis = []
    for port in ports:
        g.serve(port=port, GSTACK_RUN_JOBS="0", GSTACK_SIM_LATENCY=LATENCY)
        apis.append(g.procs[-1])
    for _ in range(2):
        g.worker(threads=int(JOB_THREADS), GSTACK_SIM_LATENCY=LATENCY)
    servers = "\n".join(f"  server api{i} 127.0.0.1:{p} check inter 500 fall 2 rise 2" for i, p in enumerate(ports))
    config = os.path.join(g.data_dir, "haproxy.cfg")
    with open(config, "w") as f:
        f.write(HAPROXY.format(port=g.port, servers=servers, socket=os.path.join(g.data_dir, "haproxy.sock")))
    proxy = subprocess.Popen(["haproxy", "-db", "-f", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    g.procs.append(proxy)
    for _ in range(100):
        try:
            requests.get(g.base + "/healthz", timeout=2)
            break
        except requests.RequestException:
            time.sleep(0.1)
    return apis, proxy


def proxied_sessions(g: Gstack, server: str) -> int:
    """Requests HAProxy has in flight on ``server`` now (``scur`` of its stats socket)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(os.path.join(g.data_dir, "haproxy.sock"))
        sock.sendall(b"show stat\n")
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    lines = out.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    row = next(dict(zip(header, line.split(","), strict=False)) for line in lines[1:]
               if line.split(",")[1:2] == [server])
    return int(row["scur"])


def audit(database_url: str, settle: float = 30.0) -> dict:
    """What the database holds once the clients are done: operations still not DONE (jobs the
    clients did not wait for, a disk's auto-delete say, get ``settle`` seconds to end) and
    duplicate instances."""
    engine = create_engine(database_url)
    start = time.monotonic()
    try:
        with engine.connect() as conn:
            while True:
                undone = [list(row) for row in conn.execute(text(
                    "SELECT name, operation_type, status, target_link, attempts FROM operations "
                    "WHERE status != 'DONE'"))]
                conn.rollback()
                if not undone or time.monotonic() - start > settle:
                    break
                time.sleep(0.5)
            duplicates = conn.execute(text(
                "SELECT COUNT(*) FROM (SELECT name FROM resources WHERE collection = 'instances' "
                "GROUP BY project, scope, name HAVING COUNT(*) > 1) AS d")).scalar()
    finally:
        engine.dispose()
    return {"operations_not_done": undone, "settled_after_s": round(time.monotonic() - start, 1),
            "duplicate_instances": duplicates}


def main(backend: str = "sqlite", layout: str = "embedded", seconds: str = "30", clients: str = "32") -> dict:
    if layout == "scaleout" and backend != "postgresql":
        raise SystemExit("scaleout runs on PostgreSQL")
    g = Gstack(backend)
    try:
        for metric in ("CPUS", "INSTANCES", "DISKS_TOTAL_GB"):
            g.admin("project", "set-quota", "--project", PROJECT, "--region", "us-central1", "--metric", metric,
                    "--limit", "100000")
        g.admin("project", "set-quota", "--project", PROJECT, "--metric", "CPUS_ALL_REGIONS", "--limit", "100000")
        token = g.token()
        if layout == "scaleout":
            apis, _ = start_scaleout(g)
        else:
            g.serve(GSTACK_WORKERS=JOB_THREADS, GSTACK_SIM_LATENCY=LATENCY)
            apis = [g.procs[-1]]
        watched = apis[-1]  # the API process that lives through the run
        before = process_usage(watched.pid)
        tally = Tally()
        deadline = time.monotonic() + float(seconds)
        workers = [Client(g.base, token, i, tally, retry_writes=layout == "scaleout") for i in range(int(clients))]

        def drive(client: Client) -> None:
            while time.monotonic() < deadline:
                client.turn()

        threads = [threading.Thread(target=drive, args=(c,)) for c in workers]
        for t in threads:
            t.start()
        killed = None
        if layout == "scaleout":
            time.sleep(float(seconds) / 2)
            killed = {"in_flight_on_it": proxied_sessions(g, "api0"), "in_flight_everywhere": tally.in_flight,
                      "at": time.monotonic()}
            apis[0].send_signal(signal.SIGKILL)
        for t in threads:
            t.join()
        after = process_usage(watched.pid)
        if killed:
            at = killed.pop("at")
            killed["errors_within_2s"] = sum(1 for e in tally.errors_at if at <= e <= at + 2)
            killed["errors_later"] = sum(1 for e in tally.errors_at if e > at + 2)
        statuses = dict(sorted(tally.statuses.items()))
        result = {
            "backend": backend, "layout": layout, "clients": int(clients), "seconds": float(seconds),
            "simulator_latency_s": float(LATENCY), "job_threads": int(JOB_THREADS),
            "requests": sum(statuses.values()) + tally.connection_errors,
            "status_counts": statuses,
            "server_errors_5xx": sum(n for s, n in statuses.items() if s >= 500),
            "connection_errors": tally.connection_errors,
            "failed_calls": len(tally.failed_calls), "failed_examples": tally.failed_calls[:5],
            "latency": {kind: percentiles(v) for kind, v in sorted(tally.latency.items())},
            "operation_post_to_done": percentiles(tally.op_total),
            "operations_wait_after_done": percentiles(tally.wait_after_done),
            "server_process": {"before": before, "after": after},
            "killed_api_process": killed,
            "audit": audit(g.database_url),
        }
        write_result(f"mixed_load-{layout}-{backend}", result)
        return result
    finally:
        g.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
