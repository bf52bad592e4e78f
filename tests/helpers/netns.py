"""Netns guests for the tests: the driver's host in ZONE, instance bodies, commands in a guest's namespace, serial output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import sessionmaker

from core.db import make_engine, write_session
from core.hypervisors.base import HostRef, NicSpec, VmSpec
from core.hypervisors.netns import NetnsDriver
from core.hypervisors.netns import links as netns_links
from core.resources import store
from core.services import hosts
from core.services.seed import HOSTS_PER_ZONE, ensure_project
from tests.conftest import PROJECT, ZONE
from tests.helpers.databases import seeded_engine, sessions

GUEST_TOOLS = {"sshd": "openssh-server", "ssh": "openssh-client", "ssh-keygen": "openssh-client",
               "ping": "iputils-ping", "nsenter": "util-linux"}
DATAPLANE_TOOLS = {"udhcpc": "udhcpc", "dnsmasq": "dnsmasq-base", "nft": "nftables", "haproxy": "haproxy", "curl": "curl",
                   "sshd": "openssh-server", "ssh": "openssh-client", "socat": "socat"}


def missing(tools: dict[str, str], what: str) -> str | None:
    """Why ``what`` cannot run here (not root, no network namespaces, a tool not installed), or None."""
    why = netns_links.missing_tools()
    if why:
        return why
    for tool, package in tools.items():
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{what} need '{tool}' ({package})"
    return None


def in_ns(uid: str, *cmd: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns_links.namespace(int(uid)), *cmd], capture_output=True,
                          text=True, timeout=timeout, check=False)


def made_by(data_dir: str) -> set[str]:
    """Every namespace, veth and bridge the server's netns driver keeps a record of."""
    state = os.path.join(data_dir, "netns")
    names = set(os.listdir(os.path.join(state, "bridges")))
    for uid in os.listdir(os.path.join(state, "vms")):
        with open(os.path.join(state, "vms", uid, "vm.json")) as f:
            names |= {nic["veth"] for nic in json.load(f)["nics"]} | {netns_links.namespace(int(uid))}
    return names


def add_netns_host(database_url: str, data_dir: str) -> None:
    """A netns cluster and host in ZONE, the zone's simulator hosts in maintenance (every VM lands on netns)."""
    engine = make_engine(database_url)
    factory = sessions(engine)
    with write_session(factory) as s:
        # a namespace costs next to nothing: vCPUs overprovisioned well past the default 4x, so a
        # few e2-small guests and the router fit a 2-core CI machine
        cluster = hosts.add_cluster(s, ZONE, "netns1", "netns", cpu_overprovisioning=16.0)
        for i in range(HOSTS_PER_ZONE):
            hosts.set_host_status(s, f"sim-{ZONE}-{i + 1:02d}", "Maintenance")
    hosts.add_host(factory, {"netns": NetnsDriver(factory, os.path.join(data_dir, "netns"))}, ZONE, cluster.name,
                   "netns-local", "netns://local")
    engine.dispose()


def instance(name: str, metadata: dict[str, str]) -> dict:
    return {
        "name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-small",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
            "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}],
        "metadata": {"items": [{"key": k, "value": v} for k, v in metadata.items()]},
    }


def serial(gce, name: str, needle: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance=name).execute()["contents"]
        if needle in out or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


@contextmanager
def standalone_host(name: str) -> Iterator[tuple[sessionmaker, NetnsDriver, HostRef, str]]:
    """A netns host of its own on a fresh seeded SQLite database, driven without a server:
    (sessions, the driver, the host, the driver's state folder); released and removed afterwards."""
    with seeded_engine("sqlite", "gstack-netns-") as engine:
        factory = sessions(engine)
        state = tempfile.mkdtemp(prefix="gstack-netns-state-")
        driver = NetnsDriver(factory, state)
        with write_session(factory) as s:
            ensure_project(s, PROJECT)
            cluster = hosts.add_cluster(s, ZONE, f"ns-{uuid.uuid4().hex[:6]}", "netns")
        host = hosts.host_ref(hosts.add_host(factory, {"netns": driver}, ZONE, cluster.name, name, "netns://local"))
        try:
            yield factory, driver, host, state
        finally:
            driver.release_host(host)
            shutil.rmtree(state, ignore_errors=True)


def vm_on(factory: sessionmaker, host: HostRef, name: str, ip: str, metadata: dict[str, str] | None = None) -> VmSpec:
    """The spec of a VM for ``host``, its instance row made (a driver's host check asks for it)."""
    uid = uuid.uuid4().int >> 66
    with write_session(factory) as s:
        store.new_resource(s, project=PROJECT, collection="instances", scope=f"zones/{ZONE}", name=name,
                           kind="compute#instance", body={}, uid=uid, host_id=host.id)
    mac = "42:01:" + ":".join(f"{int(part):02x}" for part in ip.split("."))
    return VmSpec(uid, name, name, 1, 512, (), (NicSpec("nic0", mac, "default", ip),), metadata or {})
