"""In-process cost of one authenticated instances.get (Flask test client, no network): the number
to watch when changing the read path. Prints microseconds per request; ``-p`` prints a profile."""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import tempfile
import time

os.environ.setdefault("GSTACK_LOG_REQUESTS", "0")

from core import identity  # noqa: E402
from core.db import write_session  # noqa: E402
from gstack.app import create_app  # noqa: E402
from gstack.bootstrap import project_admin  # noqa: E402
from gstack.config import Settings  # noqa: E402

N = 2000


def main() -> None:
    app = create_app(Settings.from_env(data_dir=tempfile.mkdtemp(), run_jobs=False))
    runtime = app.extensions["gstack"]
    with write_session(runtime.factory) as s:
        token, _ = identity.issue_token(s, project_admin(s, "demo-project"),
                                        ["https://www.googleapis.com/auth/cloud-platform"])
    client = app.test_client()
    headers = {"Authorization": "Bearer " + token}
    body = {"name": "vm1", "machineType": "zones/us-central1-a/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True,
                       "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}
    client.post("/compute/v1/projects/demo-project/zones/us-central1-a/instances", json=body, headers=headers)
    runtime.engine.run_until_idle()
    url = "/compute/v1/projects/demo-project/zones/us-central1-a/instances/vm1"
    for _ in range(200):
        client.get(url, headers=headers)
    profiler = cProfile.Profile()
    if "-p" in sys.argv:
        profiler.enable()
    t0 = time.perf_counter()
    for _ in range(N):
        assert client.get(url, headers=headers).status_code == 200
    elapsed = time.perf_counter() - t0
    profiler.disable()
    print(f"instances.get: {elapsed / N * 1e6:.0f} µs per request (in-process)")
    if "-p" in sys.argv:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
