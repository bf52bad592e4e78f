"""regionInstanceGroups: the instanceGroups resource of each regional managed group (GCE has no
other regional instance groups), stored in collection ``instanceGroups`` under ``regions/R``. It
is made and deleted with its manager and its members follow the manager, so besides reading it
only its named ports can be set."""

from core.services import instance_groups, vpc
from gstack.api import common
from gstack.api.instance_groups import members
from gstack.api.registry import ApiRequest, handles


def _scope(req: ApiRequest, region: str) -> str:
    return vpc.region_scope(req.session, req.call.project, region)


@handles("compute.regionInstanceGroups.get")
def get(req: ApiRequest, region: str, instanceGroup: str):
    return common.get(req, "instanceGroups", _scope(req, region), instanceGroup)


@handles("compute.regionInstanceGroups.list")
def list_groups(req: ApiRequest, region: str):
    return common.list_scope(req, "instanceGroups", _scope(req, region), "compute#regionInstanceGroupList",
                             "InstanceGroup")


@handles("compute.regionInstanceGroups.listInstances")
def list_instances(req: ApiRequest, region: str, instanceGroup: str):
    return members(req, _scope(req, region), instanceGroup, "compute#regionInstanceGroupsListInstances")


@handles("compute.regionInstanceGroups.setNamedPorts")
def set_named_ports(req: ApiRequest, region: str, instanceGroup: str):
    return instance_groups.set_named_ports(req.call, _scope(req, region), instanceGroup, req.body)
