"""A cloud in a database of its own (SQLite, and PostgreSQL when it runs): the seeded topology, the
simulator, and a job engine whose jobs the tests run in their own thread."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

import core.services  # noqa: F401  (job handlers)
import core.systemvms  # noqa: F401  (job handlers)
from core.db import write_session
from core.hypervisors.registry import default_registry
from core.jobs import JobEngine
from core.links import url_of
from core.models import Resource, SimVmFile, SystemVm, Zone
from core.resources import store
from core.resources.context import Call
from core.services import instances
from core.services.seed import ensure_project
from core.systemvms import guests, router, sync, vms
from tests.conftest import BACKENDS
from tests.helpers.databases import seeded_engine, sessions

IMAGE = "projects/debian-cloud/global/images/family/debian-12"
REGION = "us-central1"


@dataclass
class Cloud:
    factory: sessionmaker
    drivers: object
    engine: JobEngine
    project: str

    @property
    def network(self) -> str:
        return url_of(self.project, "global", "networks", "default")

    def run_jobs(self) -> None:
        self.engine.run_until_idle(timeout=60)

    def instance(self, name: str, zone: str = "us-central1-a", tags: tuple[str, ...] = (), external: bool = False,
                 run: bool = True) -> None:
        nic: dict = {"network": "global/networks/default"}
        if external:
            nic["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT"}]
        with write_session(self.factory) as s:
            z = s.scalar(select(Zone).where(Zone.name == zone))
            instances.insert(Call(s, self.project, "test"), z, {
                "name": name, "machineType": f"zones/{zone}/machineTypes/e2-micro",
                "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
                "networkInterfaces": [nic], "tags": {"items": list(tags)}})
        if run:
            self.run_jobs()

    def body(self, name: str) -> dict:
        with self.factory() as s:
            res = s.scalar(select(Resource).where(Resource.project == self.project, Resource.name == name,
                                                  Resource.collection == "instances"))
            return store.body_of(res)

    def ip_of(self, name: str) -> str:
        return self.body(name)["networkInterfaces"][0]["networkIP"]

    def power(self, name: str, action: str, zone: str = "us-central1-a") -> None:
        """instances.start / stop / delete, and its job."""
        with write_session(self.factory) as s:
            getattr(instances, action)(Call(s, self.project, "test"), s.scalar(select(Zone).where(Zone.name == zone)),
                                       name)
        self.run_jobs()

    def delete_instance(self, name: str, zone: str = "us-central1-a") -> None:
        self.power(name, "delete", zone)

    def url_of_instance(self, name: str, zone: str = "us-central1-a") -> str:
        return url_of(self.project, f"zones/{zone}", "instances", name)

    def add(self, collection: str, name: str, body: dict, region: str | None = None) -> None:
        scope = f"regions/{region}" if region else "global"
        kind = "compute#" + collection[0].lower() + collection[1:-1]
        with write_session(self.factory) as s:
            store.new_resource(s, project=self.project, collection=collection, scope=scope, name=name, kind=kind,
                               region=region, body=body)

    def remove(self, collection: str, name: str, region: str | None = None) -> None:
        with write_session(self.factory) as s:
            s.delete(store.find(s, self.project, collection, f"regions/{region}" if region else "global", name))

    def sync(self) -> None:
        with write_session(self.factory) as s:
            sync.request_sync(s, self.project, self.network)
        self.run_jobs()

    def routers(self) -> list[SystemVm]:
        with self.factory() as s:
            return list(s.scalars(select(SystemVm).where(SystemVm.network_url == self.network)
                                  .order_by(SystemVm.name)))

    def router(self) -> SystemVm:
        found = self.routers()
        assert len(found) == 1, found
        return found[0]

    def rendered(self) -> dict[str, str]:
        with self.factory() as s:
            return router.render(s, s.get(SystemVm, self.router().id))

    def files(self, uid: int) -> dict[str, SimVmFile]:
        with self.factory() as s:
            return {f.path: f for f in s.scalars(select(SimVmFile).where(SimVmFile.vm_uid == uid))}

    def capacity_row(self, uid: int) -> Resource:
        with self.factory() as s:
            return s.scalar(select(Resource).where(Resource.uid == uid, Resource.project == vms.SYSTEM_PROJECT))


@pytest.fixture(scope="module", params=BACKENDS)
def database(request):
    """A seeded database shared by a module's tests (each test works in a project of its own)."""
    with seeded_engine(request.param, "gstack-svm-") as engine:
        yield sessions(engine)


@pytest.fixture
def cloud(database) -> Cloud:
    project = f"svm-{uuid.uuid4().hex[:8]}"
    with write_session(database) as s:
        ensure_project(s, project)
    drivers = default_registry(database)
    return Cloud(database, drivers, JobEngine(database, drivers, workers=1), project)


# -- the real tools ------------------------------------------------------------------------------------


TOOLS = {"dnsmasq": ["dnsmasq", "--test", "-C"], "nft": ["nft", "-c", "-f"], "haproxy": ["haproxy", "-c", "-f"]}


def check_with(tool: str, content: str) -> str:
    """Run the tool's own configuration check on ``content``; its output. Fails the test if it refuses."""
    if shutil.which(TOOLS[tool][0]) is None:
        pytest.fail(f"{TOOLS[tool][0]} is not installed (.ci/run installs dnsmasq-base, nftables, haproxy)")
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(content)
    try:
        done = subprocess.run([*TOOLS[tool], f.name], capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(f.name)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{tool} refused the configuration:\n{output}\n---\n{content}"
    return output


def guest_lines(files: dict[str, str], directory: str) -> list[str]:
    """The lines of every instance's file in one of the router's instance directories."""
    return [line for path, text in sorted(files.items()) if path.startswith(directory + "/")
            for line in text.splitlines()]


def check_all(files: dict[str, str]) -> None:
    """The tools' own checks of the main files with the instances' files they include: nft reads them
    from a directory of their own; dnsmasq's lines are checked as the options they stand for."""
    dns = [line.split() for line in guest_lines(files, guests.DNS_DIR)]
    check_with("dnsmasq", files[router.DNSMASQ]
               + "".join(f"dhcp-host={line}\n" for line in guest_lines(files, guests.DHCP_DIR))
               + "".join(f"host-record={','.join(names)},{ip}\n" for ip, *names in dns))
    with tempfile.TemporaryDirectory() as root:
        for path, text in files.items():
            if path.startswith(guests.NFT_DIR + "/"):
                os.makedirs(os.path.dirname(root + path), exist_ok=True)
                with open(root + path, "w") as f:
                    f.write(text)
        check_with("nft", files[router.NFTABLES].replace(f'include "{guests.NFT_DIR}/', f'include "{root}{guests.NFT_DIR}/'))
    check_with("haproxy", files[router.HAPROXY])


def chain(nft: str, name: str) -> list[str]:
    """The rules of one chain of a rendered nftables file, in order."""
    lines = nft.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"chain {name} {{")
    out = []
    for line in lines[start + 1:]:
        if line.strip() == "}":
            return out
        if line.strip() and not line.strip().startswith("type "):
            out.append(line.strip())
    raise AssertionError(f"chain {name} is not closed")


def backend_servers(cfg: str, backend: str) -> list[str]:
    lines = cfg.splitlines()
    start = lines.index(f"backend {backend}")
    out = []
    for line in lines[start + 1:]:
        if not line.startswith("    "):
            break
        if line.strip().startswith("server "):
            out.append(line.split()[1])
    return out
