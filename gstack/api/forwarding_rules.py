"""forwardingRules: the IP, protocol and ports of a regional load balancer (a target pool's, or a regional
target HTTP(S) proxy's)."""

from core.services import load_balancing, proxy_forwarding_rules, vpc
from gstack.api import common
from gstack.api.addresses import aggregated_with_global
from gstack.api.registry import ApiRequest, handles


@handles("compute.forwardingRules.get")
def get(req: ApiRequest, region: str, forwardingRule: str):
    return common.get(req, "forwardingRules", vpc.region_scope(req.session, req.call.project, region), forwardingRule)


@handles("compute.forwardingRules.list")
def list_rules(req: ApiRequest, region: str):
    return common.list_scope(req, "forwardingRules", vpc.region_scope(req.session, req.call.project, region),
                             "compute#forwardingRuleList", "ForwardingRule")


@handles("compute.forwardingRules.aggregatedList")
def aggregated(req: ApiRequest):
    return aggregated_with_global(req, "forwardingRules", "compute#forwardingRuleAggregatedList", "ForwardingRule")


@handles("compute.forwardingRules.insert")
def insert(req: ApiRequest, region: str):
    return proxy_forwarding_rules.insert(req.call, region, req.body)


@handles("compute.forwardingRules.delete")
def delete(req: ApiRequest, region: str, forwardingRule: str):
    return proxy_forwarding_rules.delete(req.call, region, forwardingRule)


@handles("compute.forwardingRules.setTarget")
def set_target(req: ApiRequest, region: str, forwardingRule: str):
    return proxy_forwarding_rules.set_target(req.call, region, forwardingRule, req.body)


@handles("compute.forwardingRules.setLabels")
def set_labels(req: ApiRequest, region: str, resource: str):
    return load_balancing.set_forwarding_rule_labels(req.call, region, resource, req.body)


@handles("compute.forwardingRules.patch")
def patch(req: ApiRequest, region: str, forwardingRule: str):
    return proxy_forwarding_rules.patch(req.call, region, forwardingRule, req.body)
