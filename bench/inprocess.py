"""gstack in this process, for the profiling scripts: the app on a fresh data directory (jobs run
only when the script runs them), its Flask test client, and a token of demo-project's owner."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("GSTACK_LOG_REQUESTS", "0")

from core import identity  # noqa: E402
from core.db import write_session  # noqa: E402
from gstack.app import create_app  # noqa: E402
from gstack.bootstrap import project_admin  # noqa: E402
from gstack.config import Settings  # noqa: E402


def app_client():
    """(runtime, test client, headers with an owner's bearer token)."""
    app = create_app(Settings.from_env(data_dir=tempfile.mkdtemp(), run_jobs=False))
    runtime = app.extensions["gstack"]
    with write_session(runtime.factory) as s:
        token, _ = identity.issue_token(s, project_admin(s, "demo-project"),
                                        ["https://www.googleapis.com/auth/cloud-platform"])
    return runtime, app.test_client(), {"Authorization": "Bearer " + token}
