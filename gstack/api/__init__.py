"""One module per GCE collection; importing them fills the handler registry."""

from gstack.api import (  # noqa: F401
    addresses,
    backend_services,
    disks,
    firewalls,
    forwarding_rules,
    global_forwarding_rules,
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
    routers,
    routes,
    snapshots,
    ssl_certificates,
    ssl_policies,
    subnetworks,
    target_pools,
    target_proxies,
    url_maps,
    zones,
)
from gstack.api.registry import HANDLERS

__all__ = ["HANDLERS"]
