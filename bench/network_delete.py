"""What a network's or subnetwork's delete costs by the number of instances the project holds, in
process: the check for resources still using it should cost what it finds, not what the project
holds. It tested the text of every instance body of the project (and loaded every instance it
matched, to name the first); instances are now found through their subnetworks' addresses
(``core.systemvms.guests.instance_on``).

Each size is a data directory whose ``demo-project`` default network holds ``SIZE`` instances on a
/16 subnetwork of its own (``bench.metadata_source``'s), made by ``instances.insert`` in the core
(their jobs do not run), beside an auto-mode network with one instance and a custom network whose
subnetwork no one uses. Three deletes are timed, each in a transaction rolled back, in
:data:`ROUNDS` rounds that alternate the sizes: the big subnetwork's (refused: its instances use it),
the auto-mode network's (refused: its one instance uses it) and the unused subnetwork's (done). The
result holds the median milliseconds per delete with its spread, by size, and the ratio of the
largest size's median to the smallest's.

Usage: ``python3 -m bench.network_delete [SIZE ...]`` (default 1000 10000); writes
``bench/results/network_delete.json``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from bench.harness import by_size, write_result
from bench.metadata_source import PROJECT, ZONE, _cloud
from core.db import write_session
from core.errors import ResourceInUse
from core.resources.context import Call
from core.services import instances, networks, subnetworks, topology

ROUNDS = 5
DELETES = 20  # of each kind per round
NET_URL = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks"
CASES: dict[str, tuple[Callable[[Call], Any], bool]] = {
    "subnetwork its instances use (refused)": (lambda c: subnetworks.delete(c, "us-central1", "bench"), True),
    "auto-mode network its one instance uses (refused)": (lambda c: networks.delete(c, "auto-net"), True),
    "unused subnetwork (done, rolled back)": (lambda c: subnetworks.delete(c, "us-central1", "empty-sub"), False),
}


def _data(size: int) -> Any:
    runtime, _ = _cloud(size)
    with write_session(runtime.factory) as s:
        networks.insert(Call(s, PROJECT, "bench"), {"name": "auto-net", "autoCreateSubnetworks": True})
        networks.insert(Call(s, PROJECT, "bench"), {"name": "empty-net", "autoCreateSubnetworks": False})
    with write_session(runtime.factory) as s:
        subnetworks.create_row(s, PROJECT, "us-central1", "empty-sub", f"{NET_URL}/empty-net", "10.200.0.0/24")
        instances.insert(Call(s, PROJECT, "bench"), topology.zone(s, PROJECT, ZONE), {
            "name": "auto-vm", "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
                "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
            "networkInterfaces": [{"network": "global/networks/auto-net"}]})
    return runtime


def _timed(runtime: Any, delete: Callable[[Call], Any], refused: bool) -> float:
    """Milliseconds per delete, each in a transaction of its own, rolled back."""
    t0 = time.perf_counter()
    for _ in range(DELETES):
        with runtime.factory() as session:
            try:
                delete(Call(session, PROJECT, "bench"))
                assert not refused
            except ResourceInUse:
                assert refused
            session.rollback()
    return (time.perf_counter() - t0) / DELETES * 1e3


def main(sizes: list[int]) -> None:
    data = {size: _data(size) for size in sizes}
    times: dict[str, dict[int, list[float]]] = {label: {size: [] for size in sizes} for label in CASES}
    for r in range(ROUNDS):
        for size in (sizes if r % 2 == 0 else sizes[::-1]):
            for label, (delete, refused) in CASES.items():
                times[label][size].append(_timed(data[size], delete, refused))
    write_result("network_delete", {"sizes": sizes, "rounds": ROUNDS, "deletes_per_round": DELETES,
                                    "deletes": {label: by_size(t, digits=3) for label, t in times.items()}})


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10_000])
