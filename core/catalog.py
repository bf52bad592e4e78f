"""Offerings (CloudStack's service and disk offerings): GCE machine types and disk types.

They are the same in every zone and project, so they live in code, not in rows per zone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from core.errors import Invalid


def stable_id(*parts: str) -> int:
    """A deterministic uint63 id for catalog entries, so ids survive restarts and match across zones."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1 or 1


@dataclass(frozen=True)
class MachineType:
    name: str
    guest_cpus: int
    memory_mb: int
    shared_cpu: bool = False
    description: str = ""

    def describe(self) -> str:
        if self.description:
            return self.description
        gb = self.memory_mb / 1024
        mem = f"{gb:g} GB" if gb >= 1 else f"{self.memory_mb} MB"
        return f"{self.guest_cpus} vCPU{'s' if self.guest_cpus > 1 else ''}, {mem} RAM"


_SHARED = {
    "e2-micro": "Efficient Instance, 2 vCPU (1/4 shared physical core) and 1 GB RAM",
    "e2-small": "Efficient Instance, 2 vCPU (1/2 shared physical core) and 2 GB RAM",
    "e2-medium": "Efficient Instance, 2 vCPU (1 shared physical core) and 4 GB RAM",
}

MACHINE_TYPES: dict[str, MachineType] = {
    mt.name: mt
    for mt in [
        MachineType("e2-micro", 2, 1024, True, _SHARED["e2-micro"]),
        MachineType("e2-small", 2, 2048, True, _SHARED["e2-small"]),
        MachineType("e2-medium", 2, 4096, True, _SHARED["e2-medium"]),
        MachineType("e2-standard-2", 2, 8192),
        MachineType("e2-standard-4", 4, 16384),
        MachineType("e2-standard-8", 8, 32768),
        MachineType("n2-standard-2", 2, 8192),
        MachineType("n2-standard-4", 4, 16384),
        MachineType("n2-standard-8", 8, 32768),
        MachineType("n2-standard-16", 16, 65536),
    ]
}

_CUSTOM = re.compile(r"^(?:(e2|n2|n1)-)?custom-(\d+)-(\d+)(-ext)?$")


def machine_type(name: str) -> MachineType | None:
    """The named type, or a custom-CPUS-MEMORY type when its shape is valid, else None."""
    if name in MACHINE_TYPES:
        return MACHINE_TYPES[name]
    m = _CUSTOM.match(name)
    if not m:
        return None
    cpus, memory = int(m.group(2)), int(m.group(3))
    if cpus < 1 or (cpus > 1 and cpus % 2) or cpus > 96:
        raise Invalid("resource.machineType", name, message=(
            f"Invalid value for field 'resource.machineType': '{name}'. "
            "Custom machine types need 1 or an even number of vCPUs, at most 96."))
    if memory % 256 or memory < 256 * cpus or memory > 8192 * cpus:
        raise Invalid("resource.machineType", name, message=(
            f"Invalid value for field 'resource.machineType': '{name}'. Memory must be a multiple of "
            "256 MB and between 0.9 GB and 8 GB per vCPU."))
    return MachineType(name, cpus, memory, description=f"Custom created machine type with {cpus} vCPUs, {memory} MB RAM")


@dataclass(frozen=True)
class DiskType:
    name: str
    description: str
    default_size_gb: int
    quota_metric: str
    valid_size: str = "10GB-65536GB"


DISK_TYPES: dict[str, DiskType] = {
    dt.name: dt
    for dt in [
        DiskType("pd-standard", "Standard Persistent Disk", 500, "DISKS_TOTAL_GB"),
        DiskType("pd-balanced", "Balanced Persistent Disk", 100, "SSD_TOTAL_GB"),
        DiskType("pd-ssd", "SSD Persistent Disk", 100, "SSD_TOTAL_GB"),
    ]
}

DEFAULT_DISK_TYPE = "pd-standard"

# Per-region limits of a new project (GCE's quota metrics). Operators raise them per project.
DEFAULT_REGION_QUOTAS: dict[str, float] = {
    "CPUS": 96,
    "INSTANCES": 100,
    "DISKS_TOTAL_GB": 20480,
    "SSD_TOTAL_GB": 4096,
    "STATIC_ADDRESSES": 8,
    "IN_USE_ADDRESSES": 24,
}
DEFAULT_GLOBAL_QUOTAS: dict[str, float] = {
    "SNAPSHOTS": 5000,
    "NETWORKS": 15,
    "FIREWALLS": 200,
    "IMAGES": 2000,
    "ROUTES": 250,
    "SUBNETWORKS": 175,
    "CPUS_ALL_REGIONS": 288,
}
