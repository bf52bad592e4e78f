"""machineTypes, diskTypes and acceleratorTypes: the offerings. Machine types are rendered once per
project and zone (topology.machine_type_texts), so a list pages and filters over stored text as for
rows; a zone's accelerator types are those its hosts declare."""

import orjson

from core.services import accelerator_types, topology
from gstack.api.common import list_envelope, reorder, scopes_of
from gstack.api.common import static_list as _static_list
from gstack.api.registry import ApiRequest, handles
from gstack.gce.listing import aggregate, memory_source, paginate, parse_params
from gstack.gce.render import json_response, stored_all, storing


@handles("compute.machineTypes.get")
def get_machine_type(req: ApiRequest, zone: str, machineType: str):  # noqa: N803 (discovery name)
    z = req.zone(zone)
    mt = topology.get_machine_type(req.call.project, z.name, machineType, field="machineType")
    return topology.machine_type_json(req.call.project, z.name, mt)


@handles("compute.machineTypes.list")
def list_machine_types(req: ApiRequest, zone: str):
    z = req.zone(zone)
    params = parse_params(req.args, "MachineType")
    keyed = [([name], text) for name, text in topology.machine_type_texts(req.call.project, z.name)]
    if params.order == "created":  # as static_list: the offerings share one creation time
        keyed.reverse()
    page, token = paginate(memory_source(keyed), params)
    path = f"projects/{req.call.project}/zones/{z.name}/machineTypes"
    return json_response(list_envelope("compute#machineTypeList", path, stored_all([t for _, t in page]), token))


@handles("compute.diskTypes.get")
def get_disk_type(req: ApiRequest, zone: str, diskType: str):  # noqa: N803
    z = req.zone(zone)
    return topology.disk_type_json(req.call.project, z.name, topology.get_disk_type(req.call.project, z.name, diskType))


@handles("compute.diskTypes.list")
def list_disk_types(req: ApiRequest, zone: str):
    z = req.zone(zone)
    return _static_list(req, "compute#diskTypeList", f"projects/{req.call.project}/zones/{z.name}/diskTypes",
                        topology.disk_types(req.call.project, z.name), "DiskType")


def _aggregated(req: ApiRequest, field: str, kind: str, schema: str, texts_of) -> dict:
    """An aggregated list over in-memory offerings: every zone key, paged across zones like stored rows.

    ``texts_of(zone)`` gives the zone's (name, JSON text) pairs by name.
    """
    params = parse_params(req.args, schema)
    scopes = scopes_of(req, "zones")
    keyed = []
    for scope in scopes:
        texts = list(texts_of(scope.split("/", 1)[1]))
        if params.order == "created":  # as static_list: offerings share one creation time
            texts.reverse()
        keyed += [([scope, name], text) for name, text in texts]
    page, token = paginate(memory_source(keyed), params)
    out = list_envelope(kind, f"projects/{req.call.project}/aggregated/{field}", [], token)
    out["items"] = aggregate(page, scopes, field, storing())
    out["unreachables"] = []
    return reorder(out)


@handles("compute.machineTypes.aggregatedList")
def aggregated_machine_types(req: ApiRequest):
    return json_response(_aggregated(req, "machineTypes", "compute#machineTypeAggregatedList", "MachineType",
                                     lambda z: topology.machine_type_texts(req.call.project, z)))


@handles("compute.diskTypes.aggregatedList")
def aggregated_disk_types(req: ApiRequest):
    return json_response(_aggregated(req, "diskTypes", "compute#diskTypeAggregatedList", "DiskType",
                                     lambda z: _texts(topology.disk_types(req.call.project, z))))


def _texts(items: list[dict]) -> list[tuple[str, str]]:
    return sorted((i["name"], orjson.dumps(i).decode()) for i in items)


@handles("compute.acceleratorTypes.get")
def get_accelerator_type(req: ApiRequest, zone: str, acceleratorType: str):  # noqa: N803
    return accelerator_types.get(req.session, req.call.project, req.zone(zone), acceleratorType)


@handles("compute.acceleratorTypes.list")
def list_accelerator_types(req: ApiRequest, zone: str):
    z = req.zone(zone)
    return _static_list(req, "compute#acceleratorTypeList", f"projects/{req.call.project}/zones/{z.name}/acceleratorTypes",
                        accelerator_types.list_in(req.session, req.call.project, z), "AcceleratorType")


@handles("compute.acceleratorTypes.aggregatedList")
def aggregated_accelerator_types(req: ApiRequest):
    return json_response(_aggregated(
        req, "acceleratorTypes", "compute#acceleratorTypeAggregatedList", "AcceleratorType",
        lambda z: _texts(accelerator_types.list_in(req.session, req.call.project, req.zone(z)))))
