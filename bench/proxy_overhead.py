"""What the intercepting proxy (``gstack serve --proxy-port``, gstack/intercept.py) adds to
instances.get: one client, requests sent back to back, in alternating rounds of

- ``direct``: the plain HTTP endpoint (what a client with an endpoint override uses);
- ``proxy``: ``https://compute.googleapis.com`` through ``HTTPS_PROXY``, with a connection pool.

gstack's server keeps connections open (gstack/serving.py), on either listener: a pooled client
makes one CONNECT and one TLS handshake, then sends its requests through the tunnel. (When it
answered every request with ``Connection: close``, each proxied request was a CONNECT, a handshake
and the request: 2.2 ms more than direct.)

Latencies are per request, in milliseconds: each round's median, and over all rounds the median
with its 10th and 90th percentiles; the overhead is the median of the rounds' differences to direct.
"""

from __future__ import annotations

import os
import statistics
import time

import requests

from bench.harness import Gstack, free_port, write_result
from gstack.tls import CA_CERT

ZONE = "us-central1-a"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
PER_ROUND = int(os.environ.get("BENCH_REQUESTS", "200"))
PATH = f"/compute/v1/projects/demo-project/zones/{ZONE}/instances/bench-vm"


def timed(session: requests.Session, url: str, headers: dict, n: int) -> list[float]:
    """``n`` GETs of ``url`` one after the other, each one's time in milliseconds."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = session.get(url, headers=headers)
        out.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    return out


def summary(samples: list[float]) -> dict:
    deciles = statistics.quantiles(samples, n=10)
    return {"median_ms": round(statistics.median(samples), 3), "p10_ms": round(deciles[0], 3),
            "p90_ms": round(deciles[-1], 3), "requests": len(samples)}


def main() -> None:
    proxy_port = free_port()
    g = Gstack("sqlite")
    try:
        headers = {"Authorization": f"Bearer {g.token()}"}
        g.serve(GSTACK_PROXY_PORT=str(proxy_port))
        url = f"{g.base}/compute/v1/projects/demo-project/zones/{ZONE}/instances"
        requests.post(url, headers=headers, json={
            "name": "bench-vm", "machineType": f"zones/{ZONE}/machineTypes/e2-small",
            "disks": [{"boot": True, "autoDelete": True,
                       "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]})
        for _ in range(100):  # the instance exists once its operation has run
            if requests.get(url + "/bench-vm", headers=headers).status_code == 200:
                break
            time.sleep(0.1)
        ca = os.path.join(g.data_dir, CA_CERT)

        def session(proxied: bool) -> requests.Session:  # proxied: as HTTPS_PROXY and REQUESTS_CA_BUNDLE say
            s = requests.Session()
            s.trust_env = False
            if proxied:
                s.proxies, s.verify = {"https": f"http://127.0.0.1:{proxy_port}"}, ca
            return s

        modes = {"direct": (session(False), g.base + PATH),
                 "proxy": (session(True), "https://compute.googleapis.com" + PATH)}
        for client, target in modes.values():
            timed(client, target, headers, 20)  # warm-up: request threads, caches
        rounds: list[dict[str, list[float]]] = []
        for _ in range(ROUNDS):
            rounds.append({name: timed(client, target, headers, PER_ROUND) for name, (client, target) in modes.items()})
        result: dict = {"server": "gstack serve (werkzeug threads), SQLite", "client": "requests, one at a time",
                        "rounds": ROUNDS, "requests_per_round": PER_ROUND}
        for name in modes:
            result[name] = summary([ms for r in rounds for ms in r[name]])
            result[name]["round_medians_ms"] = [round(statistics.median(r[name]), 3) for r in rounds]
        diffs = [statistics.median(r["proxy"]) - statistics.median(r["direct"]) for r in rounds]
        result["proxy_overhead_ms"] = round(statistics.median(diffs), 3)
        result["proxy_overhead_min_max_ms"] = [round(min(diffs), 3), round(max(diffs), 3)]
        write_result("proxy_overhead", result)
    finally:
        g.close()


if __name__ == "__main__":
    main()
