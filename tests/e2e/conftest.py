"""The real gcloud CLI against gstack, configured exactly as the server's banner says: the
``gcloud`` fixture runs it (on SQLite: the flows test the wire, not the database). It is configured
once per test process, not per module: each ``gcloud config set`` costs a second or more of CPU,
and seven of them for each of seventeen modules were minutes of the suite's time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import PROJECT


@pytest.fixture(scope="session")
def gcloud(server, tmp_path_factory):
    if shutil.which("gcloud") is None:
        pytest.skip("the gcloud CLI is not installed here")
    if server.backend != "sqlite":
        pytest.skip("the gcloud flows test the wire, not the database: they run once, on SQLite")
    config = str(tmp_path_factory.mktemp("gcloud"))
    env = {**os.environ, "CLOUDSDK_CONFIG": config, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["gcloud", *args], env=env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"gcloud {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    for prop, value in (("core/project", PROJECT), ("component_manager/disable_update_check", "true"),
                        ("core/check_gce_metadata", "false"),
                        ("api_endpoint_overrides/compute", server.api), ("auth/token_host", server.base + "/token")):
        run("config", "set", prop, value)
    run("auth", "activate-service-account", "--key-file", server.key_path)
    run("config", "set", "compute/zone", "us-central1-a")
    return run


def describe(gcloud, *args: str) -> dict:
    return json.loads(gcloud(*args, "--format=json").stdout)
