"""What a kept connection saves: server CPU and requests per second of ``instances.get`` on one
``gstack serve`` (defaults, request log on), from a client that keeps its connection (wrk's
default, as Google's clients do) against one that opens a connection per request (``Connection:
close`` on every request, what every client got before the server kept connections), in
alternating rounds on the same server; over HTTP and over HTTPS (``--tls``), where each new
connection is also a TLS handshake.

CPU is the server process's (utime + stime of ``/proc/PID/stat``, every thread) over a round,
divided by the requests wrk made in it. wrk runs one connection, back to back.

Usage: ``python3 -m bench.keep_alive [ROUNDS]`` (default 7).
"""

from __future__ import annotations

import os
import sys
import time

import requests

from bench import wrk
from bench.harness import Gstack, cpu_seconds, load_average, write_result
from gstack.tls import CA_CERT

ZONE = "us-central1-a"
SECONDS = 3  # per round and kind of client
BODY = {"name": "ka-vm", "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}]}

def serve(tls: bool) -> tuple[Gstack, str, dict[str, str]]:
    """A ``gstack serve`` (over HTTPS when ``tls``) holding one RUNNING instance: (it, the
    instance's URL, the request headers)."""
    g = Gstack("sqlite")
    try:
        return _serve(g, tls)
    except BaseException:
        g.close()
        raise


def _serve(g: Gstack, tls: bool) -> tuple[Gstack, str, dict[str, str]]:
    token = g.token()
    g.serve(GSTACK_LOG_REQUESTS="1", GSTACK_TLS="1" if tls else "0")
    base = g.base.replace("http://", "https://") if tls else g.base
    s = requests.Session()
    s.trust_env = False  # else REQUESTS_CA_BUNDLE would replace the CA below
    s.verify = os.path.join(g.data_dir, CA_CERT)  # the data directory's own (wrk does not verify)
    s.headers["Authorization"] = f"Bearer {token}"
    url = f"{base}/compute/v1/projects/demo-project/zones/{ZONE}/instances"
    s.post(url, json=BODY).raise_for_status()
    deadline = time.monotonic() + 60
    while s.get(f"{url}/ka-vm").json().get("status") != "RUNNING":
        if time.monotonic() > deadline:
            raise TimeoutError("ka-vm did not run")
        time.sleep(0.1)
    return g, f"{url}/ka-vm", {"Authorization": f"Bearer {token}"}


def measure(g: Gstack, url: str, headers: dict[str, str], rounds: int) -> dict:
    pid = g.procs[0].pid
    clients = {"kept": headers, "new_each_request": {**headers, "Connection": "close"}}
    cpu: dict[str, list[float]] = {k: [] for k in clients}
    rate: dict[str, list[float]] = {k: [] for k in clients}
    for i in range(rounds):
        for name in (list(clients) if i % 2 == 0 else list(clients)[::-1]):
            before = cpu_seconds([pid])
            result = wrk.run(url, clients[name], seconds=SECONDS, connections=1)
            if result["errors"]:
                raise RuntimeError(f"wrk {name}: {result}")
            cpu[name].append((cpu_seconds([pid]) - before) / result["requests"])
            rate[name].append(result["per_second"])
    ratios = [k / n for k, n in zip(cpu["kept"], cpu["new_each_request"], strict=True)]
    return {**{f"{name}_cpu_us_per_request": {**wrk.spread([c * 1e6 for c in cpu[name]]),
                                                "rounds": [round(c * 1e6) for c in cpu[name]]} for name in clients},
            **{f"{name}_requests_per_second": wrk.spread(rate[name]) for name in clients},
            "cpu_ratio_kept_over_new": wrk.spread(ratios)}


def main(rounds: int = 7) -> None:
    results = {}
    for scheme, tls in (("http", False), ("https", True)):
        g, url, headers = serve(tls)
        try:
            results[scheme] = measure(g, url, headers, rounds)
        finally:
            g.close()
    write_result("keep_alive", {"server": "gstack serve (request log on), SQLite", "request": "instances.get",
                                "rounds": rounds, "seconds_per_round": SECONDS, "load_average_1min": load_average()[0], **results})


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
