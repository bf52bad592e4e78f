"""globalForwardingRules: the IP and port of a global HTTP(S) load balancer, in front of a target proxy."""

from core.services import proxy_forwarding_rules
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


@handles("compute.globalForwardingRules.get")
def get(req: ApiRequest, forwardingRule: str):
    return common.get(req, "forwardingRules", "global", forwardingRule)


@handles("compute.globalForwardingRules.list")
def list_rules(req: ApiRequest):
    return common.list_scope(req, "forwardingRules", "global", "compute#forwardingRuleList", "ForwardingRule")


@handles("compute.globalForwardingRules.insert")
def insert(req: ApiRequest):
    return proxy_forwarding_rules.insert(req.call, None, req.body)


@handles("compute.globalForwardingRules.delete")
def delete(req: ApiRequest, forwardingRule: str):
    return proxy_forwarding_rules.delete(req.call, None, forwardingRule)


@handles("compute.globalForwardingRules.setTarget")
def set_target(req: ApiRequest, forwardingRule: str):
    return proxy_forwarding_rules.set_target(req.call, None, forwardingRule, req.body)


@handles("compute.globalForwardingRules.setLabels")
def set_labels(req: ApiRequest, resource: str):
    return proxy_forwarding_rules.set_global_labels(req.call, resource, req.body)


@handles("compute.globalForwardingRules.patch")
def patch(req: ApiRequest, forwardingRule: str):
    return proxy_forwarding_rules.patch(req.call, None, forwardingRule, req.body)
