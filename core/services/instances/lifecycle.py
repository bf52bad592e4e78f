"""The instance lifecycle use cases: insert, start, stop, reset, suspend, resume and delete.

Each asks the state table what the action does in the instance's status (see :mod:`.states`): the
status to take at once, in this transaction, and the job that carries the action out; a no-op
answers with an Operation born DONE, as GCE does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from core import ipam, quotas
from core.catalog import MachineType
from core.errors import AlreadyExists, Invalid
from core.ids import new_uid
from core.jobs import admission
from core.links import parse_ref, path_of, scope_url, url_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.operations import DuplicateRequest, NamesTaken
from core.resources.states import Move
from core.services import accelerator_types, addresses, disks, projects, resource_policies
from core.services.instances import reads, spec, states
from core.services.instances.network import build_nics
from core.services.instances.rows import fingerprinted, locked, operation
from core.services.topology import ZoneInfo

_SHIELDED = {"enableSecureBoot": False, "enableVtpm": True, "enableIntegrityMonitoring": True}


def insert(call: Call, zone: ZoneInfo, body: dict[str, Any], source_template: str | None = None, *,
           restored: list[spec.Attached] | None = None, alone: bool = False) -> Operation:
    """Validate the whole request, then write the instance row, its disks and its Operation (the
    ``instances.run`` job places and starts it). ``source_template``: an instance template whose
    properties are the body, the request's fields overriding them. ``restored``: the new disks of
    an instance made from a machine image (see :mod:`core.services.machine_images`), in place of
    the body's ``disks``.

    ``alone``: the insert is all the call writes (the API's instances.insert). On PostgreSQL it is
    then tried as two statements, each a transaction of its own, where it takes five round trips
    (BEGIN, the read, the address, the rows with the Operation, COMMIT): the read outside the
    transaction, and the rows with the Operation and the address, predicted from the read (:class:`core.ipam.Guesses`),
    in one statement that makes all or nothing. When it makes nothing (the address was taken
    meanwhile, a name clashed, the queue is full) the insert is made again the usual way, which
    answers what happened; so is it when the call's transaction had begun."""
    if alone and call.session.get_bind().dialect.name == "postgresql":
        try:
            return _insert(call, zone, body, source_template, restored, True)
        except admission.Missed:
            call.session.rollback()  # what the try wrote in its transaction, when it had one
    return _insert(call, zone, body, source_template, restored, False)


def _insert(call: Call, zone: ZoneInfo, body: dict[str, Any], source_template: str | None,
            restored: list[spec.Attached] | None, alone: bool) -> Operation:
    """:func:`insert`, tried in two statements when ``alone``."""
    if source_template:
        body = merged(_template_in_zone(call, zone, source_template), body)
    name = store.validate_name(body.get("name"))
    scope = f"zones/{zone.name}"
    path = path_of(call.project, scope, "instances", name)
    taken = reads.names_taken(call, scope, zone.region.name, name,
                              [] if restored else spec.new_disk_names(name, body.get("disks")),
                              body.get("networkInterfaces"), None if restored else spec.boot_image(body.get("disks")),
                              alone)
    if taken.instance:
        _lost_race(call, path)  # a retry of the same requestId may have committed since the API looked
    mt = spec.machine_type(call, zone, body.get("machineType"))
    accelerator_types.refuse_attached(call.session, call.project, zone, body.get("guestAccelerators"),
                                      "resource.guestAccelerators")
    hostname = spec.hostname(body.get("hostname")) or f"{name}.{zone.name}.c.{call.project}.internal"
    new_specs, attached = ([a.spec for a in restored], restored) if restored else _disks(call, zone, name, path, body,
                                                                                         taken.disks)
    parsed_nics = spec.network_interfaces(call, zone, body.get("networkInterfaces"), taken.reads)
    ipam.lock_pools(call.session, [addresses.subnet_pool(n.subnet) for n in parsed_nics if not n.request.get("networkIP")])
    project, counters = (taken.project, taken.counters) if taken.project is not None else (
        projects.get(call.session, call.project), None)  # the project named by its number
    fields = {**spec.fields(project, body, spec.Where.of(zone)), "hostname": hostname,
              "minCpuPlatform": spec.cpu_platform(call.session, zone, body.get("minCpuPlatform"))}
    demand = {"CPUS": mt.guest_cpus, "INSTANCES": 1, **disks.quota_demand(new_specs)}
    quotas.check_region(call.session, project, zone.region.name, demand, counters)
    addressed = ["IN_USE_ADDRESSES"] if any(n.request.get("accessConfigs") for n in parsed_nics) else []
    # Checked on counters read outside the transaction (all it checked: the static addresses too,
    # when it asks for an external one), the write goes on only while they have not grown
    # (admission's gate); checked otherwise, the usage is checked again once written.
    seen = quotas.seen(zone.region.name, counters, taken.statics if addressed else None) \
        if alone and counters is not None and (taken.statics is not None or not addressed) else None
    alone = seen is not None
    # The body is complete before the row goes in (one INSERT, no UPDATE after it): addresses are
    # allocated for the uid the row will have, and the new disks are described from their specs.
    uid = new_uid()
    instance_url = url_of(call.project, scope, "instances", name)
    guesses = ipam.Guesses(taken.tops) if alone and taken.tops is not None else None
    fields["networkInterfaces"] = build_nics(call, zone, uid, instance_url, parsed_nics, guesses, taken)
    fields["disks"] = [_attached_json(call, scope, index, a) for index, a in enumerate(attached)]
    res = _instance_row(call, zone, uid, name, mt, _body(call, zone, name, mt, body, fields))
    new = [disks.attached_row(call, zone, a.spec, instance_url) for a in attached if a.row is None]
    try:
        op = operations.begin(call, scope=scope, op_type="insert", target_path=path, target_id=res.uid,
                              job=states.RUN, rows=[res, *new],
                              params={"uid": res.uid, "created_disks": [d.uid for d in new], "zone_id": zone.id,
                                      "delete_on_fail": True, "warnings": _size_warnings(call, zone, new_specs)},
                              claim=admission.Claim(ipam.taking(len(guesses.made)), guesses.params(), len(guesses.made))
                              if guesses and guesses.made else None,
                              alone=alone and not any(a.row is not None for a in attached), seen=seen)
    except NamesTaken as clash:
        _taken(call, res, clash.rows)
    if not alone:
        quotas.recheck_region(call.session, project, zone.region.name, [*demand, *addressed])
    for a in attached:
        if a.row is not None:
            disks.add_user(a.row, instance_url)
    return op


def _template_in_zone(call: Call, zone: ZoneInfo, source: str) -> dict[str, Any]:
    """The properties of the template ``source`` names, as an instance body in ``zone``: what the
    template names (its machine type, existing disks) linked in the zone."""
    ref = parse_ref(source, project=call.project)
    if ref is None or ref.collection != "instanceTemplates" or not (
            ref.scope == "global" or ref.scope.startswith("regions/")):
        raise Invalid("sourceInstanceTemplate", source, "The URL is malformed.")
    if ref.scope not in ("global", f"regions/{zone.region.name}"):
        raise Invalid("sourceInstanceTemplate", source,
                      f"The regional instance template must be in the instance's region '{zone.region.name}'.")
    projects.own(call, ref)
    props = store.body_of(store.find(call.session, ref.project, "instanceTemplates", ref.scope, ref.name))
    return in_zone(zone, props.get("properties") or {})


def in_zone(zone: ZoneInfo, properties: dict[str, Any]) -> dict[str, Any]:
    """Instance properties (a template's, a bulkInsert's) as an instance body in ``zone``: the
    machine type and existing disks they name, linked in the zone."""
    body: dict[str, Any] = dict(properties)
    scope = f"zones/{zone.name}"
    if body.get("machineType") and "/" not in body["machineType"]:
        body["machineType"] = f"{scope}/machineTypes/{body['machineType']}"
    if body.get("disks"):  # absent, a template's disks stay when a bulkInsert's properties merge over them
        body["disks"] = [{**d, "source": f"{scope}/disks/{d['source']}"} if d.get("source") and "/" not in d["source"]
                         else d for d in body["disks"]]
    return body


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override``'s fields in its place: objects merge field by field, anything else
    (lists included: ``disks``, ``networkInterfaces``, metadata ``items``) is replaced whole."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _disks(call: Call, zone: ZoneInfo, name: str, path: str, body: dict[str, Any],
           taken: dict[str, bool]) -> tuple[list[dict[str, Any]], list[spec.Attached]]:
    try:
        return spec.attached_disks(call, spec.Where.of(zone), name, body.get("disks"), taken)
    except AlreadyExists:
        # PostgreSQL: a concurrent insert of this instance may have committed since the check above,
        # boot disk included; the clash to report is the instance's, not its disk's.
        if store.exists(call.session, call.project, "instances", f"zones/{zone.name}", name):
            _lost_race(call, path)
        raise


def _body(call: Call, zone: ZoneInfo, name: str, mt: MachineType, body: dict[str, Any],
          fields: dict[str, Any]) -> dict[str, Any]:
    scope = f"zones/{zone.name}"
    return {
        "description": body.get("description", ""), "tags": fields["tags"],
        "machineType": url_of(call.project, scope, "machineTypes", mt.name),
        "canIpForward": bool(body.get("canIpForward", False)), "networkInterfaces": fields["networkInterfaces"],
        "disks": fields["disks"], "metadata": fields["metadata"], "serviceAccounts": fields["serviceAccounts"],
        "selfLink": url_of(call.project, scope, "instances", name), "scheduling": fields["scheduling"],
        "cpuPlatform": "Unknown CPU Platform", "labels": fields["labels"],
        "labelFingerprint": fields["labelFingerprint"], "startRestricted": False,
        "deletionProtection": bool(body.get("deletionProtection", False)), "zone": scope_url(call.project, scope),
        "hostname": fields["hostname"],
        "shieldedInstanceConfig": body.get("shieldedInstanceConfig") or dict(_SHIELDED),
        "keyRevocationActionType": "NONE",
        **({"minCpuPlatform": fields["minCpuPlatform"]} if fields["minCpuPlatform"] else {}),
        **({"sourceMachineImage": body["sourceMachineImage"]} if body.get("sourceMachineImage") else {}),
        **_policies(call, zone, body),
    }


def _policies(call: Call, zone: ZoneInfo, body: dict[str, Any]) -> dict[str, Any]:
    """``resourcePolicies`` given at insert (instance schedules, placement), checked as addResourcePolicies does."""
    links = resource_policies.links_for_new(call, zone.region.name, body.get("resourcePolicies"),
                                            "resource.resourcePolicies", "instances")
    return {"resourcePolicies": links} if links else {}


def _attached_json(call: Call, scope: str, index: int, a: spec.Attached) -> dict[str, Any]:
    """The body's entry for an attached disk (a new one is described from its spec)."""
    if a.row is not None:
        disk_url, size, disk_body = url_of(a.row.project, a.row.scope, "disks", a.row.name), a.row.size_gb, \
            store.body_of(a.row)
    else:
        disk_url, size, disk_body = url_of(call.project, scope, "disks", a.spec["name"]), a.spec["size_gb"], \
            a.spec["body"]
    return {
        "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": a.request.get("mode", "READ_WRITE"),
        "source": disk_url, "deviceName": a.device, "index": index, "boot": index == 0,
        "autoDelete": bool(a.request.get("autoDelete", False)), "interface": a.request.get("interface", "SCSI"),
        "diskSizeGb": str(size), "architecture": disk_body.get("architecture", "X86_64"),
        **({"licenses": disk_body["licenses"]} if disk_body.get("licenses") else {}),
    }


def _instance_row(call: Call, zone: ZoneInfo, uid: int, name: str, mt: MachineType, body: dict[str, Any]) -> Resource:
    return store.resource_row(uid=uid, project=call.project, collection="instances", scope=f"zones/{zone.name}",
                              name=name, kind="compute#instance", status=states.PROVISIONING, region=zone.region.name,
                              vcpus=mt.guest_cpus, memory_mb=mt.memory_mb, subtype=mt.name, finish=fingerprinted,
                              body=body)


def _taken(call: Call, res: Resource, clashed: Sequence[Resource]) -> NoReturn:
    """The instance's row and its new disks' went in with its Operation in one statement (see
    :func:`core.resources.operations.begin`), but a name was taken since the checks: a concurrent
    insert committed first. The instance's clash is the one reported, not its boot disk's (which
    bears its name): a concurrent retry of the same requestId gets the Operation of the request
    that won. The clash left the transaction usable, for the lookup and the rollback."""
    if res in clashed:
        _lost_race(call, path_of(call.project, res.scope, "instances", res.name))
    raise AlreadyExists(path_of(call.project, res.scope, "disks", clashed[0].name))


def _lost_race(call: Call, path: str) -> NoReturn:
    """A concurrent insert of the same instance won: this request retried the same requestId
    (it gets the winner's Operation), or it is a name clash."""
    if call.request_id and operations.by_request_id(call) is not None:
        raise DuplicateRequest() from None
    raise AlreadyExists(path)


def _size_warnings(call: Call, zone: ZoneInfo, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DISK_SIZE_LARGER_THAN_IMAGE_SIZE for each new disk made bigger than its image."""
    return [{"code": "DISK_SIZE_LARGER_THAN_IMAGE_SIZE", "message": (
        f"Disk size: '{s['size_gb']} GB' is larger than image size: '{s['source_size']} GB'. "
        "You might need to resize the root repartition manually if the operating system does not "
        "support automatic resizing. See https://cloud.google.com/compute/docs/disks/add-persistent-disk"
        "#resize_pd for details."),
        "data": [{"key": "resource_name", "value": path_of(call.project, f"zones/{zone.name}", "disks", s["name"])}]}
        for s in specs if s.get("source_size") and s["size_gb"] > s["source_size"] and s["body"].get("sourceImage")]


# -- power -------------------------------------------------------------------------------------------


def _act(call: Call, res: Resource, action: str, **params: Any) -> Operation:
    return _carry_out(call, res, action, states.move(res, action), **params)


def _carry_out(call: Call, res: Resource, action: str, found: Move, **params: Any) -> Operation:
    """A user's lifecycle ``action`` as the state table's move says: the job's Operation, or a DONE one."""
    states.take(res, found)
    return operation(call, res, action, found.job, **(params if found.job else {}))


def start(call: Call, zone: ZoneInfo, name: str) -> Operation:
    res = locked(call, zone, name)
    found = states.move(res, "start")
    if found.status is None:
        return _carry_out(call, res, "start", found, zone_id=zone.id)
    project = projects.get(call.session, call.project)  # placed again: it needs its CPUs' quota
    quotas.check_region(call.session, project, zone.region.name, {"CPUS": res.vcpus})
    op = _carry_out(call, res, "start", found, zone_id=zone.id)
    quotas.recheck_region(call.session, project, zone.region.name, ["CPUS"])  # starts at once
    return op


def stop(call: Call, zone: ZoneInfo, name: str) -> Operation:
    """A VM starting or stopping already is stopped after the job in flight (jobs of one VM run in order)."""
    return _act(call, locked(call, zone, name), "stop")


def reset(call: Call, zone: ZoneInfo, name: str) -> Operation:
    return _act(call, locked(call, zone, name), "reset")


def suspend(call: Call, zone: ZoneInfo, name: str) -> Operation:
    return _act(call, locked(call, zone, name), "suspend")


def resume(call: Call, zone: ZoneInfo, name: str) -> Operation:
    return _act(call, locked(call, zone, name), "resume", zone_id=zone.id, resume=True)


def delete(call: Call, zone: ZoneInfo, name: str) -> Operation:
    res = locked(call, zone, name)
    if store.body_of(res).get("deletionProtection"):
        raise Invalid("deletionProtection", True, message=(
            "Invalid resource usage: 'Resource cannot be deleted if it's protected against deletion.'."))
    return _act(call, res, "delete")

