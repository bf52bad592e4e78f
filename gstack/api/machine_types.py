"""machineTypes and diskTypes: the offerings, the same in every zone."""

from core.services import topology
from gstack.api.common import list_envelope, scopes_of
from gstack.api.common import static_list as _static_list
from gstack.api.registry import ApiRequest, handles
from gstack.gce.listing import no_results_warning, parse_params
from gstack.gce.render import json_response


@handles("compute.machineTypes.get")
def get_machine_type(req: ApiRequest, zone: str, machineType: str):  # noqa: N803 (discovery name)
    z = req.zone(zone)
    return topology.machine_type_json(req.call.project, z.name, topology.get_machine_type(req.call.project, z.name,
                                                                                          machineType))


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
    params = parse_params(req.args, schema)
    items = {}
    for scope in scopes_of(req, "zones"):
        zone_items = [i for i in items_of(scope.split("/", 1)[1]) if params.predicate is None or params.predicate(i)]
        items[scope] = {field: zone_items} if zone_items else no_results_warning(scope)
    out = list_envelope(kind, f"projects/{req.call.project}/aggregated/{field}", [], None)
    out["items"] = items
    return out


@handles("compute.machineTypes.aggregatedList")
def aggregated_machine_types(req: ApiRequest):
    return json_response(_aggregated(req, "machineTypes", "compute#machineTypeAggregatedList", "MachineType",
                                     lambda z: topology.machine_types(req.call.project, z)))


@handles("compute.diskTypes.aggregatedList")
def aggregated_disk_types(req: ApiRequest):
    return json_response(_aggregated(req, "diskTypes", "compute#diskTypeAggregatedList", "DiskType",
                                     lambda z: topology.disk_types(req.call.project, z)))
