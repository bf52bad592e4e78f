"""networkEndpointGroups: zonal groups of VM endpoints (GCE_VM_IP_PORT) behind backend services."""

import orjson
from flask import Response

from core.services import network_endpoint_groups
from gstack.api import common
from gstack.api.registry import ApiRequest, handles
from gstack.gce.listing import memory_source, paginate, parse_params
from gstack.gce.render import json_response, stored_all

C = network_endpoint_groups.COLLECTION


@handles("compute.networkEndpointGroups.get")
def get(req: ApiRequest, zone: str, networkEndpointGroup: str):
    return common.get(req, C, f"zones/{req.zone(zone).name}", networkEndpointGroup)


@handles("compute.networkEndpointGroups.list")
def list_groups(req: ApiRequest, zone: str):
    return common.list_scope(req, C, f"zones/{req.zone(zone).name}", "compute#networkEndpointGroupList",
                             "NetworkEndpointGroup")


@handles("compute.networkEndpointGroups.aggregatedList")
def aggregated(req: ApiRequest):
    return common.aggregated_list(req, C, "zones", "compute#networkEndpointGroupAggregatedList",
                                  "NetworkEndpointGroup")


@handles("compute.networkEndpointGroups.insert")
def insert(req: ApiRequest, zone: str):
    return network_endpoint_groups.insert(req.call, req.zone(zone), req.body)


@handles("compute.networkEndpointGroups.delete")
def delete(req: ApiRequest, zone: str, networkEndpointGroup: str):
    return network_endpoint_groups.delete(req.call, req.zone(zone), networkEndpointGroup)


@handles("compute.networkEndpointGroups.attachNetworkEndpoints")
def attach(req: ApiRequest, zone: str, networkEndpointGroup: str):
    return network_endpoint_groups.change(req.call, req.zone(zone), networkEndpointGroup, req.body, attach=True)


@handles("compute.networkEndpointGroups.detachNetworkEndpoints")
def detach(req: ApiRequest, zone: str, networkEndpointGroup: str):
    return network_endpoint_groups.change(req.call, req.zone(zone), networkEndpointGroup, req.body, attach=False)


@handles("compute.networkEndpointGroups.listNetworkEndpoints")
def list_endpoints(req: ApiRequest, zone: str, networkEndpointGroup: str) -> Response:
    """A POST list, paged and filtered like the others, over the endpoints in attach order (the
    answer's schema has no selfLink)."""
    params = parse_params(req.args, "NetworkEndpointWithHealthStatus")
    items = network_endpoint_groups.list_endpoints(req.call, req.zone(zone), networkEndpointGroup, req.body)
    keyed = [([n], orjson.dumps(item).decode()) for n, item in enumerate(items)]
    if params.order == "created":
        keyed.reverse()
    page, token = paginate(memory_source(keyed), params)
    path = f"projects/{req.call.project}/zones/{zone}/networkEndpointGroups/{networkEndpointGroup}"
    out = common.list_envelope("compute#networkEndpointGroupsListNetworkEndpoints", path,
                               stored_all([t for _, t in page]), token)
    out.pop("selfLink")
    return json_response(out)
