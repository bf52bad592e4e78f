"""firewalls: VPC firewall rules, and the rules in effect for an instance's interface."""

from core.services import firewalls
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


@handles("compute.firewalls.get")
def get(req: ApiRequest, firewall: str):
    return common.get(req, "firewalls", "global", firewall)


@handles("compute.firewalls.list")
def list_firewalls(req: ApiRequest):
    return common.list_scope(req, "firewalls", "global", "compute#firewallList", "Firewall")


@handles("compute.firewalls.insert")
def insert(req: ApiRequest):
    return firewalls.insert(req.call, req.body)


@handles("compute.firewalls.delete")
def delete(req: ApiRequest, firewall: str):
    return firewalls.delete(req.call, firewall)


@handles("compute.firewalls.patch")
def patch(req: ApiRequest, firewall: str):
    return firewalls.patch(req.call, firewall, req.body)


@handles("compute.firewalls.update")
def update(req: ApiRequest, firewall: str):
    return firewalls.update(req.call, firewall, req.body)


@handles("compute.instances.getEffectiveFirewalls")
def instance_effective_firewalls(req: ApiRequest, zone: str, instance: str):
    return firewalls.for_instance(req.call, req.zone(zone).name, instance, req.args.get("networkInterface"))
