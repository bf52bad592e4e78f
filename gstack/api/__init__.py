"""One module per GCE collection; importing them fills the handler registry."""

from gstack.api import (  # noqa: F401
    addresses,
    disks,
    firewalls,
    forwarding_rules,
    health_checks,
    images,
    instance_group_managers,
    instance_groups,
    instance_templates,
    instances,
    machine_types,
    networks,
    operations,
    projects,
    region_disks,
    resource_policies,
    routes,
    snapshots,
    subnetworks,
    target_pools,
    zones,
)
from gstack.api.registry import HANDLERS

__all__ = ["HANDLERS"]
