"""Node client packages for the e2e tests, installed once with npm into a cache directory."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess

import pytest

NODE_DIR = os.environ.get("GSTACK_TEST_NODE_DIR", os.path.expanduser("~/.cache/gstack-tests/node"))
# npm reaches its registry with the machine's own trust (NODE_EXTRA_CA_CERTS and the like), kept as
# it was when the tests were collected: a TLS test's module runs with those settings removed
# (tests.helpers.tls.environ), and an install made there failed the registry's certificate chain.
MACHINE_ENV = dict(os.environ)


def node_packages() -> str:
    """NODE_PATH with @google-cloud/compute, installed once into a cache directory."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed here")
    modules = os.path.join(NODE_DIR, "node_modules")
    installed = os.path.join(modules, "@google-cloud", "compute")
    if os.path.isdir(installed):
        return modules
    os.makedirs(NODE_DIR, exist_ok=True)
    # Both test processes may get here at once: two npm installs into one prefix make one fail
    # (a CI run skipped the Node tests so). The second waits for the first, then finds its packages.
    with open(os.path.join(NODE_DIR, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(installed):
            proc = subprocess.run(["npm", "install", "--prefix", NODE_DIR, "--no-audit", "--no-fund", "--loglevel",
                                   "error", NODE_PACKAGE], env=MACHINE_ENV, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                pytest.skip(f"npm could not install {NODE_PACKAGE}: {(proc.stderr or proc.stdout)[-500:]}")
    return modules


NODE_PACKAGE = "@google-cloud/compute@7"
