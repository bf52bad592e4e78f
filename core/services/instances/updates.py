"""In-place changes of an instance beyond the single-field setters: its name, minimum CPU platform,
guest accelerators, Shielded VM options, the whole-instance ``update`` (PUT) Terraform uses, and the
guest attributes its guest writes.

Like the setters they touch only the database (their Operation is born DONE). What GCE allows only
on a stopped instance (a rename, the CPU platform, accelerators, secure boot and vTPM) asks the state
table (see :mod:`.states`), which refuses it otherwise with GCE's message.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from core.errors import AlreadyExists, ConditionNotMet, Invalid, NotFound
from core.links import path_of, url_of
from core.models import Operation, Resource
from core.resources import store
from core.resources.context import Call
from core.services import accelerator_types, projects
from core.services import guest_attributes as guest_attributes_store
from core.services.instances import spec, states
from core.services.instances.rows import (
    attached_rows,
    find,
    instance_path,
    instance_url,
    locked,
    operation,
    save,
    sync_routers,
)
from core.services.metadata import (
    INVALID_FINGERPRINT,
    check_fingerprint,
    label_fingerprint,
    metadata_block,
    tags_block,
    validate_items,
    validate_labels,
    validate_tags,
)
from core.services.topology import ZoneInfo

SHIELDED_KEYS = ("enableSecureBoot", "enableVtpm", "enableIntegrityMonitoring")
_SHIELDED_DEFAULT = {"enableSecureBoot": False, "enableVtpm": True, "enableIntegrityMonitoring": True}
# instances.update's actions, least disruptive first (INVALID is the enum's placeholder, refused).
_ACTIONS = ("NO_EFFECT", "REFRESH", "RESTART")
# Fields instances.update cannot change: each has its own method, or none.
_FIXED = {"name": "Use instances.setName to rename an instance.",
          "hostname": "The hostname of an instance cannot be changed.",
          "canIpForward": "IP forwarding can only be set when the instance is created."}


# -- minimum CPU platform, accelerators, Shielded VM ----------------------------------------------


def _set_cpu_platform(res: Resource, inst: dict[str, Any], platform: str | None, field: str) -> None:
    if platform == inst.get("minCpuPlatform"):
        return
    states.move(res, "setMinCpuPlatform", field=field, value=platform or "Automatic")
    if platform is None:
        inst.pop("minCpuPlatform", None)
    else:
        inst["minCpuPlatform"] = platform


def set_min_cpu_platform(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any]) -> Operation:
    res = locked(call, zone, name)
    inst = store.body_of(res)
    value = body.get("minCpuPlatform")
    states.move(res, "setMinCpuPlatform", field="minCpuPlatform", value=value)
    _set_cpu_platform(res, inst, spec.cpu_platform(call.session, zone, value, "minCpuPlatform"), "minCpuPlatform")
    save(res, inst)
    return operation(call, res, "setMinCpuPlatform")


def _accelerators(call: Call, zone: ZoneInfo, value: object, field: str) -> None:
    accelerator_types.refuse_attached(call.session, call.project, zone, value, field)


def set_machine_resources(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any]) -> Operation:
    res = locked(call, zone, name)
    value = body.get("guestAccelerators")
    states.move(res, "setMachineResources", field="guestAccelerators", value=value)
    _accelerators(call, zone, value, "guestAccelerators")
    inst = store.body_of(res)
    inst.pop("guestAccelerators", None)
    save(res, inst)
    return operation(call, res, "setMachineResources")


def _shielded(res: Resource, inst: dict[str, Any], given: object, field: str) -> None:
    """Merge ``given`` over the Shielded VM options. Integrity monitoring may change while the VM
    runs; secure boot and vTPM only while it is stopped; monitoring needs the vTPM."""
    if not isinstance(given, dict):
        raise Invalid(field, given, "Must be an object.")
    for key, value in given.items():
        if key not in SHIELDED_KEYS or not isinstance(value, bool):
            raise Invalid(f"{field}.{key}", value, "Must be a boolean.")
    current = {**_SHIELDED_DEFAULT, **(inst.get("shieldedInstanceConfig") or {})}
    new = {**current, **given}
    changed = [k for k in ("enableSecureBoot", "enableVtpm") if new[k] != current[k]]
    if changed:
        states.move(res, "setSecureBoot", field=f"{field}.{changed[0]}", value=new[changed[0]])
    if new["enableIntegrityMonitoring"] and not new["enableVtpm"]:
        raise Invalid(f"{field}.enableIntegrityMonitoring", True, "Integrity monitoring requires the vTPM.")
    inst["shieldedInstanceConfig"] = new


def update_shielded_instance_config(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any]) -> Operation:
    res = locked(call, zone, name)
    inst = store.body_of(res)
    _shielded(res, inst, body, "resource")
    save(res, inst)
    return operation(call, res, "updateShieldedInstanceConfig")


# -- setName ---------------------------------------------------------------------------------------


def set_name(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any]) -> Operation:
    """Rename a stopped instance. Its id stays; every link to it other resources hold (disks' and
    addresses' ``users``, target pools, routes, machine images: :func:`link_holders`) follows, and so
    does a hostname derived from the name. Auto-named resources (the boot disk) keep their names, as
    in GCE."""
    res = locked(call, zone, name)
    new = store.validate_name(body.get("name"), "name")
    states.move(res, "setName", field="name", value=new)
    current = body.get("currentName")
    if current is not None and current != res.name:
        raise ConditionNotMet(f"The current name '{current}' given does not match the name of the instance "
                              f"'{res.name}'.")
    if new == res.name:
        return operation(call, res, "setName")
    old_url, old_host = instance_url(res), _default_hostname(call, zone, res.name)
    _claim(call, res, new)
    inst = store.body_of(res)
    inst["name"], inst["selfLink"] = new, instance_url(res)
    if inst.get("hostname") == old_host:
        inst["hostname"] = _default_hostname(call, zone, new)
    save(res, inst)
    _relink(call, res, zone, old_url, instance_url(res))
    sync_routers(call.session, res)  # DHCP and DNS answer with the new name
    return operation(call, res, "setName")


def _default_hostname(call: Call, zone: ZoneInfo, name: str) -> str:
    return f"{name}.{zone.name}.c.{call.project}.internal"


def _claim(call: Call, res: Resource, new: str) -> None:
    """Give the row its new name; 409 when another instance of the zone has it (the unique
    constraint decides, so two concurrent renames cannot both take it)."""
    taken = AlreadyExists(path_of(res.project, res.scope, "instances", new))
    if store.exists(call.session, res.project, "instances", res.scope, new):
        raise taken
    try:
        with call.session.begin_nested():
            res.name = new
            call.session.flush()
    except IntegrityError:
        raise taken from None


def link_holders(region: str) -> list[tuple[str, str]]:
    """Where resources other than its disks may hold a link to an instance of ``region``, as
    (collection, scope): a static address's ``users`` (external or internal, of the instance's
    region), a target pool's ``instances`` (pools take the instances of their region), a route's
    ``nextHopInstance``, a machine image's ``sourceInstance``. Any project's: a pool or route may
    name another project's instance. Its disks' ``users`` are the disks its body lists.

    A rename reads these and no other: a test over every body in the cloud cost as much as the cloud
    (a LIKE over 100,000 instances' bodies for each rename). tests/conftest.py checks, on every test
    server it stops, that no body of any other collection holds an instance's link."""
    return [("addresses", f"regions/{region}"), ("targetPools", f"regions/{region}"), ("routes", "global"),
            ("machineImages", "global")]


def _relink(call: Call, res: Resource, zone: ZoneInfo, old: str, new: str) -> None:
    """Point every stored link to the instance at its new URL: its disks' (locked as attaching
    does), then the other holders' (locked in uid order), each walked by its collection and scope."""
    holders = or_(*(and_(Resource.collection == collection, Resource.scope == scope)
                    for collection, scope in link_holders(zone.region.name)))
    query = (select(Resource).where(holders, Resource.body.contains(f'"{old}"', autoescape=True))
             .order_by(Resource.uid).with_for_update())
    for row in [*attached_rows(call.session, res), *call.session.scalars(query)]:
        body = store.body_of(row)
        store.save(row, _replaced(body, old, new))


def _replaced(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {k: _replaced(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v, old, new) for v in value]
    return new if value == old else value


# -- guest attributes ------------------------------------------------------------------------------


def guest_attributes(call: Call, zone: ZoneInfo, name: str, query_path: str | None,
                     variable_key: str | None) -> dict[str, Any]:
    """What the guest wrote through its metadata server: the value of ``variable_key``
    (``NAMESPACE/KEY``), or the values under ``query_path`` (``NAMESPACE/``, ``NAMESPACE/KEY`` or
    everything when empty) as GCE lists them."""
    res = find(call, zone, name)
    if variable_key:
        namespace, _, key = variable_key.partition("/")
        found = [v for ns, k, v in guest_attributes_store.values(call.session, res.uid, namespace) if k == key]
        if not found:
            raise NotFound(f"{instance_path(res)}/guestAttributes/{variable_key}")
        return {"kind": "compute#guestAttributes", "variableKey": variable_key, "variableValue": found[0],
                "selfLink": f"{instance_url(res)}/guestAttributes/{variable_key}"}
    namespace, _, key = (query_path or "").partition("/")
    items = [{"namespace": ns, "key": k, "value": v}
             for ns, k, v in guest_attributes_store.values(call.session, res.uid, namespace or None)
             if not key or k == key]
    out: dict[str, Any] = {"kind": "compute#guestAttributes", "queryValue": {"items": items} if items else {},
                           "selfLink": f"{instance_url(res)}/guestAttributes/{query_path or ''}"}
    if query_path:
        out["queryPath"] = query_path
    return out


# -- instances.update ------------------------------------------------------------------------------


def update(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any], minimal_action: str | None = None,
           most_disruptive: str | None = None) -> Operation:
    """Replace the updatable fields of the instance with the body's (a field the body leaves out
    keeps its value; output-only fields are ignored). The body's ``fingerprint`` must be current.
    A change GCE makes only on a stopped instance is refused while it is not."""
    res = locked(call, zone, name)
    inst = store.body_of(res)
    _check_actions(minimal_action, most_disruptive)
    check_fingerprint(body.get("fingerprint"), inst.get("fingerprint", ""), INVALID_FINGERPRINT)
    for key, why in _FIXED.items():
        if key in body and body[key] != inst.get(key, False if key == "canIpForward" else None):
            raise Invalid(f"resource.{key}", body[key], why)
    _simple_fields(inst, body)
    _stopped_fields(call, zone, res, inst, body)
    save(res, inst)
    if "tags" in body:
        sync_routers(call.session, res)  # tag-targeted firewall rules change with the tags
    return operation(call, res, "update")


def _check_actions(minimal: str | None, most: str | None) -> None:
    for field, value in (("minimalAction", minimal), ("mostDisruptiveAllowedAction", most)):
        if value is not None and value not in _ACTIONS:
            raise Invalid(field, value, f"Must be one of {', '.join(_ACTIONS)}.")
    if minimal and most and _ACTIONS.index(minimal) > _ACTIONS.index(most):
        raise Invalid("minimalAction", minimal, f"The minimal action is more disruptive than the most disruptive "
                      f"allowed action '{most}'.")


def _simple_fields(inst: dict[str, Any], body: dict[str, Any]) -> None:
    """The fields that may change while the VM runs, validated before any is applied."""
    new: dict[str, Any] = {}
    if "description" in body:
        if not isinstance(body["description"], str):
            raise Invalid("resource.description", body["description"], "Must be a string.")
        new["description"] = body["description"]
    if "labels" in body:
        labels = validate_labels(body["labels"], "resource.labels")
        new.update(labels=labels, labelFingerprint=label_fingerprint(labels))
    if "metadata" in body:
        new["metadata"] = metadata_block(validate_items((body["metadata"] or {}).get("items"),
                                                        "resource.metadata.items"))
    if "tags" in body:
        new["tags"] = tags_block(validate_tags((body["tags"] or {}).get("items"), "resource.tags.items"))
    if "deletionProtection" in body:
        new["deletionProtection"] = bool(body["deletionProtection"])
    inst.update(new)


def _stopped_fields(call: Call, zone: ZoneInfo, res: Resource, inst: dict[str, Any], body: dict[str, Any]) -> None:
    """The fields some of whose changes need the VM stopped: each is refused unless it is, when it changes."""
    if body.get("machineType"):
        mt = spec.machine_type(call, zone, body["machineType"])
        if mt.name != str(inst.get("machineType", "")).rsplit("/", 1)[-1]:
            states.move(res, "setMachineType", field="resource.machineType", value=body["machineType"])
            inst["machineType"] = url_of(call.project, res.scope, "machineTypes", mt.name)
            res.vcpus, res.memory_mb, res.subtype = mt.guest_cpus, mt.memory_mb, mt.name
    if "minCpuPlatform" in body:
        platform = spec.cpu_platform(call.session, zone, body["minCpuPlatform"], "resource.minCpuPlatform")
        _set_cpu_platform(res, inst, platform, "resource.minCpuPlatform")
    if "guestAccelerators" in body:
        _accelerators(call, zone, body["guestAccelerators"], "resource.guestAccelerators")
    if "shieldedInstanceConfig" in body:
        _shielded(res, inst, body["shieldedInstanceConfig"], "resource.shieldedInstanceConfig")
    if "scheduling" in body:
        sched = spec.scheduling(body["scheduling"], "resource.scheduling")
        current = inst.get("scheduling") or {}
        changed = [k for k in ("preemptible", "provisioningModel") if sched[k] != current.get(k)]
        if changed:
            states.move(res, "setProvisioningModel", field=f"resource.scheduling.{changed[0]}",
                        value=sched[changed[0]])
        inst["scheduling"] = sched
    if "serviceAccounts" in body:
        accounts = spec.service_accounts(projects.get(call.session, call.project), body["serviceAccounts"])
        if accounts != inst.get("serviceAccounts", []):
            states.move(res, "setServiceAccount", field="serviceAccount",
                        value=accounts[0]["email"] if accounts else None)
            inst["serviceAccounts"] = accounts
