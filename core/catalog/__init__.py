"""Offerings (CloudStack's service and disk offerings): GCE machine types and disk types.

They are GCE's published shapes, the same in every project, so they live in code, not in rows per zone;
``machines`` generates the predefined types and says which zone offers which family, ``custom`` checks
custom shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.catalog.accelerators import ACCELERATOR_TYPES, AcceleratorType
from core.catalog.custom import RULES as CUSTOM_RULES
from core.catalog.custom import InvalidShape, custom_machine_type, is_custom
from core.catalog.machines import (
    ABSENT_FAMILIES,
    FAMILIES,
    MACHINE_TYPES,
    MachineType,
    machine_types_in,
    offered,
    stable_id,
)

__all__ = [
    "ACCELERATOR_TYPES", "ABSENT_FAMILIES", "AcceleratorType", "CUSTOM_RULES", "DEFAULT_DISK_TYPE", "DEFAULT_GLOBAL_QUOTAS", "DEFAULT_REGION_QUOTAS",
    "DISK_TYPES", "FAMILIES", "MACHINE_TYPES", "DiskType", "InvalidShape", "MachineType", "custom_machine_type",
    "is_custom", "machine_type", "machine_types_in", "offered", "stable_id",
]


def machine_type(name: str) -> MachineType | None:
    """The named predefined type, or the custom type the name describes, else None.

    Raises InvalidShape for a custom name whose shape its family's rules refuse. Whether a zone offers
    the type is the caller's question (``offered(mt.family, zone)``).
    """
    return MACHINE_TYPES.get(name) or custom_machine_type(name)


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
    "ROUTERS": 20,
    "CPUS_ALL_REGIONS": 288,
}
