"""addresses and globalAddresses: static IP addresses; instances.updateAccessConfig, which changes
how an instance uses its external address."""

from flask import Response

from core.resources.narrowing import filtered_rows
from core.services import addresses, instances, vpc
from gstack.api import common
from gstack.api.registry import ApiRequest, handles
from gstack.gce.listing import aggregate, paginate, parse_params
from gstack.gce.narrowing import narrowing_of
from gstack.gce.render import json_response, storing


def aggregated_with_global(req: ApiRequest, collection: str, kind: str, schema: str) -> Response:
    """aggregatedList of a collection with regional and global members (addresses, forwarding rules,
    health checks): the ``global`` key first, then every region."""
    params = parse_params(req.args, schema)
    project = req.call.project
    scopes = ["global", *common.scopes_of(req, "regions")]
    page, token = paginate(
        lambda after, limit: filtered_rows(req.session, project, collection, scopes, params.order, after, limit,
                                           narrowing_of(req.args.get("filter"), schema)),
        params)
    out = common.list_envelope(kind, f"projects/{project}/aggregated/{collection}", [], token)
    out["items"] = aggregate(page, scopes, collection, storing())
    out["unreachables"] = []
    return json_response(common.reorder(out))


def _scope(req: ApiRequest, region: str) -> str:
    return vpc.region_scope(req.session, req.call.project, region)


@handles("compute.addresses.get")
def get(req: ApiRequest, region: str, address: str):
    return common.get(req, "addresses", _scope(req, region), address)


@handles("compute.addresses.list")
def list_addresses(req: ApiRequest, region: str):
    return common.list_scope(req, "addresses", _scope(req, region), "compute#addressList", "Address")


@handles("compute.addresses.aggregatedList")
def aggregated(req: ApiRequest):
    return aggregated_with_global(req, "addresses", "compute#addressAggregatedList", "Address")


@handles("compute.addresses.insert")
def insert(req: ApiRequest, region: str):
    return addresses.insert(req.call, _scope(req, region), req.body)


@handles("compute.addresses.delete")
def delete(req: ApiRequest, region: str, address: str):
    return addresses.delete(req.call, _scope(req, region), address)


@handles("compute.addresses.setLabels")
def set_labels(req: ApiRequest, region: str, resource: str):
    return addresses.set_address_labels(req.call, _scope(req, region), resource, req.body)


@handles("compute.globalAddresses.get")
def get_global(req: ApiRequest, address: str):
    return common.get(req, "addresses", "global", address)


@handles("compute.globalAddresses.list")
def list_global(req: ApiRequest):
    return common.list_scope(req, "addresses", "global", "compute#addressList", "Address")


@handles("compute.globalAddresses.insert")
def insert_global(req: ApiRequest):
    return addresses.insert(req.call, "global", req.body)


@handles("compute.globalAddresses.delete")
def delete_global(req: ApiRequest, address: str):
    return addresses.delete(req.call, "global", address)


@handles("compute.globalAddresses.setLabels")
def set_global_labels(req: ApiRequest, resource: str):
    return addresses.set_address_labels(req.call, "global", resource, req.body)


@handles("compute.instances.updateAccessConfig")
def update_access_config(req: ApiRequest, zone: str, instance: str):
    return instances.update_access_config(req.call, req.zone(zone), instance, req.args.get("networkInterface"),
                                          req.body)
