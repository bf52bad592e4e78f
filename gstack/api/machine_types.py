"""machineTypes and diskTypes: the offerings, the same in every zone."""

import orjson

from core.services import topology
from gstack.api.common import list_envelope, reorder, scopes_of
from gstack.api.common import static_list as _static_list
from gstack.api.registry import ApiRequest, handles
from gstack.gce.listing import aggregate, memory_source, paginate, parse_params
from gstack.gce.render import json_response, storing


@handles("compute.machineTypes.get")
def get_machine_type(req: ApiRequest, zone: str, machineType: str):  # noqa: N803 (discovery name)
    z = req.zone(zone)
    mt = topology.get_machine_type(req.call.project, z.name, machineType, field="machineType")
    return topology.machine_type_json(req.call.project, z.name, mt)


@handles("compute.machineTypes.list")
def list_machine_types(req: ApiRequest, zone: str):
    z = req.zone(zone)
    return _static_list(req, "compute#machineTypeList", f"projects/{req.call.project}/zones/{z.name}/machineTypes",
                        topology.machine_types(req.call.project, z.name), "MachineType")


@handles("compute.diskTypes.get")
def get_disk_type(req: ApiRequest, zone: str, diskType: str):  # noqa: N803
    z = req.zone(zone)
    return topology.disk_type_json(req.call.project, z.name, topology.get_disk_type(req.call.project, z.name, diskType))


@handles("compute.diskTypes.list")
def list_disk_types(req: ApiRequest, zone: str):
    z = req.zone(zone)
    return _static_list(req, "compute#diskTypeList", f"projects/{req.call.project}/zones/{z.name}/diskTypes",
                        topology.disk_types(req.call.project, z.name), "DiskType")


def _aggregated(req: ApiRequest, field: str, kind: str, schema: str, items_of) -> dict:
    """An aggregated list over in-memory offerings: every zone key, paged across zones like stored rows."""
    params = parse_params(req.args, schema)
    scopes = scopes_of(req, "zones")
    keyed = []
    for scope in scopes:
        items = sorted(items_of(scope.split("/", 1)[1]), key=lambda i: i["name"])
        if params.order == "created":  # as static_list: offerings share one creation time
            items.reverse()
        keyed += [([scope, i["name"]], orjson.dumps(i).decode()) for i in items]
    page, token = paginate(memory_source(keyed), params)
    out = list_envelope(kind, f"projects/{req.call.project}/aggregated/{field}", [], token)
    out["items"] = aggregate(page, scopes, field, storing())
    out["unreachables"] = []
    return reorder(out)


@handles("compute.machineTypes.aggregatedList")
def aggregated_machine_types(req: ApiRequest):
    return json_response(_aggregated(req, "machineTypes", "compute#machineTypeAggregatedList", "MachineType",
                                     lambda z: topology.machine_types(req.call.project, z)))


@handles("compute.diskTypes.aggregatedList")
def aggregated_disk_types(req: ApiRequest):
    return json_response(_aggregated(req, "diskTypes", "compute#diskTypeAggregatedList", "DiskType",
                                     lambda z: topology.disk_types(req.call.project, z)))
