"""One module per GCE collection; importing them fills the handler registry."""

from gstack.api import (  # noqa: F401
    disks,
    images,
    instances,
    machine_types,
    networks,
    operations,
    projects,
    snapshots,
    zones,
)
from gstack.api.registry import HANDLERS

__all__ = ["HANDLERS"]
