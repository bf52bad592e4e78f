"""Server CPU per instances.insert, to RUNNING and the router synced, at growing network sizes,
against the floor: one HTTP round trip on the same server class plus one SQLite commit of the row
(``bench.insert_floor_app``). Goal (issue 15): ≤ 3× the floor, and flat from 1k to 100k instances.

CPU is the server process's own (utime + stime of ``/proc/PID/stat``: every thread, the job workers
and the router syncs included), read before and after a round of ``ROUND`` sequential inserts and
a pause for the coalesced router sync. Rounds alternate gstack / floor so both see the same machine;
medians and spread (min, max) are reported. ``gstack serve`` runs as users run it (request log on).
The network is grown between sizes through ``instances.bulkInsert`` (not measured), in chunks the
server's default backpressure bound (1,000 unfinished Operations per project) admits.

``--baseline TREE`` also serves a second data directory from another checkout of gstack (say the
main branch), grown alike, and alternates its rounds with this tree's (the first of the two changes
every round): new and old code measured on the same machine at the same time. Every process runs
with its tree first on ``PYTHONPATH`` and the working directory outside both trees.

``BENCH_SERVER=gunicorn``: gstack as the operator's guide lays it out (gunicorn, 2 sync workers, the
request log on, and a ``gstack worker`` running the jobs and router syncs), and the floor on
gunicorn too; CPU is then that of every process of the server (the master, its workers, the
``gstack worker``).

``--wait-each``: each insert waits for its Operation to end (``zoneOperations.wait``) before the next
is sent, as ``gcloud compute instances create`` does, instead of a stream of inserts whose jobs the
job engine batches: each job then runs alone and pays its fixed cost (its claim, its transactions,
the spawn) whole. ``--gcloud``: the whole sequence ``gcloud compute instances create`` sends for one
instance (``../shared/clients/gcloud/polling-instances-create.txt``): the zone's and the project's
GET, the insert, its waits, the instance's GET, each with ``alt=json``; the insert's body is gcloud's
default one (an external address, the default service account: :data:`GCLOUD_BODY`).

Usage: ``python3 -m bench.insert_cost [--baseline TREE] [--wait-each | --gcloud] [SIZE ...]`` (default 1000 10000).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import time

import requests

from bench.harness import Gstack, cpu_seconds, free_port, gcloud_body, write_result
from bench.insert_floor_app import make_table

ZONE = "us-central1-a"
ROUND = 100  # inserts per round (a clock tick is 10 ms: 0.1 ms per insert)
ROUNDS = 5  # per size, each followed by a floor round
SETTLE = 1.0  # seconds after the last instance runs: the router's sync (SYNC_INTERVAL 0.25) ends in it
# One network whose subnetwork (a /14) holds 100k instances; the default network's /20 holds 4,096.
NETWORK, SUBNET, CIDR = "bench-net", "bench-subnet", "10.0.0.0/14"
BODY = {"machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": f"global/networks/{NETWORK}",
                               "subnetwork": f"regions/us-central1/subnetworks/{SUBNET}"}]}

GCLOUD_BODY = gcloud_body(BODY, BODY["networkInterfaces"][0])  # what gcloud compute instances create sends

TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROW_CHUNK = 500  # instances per bulkInsert: within the default bound of 1,000 unfinished Operations


class TreeGstack(Gstack):
    """:class:`~bench.harness.Gstack` whose processes import gstack from ``tree``."""

    def __init__(self, tree: str):
        super().__init__("sqlite")
        self.tree = tree

    def env(self, **extra) -> dict:
        env = super().env(**extra)
        env["PYTHONPATH"] = os.pathsep.join([self.tree, *filter(None, [os.environ.get("PYTHONPATH")])])
        return env


def make_network(s: requests.Session, base: str) -> None:
    project = f"{base}/compute/v1/projects/demo-project"
    for url, body in ((f"{project}/global/networks", {"name": NETWORK, "autoCreateSubnetworks": False}),
                      (f"{project}/regions/us-central1/subnetworks",
                       {"name": SUBNET, "network": f"global/networks/{NETWORK}", "ipCidrRange": CIDR})):
        op = s.post(url, json=body)
        if not op.ok:
            raise RuntimeError(f"{url}: {op.status_code} {op.text[:600]}")
        while op.json().get("status") != "DONE":
            time.sleep(0.1)
            op = s.get(op.json()["selfLink"])


SERVER = os.environ.get("BENCH_SERVER", "serve")
WAIT_EACH = False  # --wait-each: each insert waits for its Operation before the next is sent
GCLOUD = False  # --gcloud: and around it the reads gcloud makes (see the module's docstring)
SERVERS = {"serve": "gstack serve (request log on), SQLite",
           "gunicorn": "gunicorn, 2 sync workers (request log on) and a gstack worker, SQLite; the floor on gunicorn"}


def wait_running(s: requests.Session, url: str, names: list[str], timeout: float = 600, pause: float = 0.05) -> None:
    """Poll single GETs (their cost does not grow with the zone, unlike a filtered list)."""
    deadline = time.monotonic() + timeout
    for name in names:
        while s.get(f"{url}/{name}", params={"fields": "status"}).json().get("status") != "RUNNING":
            if time.monotonic() > deadline:
                raise TimeoutError(name)
            time.sleep(pause)


def grow(s: requests.Session, url: str, have: int, target: int) -> None:
    while have < target:
        n = min(GROW_CHUNK, target - have)
        r = s.post(f"{url}/bulkInsert", json={"count": n, "namePattern": f"g{have:06d}-####",
                                              "instanceProperties": BODY})
        if not r.ok:
            raise RuntimeError(f"bulkInsert: {r.status_code} {r.text[:600]}")
        wait_running(s, url, [f"g{have:06d}-{n:04d}"])
        have += n
    time.sleep(SETTLE * 3)


def gstack_round(s: requests.Session, url: str, pids: list[int], tag: str) -> float:
    names = [f"r{tag}-{i:03d}" for i in range(ROUND)]
    before = cpu_seconds(pids)
    params = {"alt": "json"} if GCLOUD else {"prettyPrint": "false"}
    zone = url.rsplit("/", 1)[0]
    for name in names:
        if GCLOUD:
            for read in (zone, zone.split("/zones/")[0]):  # the zone, the project
                s.get(read, params=params).raise_for_status()
        r = s.post(url, json={**(GCLOUD_BODY if GCLOUD else BODY), "name": name}, params=params)
        r.raise_for_status()
        if WAIT_EACH:  # as gcloud compute instances create does: on the Operation, until it is DONE
            while r.json().get("status") != "DONE":
                r = s.post(r.json()["selfLink"] + "/wait", params=params)
                r.raise_for_status()
        if GCLOUD:
            s.get(f"{url}/{name}", params=params).raise_for_status()
    wait_running(s, url, names[-1:], pause=0.25)  # a few polls: counted, but a small share
    time.sleep(SETTLE)
    spent = cpu_seconds(pids) - before
    wait_running(s, url, names)  # all of them ran (not counted)
    return spent / ROUND


def floor_round(base: str, pids: list[int], tag: str, count: int = ROUND) -> float:
    s = requests.Session()
    before = cpu_seconds(pids)
    for i in range(count):
        s.post(f"{base}/compute/v1/projects/demo-project/zones/{ZONE}/instances",
               json={**BODY, "name": f"f{tag}-{i:03d}"}, params={"prettyPrint": "false"}).raise_for_status()
    time.sleep(SETTLE)
    return (cpu_seconds(pids) - before) / count


def idle_rate(pids: list[int], seconds: float = 3.0) -> float:
    before = cpu_seconds(pids)
    time.sleep(seconds)
    return (cpu_seconds(pids) - before) / seconds


def summary(values: list[float]) -> dict:
    return {"median_ms": round(statistics.median(values) * 1e3, 2), "min_ms": round(min(values) * 1e3, 2),
            "max_ms": round(max(values) * 1e3, 2), "rounds_ms": [round(v * 1e3, 2) for v in values]}


def prepare(g: Gstack, max_size: int) -> tuple[requests.Session, str, list[int]]:
    """Quotas, hosts and a storage pool for ``max_size`` instances, the server, and the network:
    (an authorised session, the zone's instances URL, the server's processes)."""
    for metric in ("CPUS", "INSTANCES", "DISKS_TOTAL_GB", "IN_USE_ADDRESSES"):
        g.admin("project", "set-quota", "--project", "demo-project", "--region", "us-central1", "--metric", metric,
                "--limit", "10000000")
    g.admin("project", "set-quota", "--project", "demo-project", "--metric", "CPUS_ALL_REGIONS", "--limit", "10000000")
    for h in range(max_size // 10_000 + 1):  # a host of 10,000 e2-micro each (overcommitted)
        g.admin("host", "add", "--zone", ZONE, "--name", f"bench-host-{h:03d}", "--cpus", "30000",
                "--memory-mb", str(11_000 * 1024))
    # The zone's storage pool holds 4,096 boot disks of 10 GB; there is no admin command to grow
    # it, so the bench writes the row (before the server starts).
    with sqlite3.connect(g.database_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE storage_pools SET capacity_gb = ? WHERE name = ?", (max_size * 20, f"{ZONE}-primary"))
    token = g.token()
    g.server()  # as users run it: the request log on (BENCH_SERVER=gunicorn: gunicorn and a gstack worker)
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    make_network(s, g.base)
    return s, f"{g.base}/compute/v1/projects/demo-project/zones/{ZONE}/instances", [p.pid for p in g.procs]


def start_floor(g: Gstack) -> tuple[subprocess.Popen, str]:
    """The floor on the server class of gstack's (``gstack serve``'s, or gunicorn with as many workers)."""
    port, path = free_port(), os.path.join(g.data_dir, "floor.sqlite3")
    if SERVER == "gunicorn":
        make_table(path)
        floor = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-k", "sync", "-b", f"127.0.0.1:{port}",
                                  "--log-level", "warning", "bench.insert_floor_app:app"], env=g.env(BENCH_FLOOR_DB=path))
    else:
        floor = subprocess.Popen([sys.executable, "-m", "bench.insert_floor_app", str(port), path], env=g.env())
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(f"{base}/ready", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    return floor, base


def main(sizes: list[int], baseline: str | None) -> None:
    os.chdir("/")  # ``python -m`` puts the working directory first on sys.path: it must hold no tree
    trees = {"gstack": TREE, **({"baseline": baseline} if baseline else {})}
    servers = {label: TreeGstack(tree) for label, tree in trees.items()}
    floor = None
    try:
        clients = {label: prepare(g, max(sizes)) for label, g in servers.items()}
        floor, floor_base = start_floor(servers["gstack"])
        have = 0
        results: dict[str, dict] = {}
        loads: list[float] = []
        for size in sizes:
            for s, url, _ in clients.values():
                grow(s, url, have, size)
            have = size
            ours: dict[str, list[float]] = {label: [] for label in servers}
            floors: list[float] = []
            for r in range(ROUNDS):
                order = list(clients) if r % 2 == 0 else list(reversed(clients))
                for label in order:
                    s, url, pids = clients[label]
                    ours[label].append(gstack_round(s, url, pids, f"{size}-{r}"))
                floors.append(floor_round(floor_base, [floor.pid], f"{size}-{r}"))
                loads.append(os.getloadavg()[0])
            have += ROUNDS * ROUND
            floor_median = statistics.median(floors)
            results[str(size)] = {
                "instances_at_start": size, "instances_at_end": have, "floor_per_insert": summary(floors),
                **{f"{label}_per_insert": summary(values) for label, values in ours.items()},
                **{f"{label}_ratio_to_floor": round(statistics.median(values) / floor_median, 2)
                   for label, values in ours.items()},
                "idle_cpu_share": {label: round(idle_rate(pids), 4) for label, (_, _, pids) in clients.items()}}
            print(size, results[str(size)], flush=True)
        first, last = str(sizes[0]), str(sizes[-1])
        name = ("insert_cost" if SERVER == "serve" else f"insert_cost_{SERVER}") + (
            "_gcloud" if GCLOUD else "_wait_each" if WAIT_EACH else "")
        write_result(name, {
            "round_inserts": ROUND, "rounds": ROUNDS, "server": SERVERS[SERVER], "wait_each": WAIT_EACH,
            "gcloud": GCLOUD,
            "trees": trees, "load_average_1min": {"min": min(loads), "median": statistics.median(loads),
                                                  "max": max(loads)},
            "sizes": results,
            "growth_last_over_first": {label: round(results[last][f"{label}_per_insert"]["median_ms"]
                                                    / results[first][f"{label}_per_insert"]["median_ms"], 2)
                                       for label in servers},
            "goals": {"ratio_to_floor": 3.0, "growth_last_over_first": 1.0}})
    finally:
        if floor is not None:
            floor.terminate()
            floor.wait(10)
        for g in servers.values():
            g.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="another gstack checkout to measure in alternating rounds")
    parser.add_argument("--wait-each", action="store_true",
                        help="each insert waits for its Operation (operations.wait) before the next, as gcloud does")
    parser.add_argument("--gcloud", action="store_true",
                        help="the requests gcloud compute instances create sends for each instance (waits included)")
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    args = parser.parse_args()
    WAIT_EACH, GCLOUD = args.wait_each or args.gcloud, args.gcloud
    main(args.sizes, os.path.abspath(args.baseline) if args.baseline else None)
