"""The read benchmarks' load generator: ``wrk`` (a C program, ``apt-get install -y wrk``; see
``scripts/bench-setup``), not Python processes sharing the server's two cores and contending for
their own interpreters. :func:`run` starts one wrk with a Lua script that sets the request's
headers and prints wrk's own summary as one JSON line, and returns it as a dict; :func:`interleaved`
alternates a target and its baseline in rounds and reports the median and spread of each.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile

# wrk's ``done`` hook: its counters and latency distribution (µs) as one line of JSON on stdout,
# so nothing depends on the layout of its human-readable report.
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nWRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, "read_errors": %d,'
    .. ' "write_errors": %d, "timeouts": %d, "non_2xx": %d, "latency_us": {"mean": %.1f, "p50": %d, "p90": %d,'
    .. ' "p99": %d, "max": %d}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout, e.status,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: run scripts/bench-setup (apt-get install -y wrk)")
    return path


def _script(headers: dict | None) -> str:
    lines = [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (headers or {}).items()]
    return "\n".join(lines) + "\n" + _DONE


def run(url: str, headers: dict | None = None, *, seconds: float = 5.0, connections: int = 4,
        threads: int = 1) -> dict:
    """Requests per second and latency of ``connections`` clients sending ``GET url`` back to back
    for ``seconds`` (wrk reconnects when the server answers ``Connection: close``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_script(headers))
        script = f.name
    try:
        out = subprocess.run([wrk_path(), "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                              "--timeout", "30s", "-s", script, url],
                             capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(script)
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    result = json.loads(line[len("WRK_JSON "):])
    duration = result["duration_us"] / 1e6
    result["per_second"] = round(result["requests"] / duration, 1) if duration else 0.0
    result["errors"] = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts",
                                               "non_2xx"))
    return result


def spread(values: list[float]) -> dict:
    """Median, min and max of a series of rounds."""
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def interleaved(target: tuple, baseline: tuple, *, rounds: int = 7, seconds: float = 2.0,
                connections: int = 4) -> dict:
    """``target`` against ``baseline`` ((url, headers) each) in ``rounds`` alternating rounds of
    ``seconds`` each (target first, then baseline): on shared CPUs whose speed drifts, two long
    measurements taken one after the other compare two different machines. The ratio is the
    median of the rounds' ratios; every round is reported, and the load average while measuring."""
    pairs = []
    loads = []
    for _ in range(rounds):
        t = run(*target, seconds=seconds, connections=connections)
        b = run(*baseline, seconds=seconds, connections=connections)
        if t["errors"] or b["errors"]:
            raise RuntimeError(f"errors while measuring: target {t}, baseline {b}")
        pairs.append((t, b))
        loads.append(os.getloadavg()[0])
    return {
        "load_generator": "wrk", "connections": connections, "round_seconds": seconds,
        "rounds": [{"target_per_second": t["per_second"], "baseline_per_second": b["per_second"],
                    "target_p50_us": t["latency_us"]["p50"], "baseline_p50_us": b["latency_us"]["p50"]}
                   for t, b in pairs],
        "target_per_second": spread([t["per_second"] for t, _ in pairs]),
        "baseline_per_second": spread([b["per_second"] for _, b in pairs]),
        "ratio": spread([t["per_second"] / b["per_second"] for t, b in pairs]),
        "load_average_1m": spread(loads),
    }
