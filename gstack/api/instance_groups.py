"""instanceGroups: unmanaged zonal instance groups (regionInstanceGroups, views over regional
managed groups, are in region_instance_groups; the aggregated list holds both, as GCE's does)."""

import orjson
from flask import Response

from core.services import instance_groups
from gstack.api import common
from gstack.api.registry import ApiRequest, handles
from gstack.gce.listing import memory_source, paginate, parse_params
from gstack.gce.render import json_response, stored_all


@handles("compute.instanceGroups.get")
def get(req: ApiRequest, zone: str, instanceGroup: str):
    return common.get(req, "instanceGroups", f"zones/{req.zone(zone).name}", instanceGroup)


@handles("compute.instanceGroups.list")
def list_groups(req: ApiRequest, zone: str):
    return common.list_scope(req, "instanceGroups", f"zones/{req.zone(zone).name}", "compute#instanceGroupList",
                             "InstanceGroup")


@handles("compute.instanceGroups.aggregatedList")
def aggregated(req: ApiRequest):
    return common.aggregated_list(req, "instanceGroups", ("regions", "zones"), "compute#instanceGroupAggregatedList",
                                  "InstanceGroup")


@handles("compute.instanceGroups.insert")
def insert(req: ApiRequest, zone: str):
    return instance_groups.insert(req.call, req.zone(zone), req.body)


@handles("compute.instanceGroups.delete")
def delete(req: ApiRequest, zone: str, instanceGroup: str):
    return instance_groups.delete(req.call, req.zone(zone), instanceGroup)


@handles("compute.instanceGroups.addInstances")
def add_instances(req: ApiRequest, zone: str, instanceGroup: str):
    return instance_groups.add_instances(req.call, req.zone(zone), instanceGroup, req.body)


@handles("compute.instanceGroups.removeInstances")
def remove_instances(req: ApiRequest, zone: str, instanceGroup: str):
    return instance_groups.remove_instances(req.call, req.zone(zone), instanceGroup, req.body)


@handles("compute.instanceGroups.setNamedPorts")
def set_named_ports(req: ApiRequest, zone: str, instanceGroup: str):
    return instance_groups.set_named_ports(req.call, f"zones/{req.zone(zone).name}", instanceGroup, req.body)


@handles("compute.instanceGroups.listInstances")
def list_instances(req: ApiRequest, zone: str, instanceGroup: str) -> Response:
    return members(req, f"zones/{req.zone(zone).name}", instanceGroup, "compute#instanceGroupsListInstances")


def members(req: ApiRequest, scope: str, group: str, kind: str) -> Response:
    """listInstances, zonal or regional: a POST list, paged and filtered like the others, over the
    members in name order."""
    params = parse_params(req.args, "InstanceWithNamedPorts")
    items = instance_groups.list_instances(req.call, scope, group, req.body)
    keyed = [([i["instance"].rsplit("/", 1)[-1]], orjson.dumps(i).decode()) for i in items]
    if params.order == "created":
        keyed.reverse()
    page, token = paginate(memory_source(keyed), params)
    path = f"projects/{req.call.project}/{scope}/instanceGroups/{group}/listInstances"
    return json_response(common.list_envelope(kind, path, stored_all([t for _, t in page]), token))
