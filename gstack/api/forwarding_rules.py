"""forwardingRules: the external IP, protocol and ports of a regional network load balancer."""

from core.services import load_balancing, vpc
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
    return load_balancing.insert_forwarding_rule(req.call, region, req.body)


@handles("compute.forwardingRules.delete")
def delete(req: ApiRequest, region: str, forwardingRule: str):
    return load_balancing.delete_forwarding_rule(req.call, region, forwardingRule)


@handles("compute.forwardingRules.setTarget")
def set_target(req: ApiRequest, region: str, forwardingRule: str):
    return load_balancing.set_forwarding_rule_target(req.call, region, forwardingRule, req.body)


@handles("compute.forwardingRules.setLabels")
def set_labels(req: ApiRequest, region: str, resource: str):
    return load_balancing.set_forwarding_rule_labels(req.call, region, resource, req.body)
