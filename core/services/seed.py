"""The demo cloud the embedded default starts with.

Two regions (us-central1 with three zones, europe-west1 with one), each zone with a pod, a
simulator cluster, four simulated hosts and a zone-wide primary storage pool; the public image
projects; and ``demo-project`` with its default VPC. Seeding is idempotent: it only adds what
is missing, so restarts keep everything.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import identity
from core.models import Cluster, Host, Pod, Project, Region, StoragePool, Zone
from core.services import images, networks

TOPOLOGY = {
    "us-central1": (1000, {"us-central1-a": 2000, "us-central1-b": 2001, "us-central1-c": 2002}),
    "europe-west1": (1100, {"europe-west1-b": 2101}),
}
HOSTS_PER_ZONE = 4
HOST_CPUS = 32
HOST_MEMORY_MB = 128 * 1024
POOL_GB = 20 * 1024
CPU_PLATFORMS = ["Intel Cascade Lake", "Intel Cascade Lake", "AMD Milan", "AMD Milan"]

PUBLIC_IMAGES = {
    "debian-cloud": [
        ("debian-11-bullseye-v20240709", "debian-11", 10, "2024-07-09", "Debian, Debian GNU/Linux, 11 (bullseye), amd64 built on 20240709"),
        ("debian-11-bullseye-v20241009", "debian-11", 10, "2024-10-09", "Debian, Debian GNU/Linux, 11 (bullseye), amd64 built on 20241009"),
        ("debian-12-bookworm-v20240709", "debian-12", 10, "2024-07-09", "Debian, Debian GNU/Linux, 12 (bookworm), amd64 built on 20240709"),
        ("debian-12-bookworm-v20241009", "debian-12", 10, "2024-10-09", "Debian, Debian GNU/Linux, 12 (bookworm), amd64 built on 20241009"),
    ],
    "ubuntu-os-cloud": [
        ("ubuntu-2204-jammy-v20240927", "ubuntu-2204-lts", 10, "2024-09-27", "Canonical, Ubuntu, 22.04 LTS, amd64 jammy image built on 2024-09-27"),
        ("ubuntu-2404-noble-amd64-v20241004", "ubuntu-2404-lts-amd64", 10, "2024-10-04", "Canonical, Ubuntu, 24.04 LTS, amd64 noble image built on 2024-10-04"),
    ],
}

# gcloud's `images list` asks every public image project at once; those without seeded images
# exist (empty) so the batch succeeds, as it does against Google.
PUBLIC_IMAGE_PROJECTS = [
    "almalinux-cloud", "centos-cloud", "cos-cloud", "debian-cloud", "fedora-coreos-cloud", "opensuse-cloud",
    "oracle-linux-cloud", "rhel-cloud", "rhel-sap-cloud", "rocky-linux-accelerator-cloud", "rocky-linux-cloud",
    "suse-cloud", "suse-sap-cloud", "ubuntu-os-accelerator-images", "ubuntu-os-cloud", "ubuntu-os-pro-cloud",
    "windows-cloud", "windows-sql-cloud",
]

DEMO_PROJECT = "demo-project"


def seed_topology(session: Session) -> None:
    for region_name, (region_uid, zones) in TOPOLOGY.items():
        region = session.scalar(select(Region).where(Region.name == region_name))
        if region is None:
            region = Region(uid=region_uid, name=region_name, status="UP")
            session.add(region)
            session.flush()
        for n, (zone_name, zone_uid) in enumerate(zones.items()):
            if session.scalar(select(Zone).where(Zone.name == zone_name)) is not None:
                continue
            zone = Zone(uid=zone_uid, name=zone_name, region_id=region.id, status="UP", systemvm_arch="x86_64")
            session.add(zone)
            session.flush()
            pod = Pod(zone_id=zone.id, name=f"{zone_name}-pod1", cidr=f"192.168.{zone_uid % 256}.0/24")
            session.add(pod)
            session.flush()
            cluster = Cluster(pod_id=pod.id, zone_id=zone.id, name=f"{zone_name}-sim1", hypervisor="simulator")
            session.add(cluster)
            session.flush()
            for h in range(HOSTS_PER_ZONE):
                session.add(Host(cluster_id=cluster.id, zone_id=zone.id, name=f"sim-{zone_name}-{h + 1:02d}",
                                 uri=f"simulator://{zone_name}/{h + 1}", cpus=HOST_CPUS, memory_mb=HOST_MEMORY_MB,
                                 cpu_platform=CPU_PLATFORMS[(h + n) % len(CPU_PLATFORMS)], status="Up"))
            session.add(StoragePool(zone_id=zone.id, cluster_id=None, name=f"{zone_name}-primary",
                                    capacity_gb=POOL_GB, overprovisioning=2.0, status="Up"))
    session.flush()


def seed_public_images(session: Session) -> None:
    for project_name in PUBLIC_IMAGE_PROJECTS:
        if session.scalar(select(Project).where(Project.name == project_name)) is None:
            identity.create_project(session, project_name, public=True)
    for project_name, entries in PUBLIC_IMAGES.items():
        for name, family, size, day, description in entries:
            created = datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()
            images.seed_public_image(session, project_name, name, family, size, created, description)


def ensure_project(session: Session, name: str) -> Project:
    """A project with its default VPC, as GCE creates them."""
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = identity.create_project(session, name)
    networks.create_default_network(session, name)
    return project


def seed(session: Session) -> Project:
    seed_topology(session)
    seed_public_images(session)
    demo = ensure_project(session, DEMO_PROJECT)
    session.flush()
    return demo



