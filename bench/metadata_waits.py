"""What guests that wait on their metadata server cost it while nothing changes: google-guest-agent
keeps a hanging GET (``?recursive=true&wait_for_change=true``) open all the time, so this is what
each running guest costs its server when it is idle.

A ``gstack serve`` makes one instance; a ``gstack metadata`` process serves it (as for a guest of a
libvirt host) and :data:`WAITS` hanging GETs of the whole tree are kept open on it, each renewed
when it answers. The CPU of the metadata process (utime + stime, ``/proc/PID/stat``) is read over
:data:`WINDOW` seconds, in :data:`ROUNDS` rounds; the result is CPU milliseconds per second per
waiting request, median and spread.

``--baseline TREE`` also runs the same on another checkout of gstack (say the main branch), at the
same time: both metadata processes are measured over the same windows, so both see the same machine.

Usage: ``python3 -m bench.metadata_waits [--baseline TREE]``; writes ``bench/results/metadata_waits.json``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import requests

from bench.harness import Gstack, cpu_seconds, free_port, write_result
from bench.insert_cost import TREE, TreeGstack, wait_running

WAITS = 20
WINDOW = 10.0
ROUNDS = 5
ZONE = "us-central1-a"
FLAVOR = {"Metadata-Flavor": "Google"}
BODY = {"name": "guest", "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}],
        "metadata": {"items": [{"key": "startup-script", "value": "echo hi"}]}}


class Served:
    """A tree's gstack serve with the instance, its metadata process and the waits kept on it."""

    def __init__(self, tree: str):
        self.g: Gstack = TreeGstack(tree)
        self.g.serve()
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + self.g.token()
        url = f"{self.g.base}/compute/v1/projects/demo-project/zones/{ZONE}/instances"
        r = s.post(url, json=BODY)
        if not r.ok:
            raise RuntimeError(f"insert: {r.status_code} {r.text[:600]}")
        wait_running(s, url, ["guest"])
        port = free_port()
        self.root = f"http://127.0.0.1:{port}/computeMetadata/v1/"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gstack.cli", "metadata", "--project", "demo-project", "--zone", ZONE,
             "--instance", "guest", "--port", str(port), "--data-dir", self.g.data_dir, "--issuer", self.g.base],
            env=self.g.env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                requests.get(self.root, headers=FLAVOR, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._wait, daemon=True) for _ in range(WAITS)]
        for t in self.threads:
            t.start()

    def _wait(self) -> None:
        with requests.Session() as s:
            etag = s.get(self.root, headers=FLAVOR, params={"recursive": "true"}, timeout=30).headers["ETag"]
            while not self.stopping.is_set():
                r = s.get(self.root, headers=FLAVOR, timeout=120, params={
                    "recursive": "true", "wait_for_change": "true", "last_etag": etag, "timeout_sec": "60"})
                etag = r.headers.get("ETag", etag)

    def close(self) -> None:
        self.stopping.set()
        self.proc.terminate()
        self.proc.wait(10)
        self.g.close()


def main(baseline: str | None) -> None:
    trees = {"this tree": TREE, **({"baseline": baseline} if baseline else {})}
    served = {label: Served(tree) for label, tree in trees.items()}
    try:
        time.sleep(3)  # every wait open
        per_wait: dict[str, list[float]] = {label: [] for label in trees}
        for _ in range(ROUNDS):
            before = {label: cpu_seconds([sv.proc.pid]) for label, sv in served.items()}
            time.sleep(WINDOW)
            for label, sv in served.items():
                per_wait[label].append((cpu_seconds([sv.proc.pid]) - before[label]) / WINDOW / WAITS * 1e3)
        result: dict[str, Any] = {label: {"cpu_ms_per_second_per_wait": round(statistics.median(v), 3),
                                          "min": round(min(v), 3), "max": round(max(v), 3)}
                                  for label, v in per_wait.items()}
        if baseline:
            result["ratio"] = round(statistics.median(per_wait["this tree"]) / statistics.median(per_wait["baseline"]), 3)
        write_result("metadata_waits", {"waits": WAITS, "window_seconds": WINDOW, "rounds": ROUNDS,
                                        "trees": trees, "idle": result})
    finally:
        for sv in served.values():
            sv.close()


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--baseline") + 1] if "--baseline" in sys.argv else None)
