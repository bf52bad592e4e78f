"""gstack in this process, for the profiling scripts: the app on a fresh data directory (jobs run
only when the script runs them), its Flask test client, and a token of demo-project's owner."""

from __future__ import annotations

import atexit
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time

os.environ.setdefault("GSTACK_LOG_REQUESTS", "0")

from core import identity  # noqa: E402
from core.db import write_session  # noqa: E402
from gstack.app import create_app  # noqa: E402
from gstack.bootstrap import project_admin  # noqa: E402
from gstack.config import Settings  # noqa: E402


def app_client():
    """(runtime, test client, headers with an owner's bearer token)."""
    data_dir = tempfile.mkdtemp(prefix="gstack-inprocess-")
    atexit.register(shutil.rmtree, data_dir, True)  # (ignore_errors)
    app = create_app(Settings.from_env(data_dir=data_dir, run_jobs=False))
    runtime = app.extensions["gstack"]
    with write_session(runtime.factory) as s:
        token, _ = identity.issue_token(s, project_admin(s, "demo-project"),
                                        ["https://www.googleapis.com/auth/cloud-platform"])
    return runtime, app.test_client(), {"Authorization": "Bearer " + token}


def timed_gets(client, url: str, headers: dict, n: int, sort: str = "cumulative", rows: int = 40) -> float:
    """Seconds per ``GET url`` over ``n`` requests (each must answer 200); with ``-p`` on the
    command line, under cProfile, whose ``rows`` costliest entries by ``sort`` are then printed."""
    profiler = cProfile.Profile()
    profiling = "-p" in sys.argv
    if profiling:
        profiler.enable()
    t0 = time.perf_counter()
    for _ in range(n):
        assert client.get(url, headers=headers).status_code == 200
    elapsed = time.perf_counter() - t0
    profiler.disable()
    if profiling:
        pstats.Stats(profiler).sort_stats(sort).print_stats(rows)
    return elapsed / n
