"""Starting gstack for a benchmark, and writing results as JSON."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import requests

from bench import wrk

RESULTS = os.path.join(os.path.dirname(__file__), "results")
PG_ADMIN_DSN = os.environ.get("GSTACK_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gstack:
    """A data directory (SQLite or a fresh PostgreSQL database) and the processes serving it."""

    def __init__(self, backend: str = "sqlite"):
        self.backend = backend
        self.data_dir = tempfile.mkdtemp(prefix="gstack-bench-")
        self.pg_name = None
        if backend == "postgresql":
            import psycopg

            self.pg_name = f"gstack_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
            base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            self.database_url = f"{base}/{self.pg_name}"
        else:
            self.database_url = "sqlite:///" + os.path.join(self.data_dir, "gstack.sqlite3")
        self.procs: list[subprocess.Popen] = []
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        env.update({"GSTACK_DATA_DIR": self.data_dir, "GSTACK_DATABASE_URL": self.database_url,
                    "GSTACK_LOG_REQUESTS": "0", **extra})
        return env

    def admin(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "gstack.cli", "admin", *args], env=self.env(),
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def token(self, project: str = "demo-project") -> str:
        return self.admin("token", "--project", project)

    def serve(self, port: int | None = None, **env) -> None:
        """``gstack serve`` on ``port`` (this data directory's own port unless given); over HTTPS
        with ``GSTACK_TLS="1"`` (its certificate from the data directory's CA, not verified here)."""
        port = port or self.port
        scheme = "https" if env.get("GSTACK_TLS") == "1" else "http"
        self._start([sys.executable, "-m", "gstack.cli", "serve", "--port", str(port)], env, f"{scheme}://127.0.0.1:{port}")

    def worker(self, threads: int = 4, **env) -> None:
        """A ``gstack worker`` process sharing the database (jobs run beside the API, not inside it)."""
        log = open(os.path.join(self.data_dir, f"proc-{len(self.procs)}.log"), "ab")  # noqa: SIM115
        self.procs.append(subprocess.Popen([sys.executable, "-m", "gstack.cli", "worker", "--threads", str(threads)],
                                           env=self.env(**env), stdout=log, stderr=subprocess.STDOUT))

    def serve_bare(self, body_file: str, port: int | None = None) -> str:
        """:mod:`bench.bare_app` on the same HTTP server as ``gstack serve`` (its pooled werkzeug
        server, the same switch interval): the baseline of the ratios measured as users run gstack."""
        port = port or free_port()
        self._start([sys.executable, "-m", "bench.bare_app", str(port)], {"BENCH_BODY_FILE": body_file},
                    f"http://127.0.0.1:{port}")
        return f"http://127.0.0.1:{port}"

    def server(self, **env) -> str:
        """The server under test: ``gstack serve`` as users run it (the request log on) unless
        ``BENCH_SERVER=gunicorn`` (2 sync workers, the operator's guide's recommendation)."""
        if os.environ.get("BENCH_SERVER", "serve") == "gunicorn":
            return self.gunicorn(workers=2, **env)
        self.serve(GSTACK_LOG_REQUESTS="1", **env)
        return self.base

    def bare(self, body_file: str) -> str:
        """The baseline serving ``body_file`` on the same kind of server as :meth:`server`."""
        if os.environ.get("BENCH_SERVER", "serve") == "gunicorn":
            return self.gunicorn("bench.bare_app:app", workers=2, port=free_port(), BENCH_BODY_FILE=body_file)
        return self.serve_bare(body_file)

    def gunicorn(self, app: str = "gstack.wsgi:app", workers: int = 2, port: int | None = None, **env) -> str:
        """gunicorn serving ``app``, laid out for gstack as the operator's guide says: the API
        processes run no jobs (``GSTACK_RUN_JOBS=0``) and one ``gstack worker`` beside them runs
        the jobs, the host monitor and the router syncs. With jobs in every gunicorn worker, each
        worker also ran its own periodic rounds beside the reads it served: not what operators run."""
        port = port or self.port
        if app == "gstack.wsgi:app":
            env = {"GSTACK_RUN_JOBS": "0", **env}
            self.worker(threads=8)  # the guide's `gstack worker --threads 8`
        self._start([sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "sync", "-b", f"127.0.0.1:{port}",
                     "--log-level", "warning", app], env, f"http://127.0.0.1:{port}")
        return f"http://127.0.0.1:{port}"

    def _start(self, cmd: list[str], env: dict, base: str | None = None) -> None:
        log = open(os.path.join(self.data_dir, f"proc-{len(self.procs)}.log"), "ab")  # noqa: SIM115
        self.procs.append(subprocess.Popen(cmd, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT))
        base = base or self.base
        for _ in range(300):
            try:
                requests.get(base + "/oauth2/v3/certs", timeout=5, verify=False)  # noqa: S501 (our own CA)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"{cmd} did not start")

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.pg_name:
            import psycopg

            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        keep = os.environ.get("GSTACK_BENCH_LOGS")  # a directory to keep the servers' logs in, to read after
        if keep:
            os.makedirs(keep, exist_ok=True)
            for name in os.listdir(self.data_dir):
                if name.startswith("proc-") and name.endswith(".log"):
                    shutil.copy(os.path.join(self.data_dir, name),
                                os.path.join(keep, f"{os.path.basename(self.data_dir)}-{name}"))
        shutil.rmtree(self.data_dir, ignore_errors=True)


def wrk_latency(url: str, headers: dict[str, str], seconds: float = 1, connections: int = 1) -> dict:
    """``wrk`` (:mod:`bench.wrk`) on one URL for ``seconds`` (whole seconds, at least 1): its median
    and p90 latency and how many requests it made. Any error or non-2xx answer fails the run."""
    result = wrk.run(url, headers, seconds=seconds, connections=connections)
    if result["errors"]:
        raise RuntimeError(f"wrk {url}: {result}")
    return {"p50_ms": result["latency_us"]["p50"] / 1e3, "p90_ms": result["latency_us"]["p90"] / 1e3,
            "requests": result["requests"]}


def _stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command's name (None: the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def cpu_seconds(pids: list[int]) -> float:
    """CPU (utime + stime, fields 14 and 15 of proc(5)) of the processes ``pids`` and their
    descendants (gunicorn's workers are its master's children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        fields = _stat(entry) if entry.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))  # field 4: the parent's pid
    total, todo = 0.0, list(pids)
    while todo:
        pid = todo.pop()
        fields = _stat(pid)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / TICK
        todo += children.get(pid, [])
    return total


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages (two cores shared with other work)."""
    return [round(x, 2) for x in os.getloadavg()]


def by_size(times: dict[int, list[float]], unit: str = "ms", digits: int = 3) -> dict[str, Any]:
    """A growth bench's summary of one read: each size's median of the rounds with their spread
    (``median_<unit>``, ``min``, ``max``), and ``ratio``, the largest size's median over the smallest's
    (sizes in the order given)."""
    sizes = list(times)
    out: dict[str, Any] = {str(size): {f"median_{unit}": round(statistics.median(v), digits), "min": round(min(v), digits),
                                       "max": round(max(v), digits)} for size, v in times.items()}
    out["ratio"] = round(statistics.median(times[sizes[-1]]) / statistics.median(times[sizes[0]]), 2)
    return out


def gcloud_body(body: dict, nic: dict) -> dict:
    """``body`` with what ``gcloud compute instances create`` adds to it by default
    (../shared/clients/gcloud/instances-create-image.txt): ``nic`` with an external address (an
    access config), the default service account, scheduling, no metadata."""
    return {**body, "canIpForward": False, "deletionProtection": False, "metadata": {},
            "networkInterfaces": [{**nic, "accessConfigs": [{"name": "external-nat", "type": "ONE_TO_ONE_NAT"}]}],
            "scheduling": {"automaticRestart": True},
            "serviceAccounts": [{"email": "default", "scopes": [
                "https://www.googleapis.com/auth/devstorage.read_only", "https://www.googleapis.com/auth/logging.write",
                "https://www.googleapis.com/auth/monitoring.write", "https://www.googleapis.com/auth/pubsub",
                "https://www.googleapis.com/auth/service.management.readonly",
                "https://www.googleapis.com/auth/servicecontrol", "https://www.googleapis.com/auth/trace.append"]}]}


def write_result(name: str, result: dict) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    result = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, **result}
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return path
