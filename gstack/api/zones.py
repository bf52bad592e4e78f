"""zones and regions: the cloud's topology as every project sees it."""

from core import quotas
from core.services import projects, topology
from gstack.api.common import static_list
from gstack.api.registry import ApiRequest, handles


@handles("compute.zones.get")
def get_zone(req: ApiRequest, zone: str):
    return topology.zone_json(req.session, req.call.project, req.zone(zone))


@handles("compute.zones.list")
def list_zones(req: ApiRequest):
    items = [topology.zone_json(req.session, req.call.project, z) for z in topology.zones(req.session)]
    return static_list(req, "compute#zoneList", f"projects/{req.call.project}/zones", items, "Zone")


def _region_json(req: ApiRequest, region) -> dict:
    project = projects.get(req.session, req.call.project)
    usage = quotas.region_usage(req.session, project.name, region.name)
    return topology.region_json(project.name, region, quotas.quota_list(usage, quotas.limits(project, region.name)))


@handles("compute.regions.get")
def get_region(req: ApiRequest, region: str):
    return _region_json(req, topology.region(req.session, req.call.project, region))


@handles("compute.regions.list")
def list_regions(req: ApiRequest):
    items = [_region_json(req, r) for r in topology.regions(req.session)]
    return static_list(req, "compute#regionList", f"projects/{req.call.project}/regions", items, "Region")
