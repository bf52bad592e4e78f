"""A small closed-loop HTTP load generator: P processes each send requests back to back."""

from __future__ import annotations

import http.client
import multiprocessing
import time
from urllib.parse import urlsplit


def _worker(url: str, headers: dict, seconds: float, keepalive: bool, out) -> None:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn = None
    count = errors = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if conn is None:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors += 1
            count += 1
            if not keepalive or resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            errors += 1
            conn = None
    out.put((count, errors))


def measure(url: str, headers: dict | None = None, *, processes: int = 4, seconds: float = 5.0,
            keepalive: bool = False) -> dict:
    """Requests per second over ``seconds`` with ``processes`` concurrent clients."""
    q: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_worker, args=(url, headers or {}, seconds, keepalive, q))
             for _ in range(processes)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    count = sum(c for c, _ in results)
    errors = sum(e for _, e in results)
    return {"requests": count, "errors": errors, "per_second": round(count / seconds, 1)}


def interleaved(target: tuple, baseline: tuple, *, rounds: int = 5, seconds: float = 5.0) -> dict:
    """``target`` against ``baseline`` ((url, headers) each), measured in alternating rounds of
    ``seconds / rounds``: on a machine whose speed drifts (shared CPUs), two long measurements
    taken one after the other compare two different machines. The ratio is the median of the
    rounds' ratios; every round is reported."""
    pairs = []
    for _ in range(rounds):
        t = measure(*target, seconds=seconds / rounds)
        b = measure(*baseline, seconds=seconds / rounds)
        pairs.append((t["per_second"], b["per_second"]))
    ratios = sorted(t / b for t, b in pairs)
    return {"rounds": [{"target_per_second": t, "baseline_per_second": b} for t, b in pairs],
            "target_per_second": round(sum(t for t, _ in pairs) / rounds, 1),
            "baseline_per_second": round(sum(b for _, b in pairs) / rounds, 1),
            "ratio": round(ratios[rounds // 2], 3)}
