"""The instance's configuration setters: metadata, labels, tags, machine type, scheduling, service
account, deletion protection, and attaching and detaching disks.

They change only the database and finish synchronously (their Operation is born DONE), except a
disk attached to or detached from a running VM, which its hypervisor must hotplug (a job). A change
GCE allows only on a stopped instance asks the state table (see :mod:`.states`).
"""

from __future__ import annotations

from typing import Any

from core.errors import Invalid, Required
from core.links import parse_ref, url_of
from core.models import Operation, Resource
from core.resources import store
from core.resources.context import Call
from core.services import disks, projects, region_disks
from core.services.instances import spec, states
from core.services.instances.rows import instance_url, lock, locked, operation, save, sync_routers
from core.services.metadata import (
    METADATA_MISMATCH,
    check_fingerprint,
    metadata_block,
    set_labels,
    tags_block,
    validate_items,
    validate_tags,
)
from core.services.topology import ZoneInfo

_PROVISIONING_FIELDS = ("preemptible", "provisioningModel")


def set_metadata(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any]) -> Operation:
    res = locked(call, zone, name)
    inst = store.body_of(res)
    current = inst.get("metadata", {})
    check_fingerprint(body.get("fingerprint"), current.get("fingerprint", ""), METADATA_MISMATCH,
                      allow_missing=not current.get("items"))
    inst["metadata"] = metadata_block(validate_items(body.get("items"), "resource.items"))
    save(res, inst)
    return operation(call, res, "setMetadata")


def set_instance_labels(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any]) -> Operation:
    res = locked(call, zone, name)
    inst = store.body_of(res)
    set_labels(inst, body)
    save(res, inst)
    return operation(call, res, "setLabels")


def set_tags(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any]) -> Operation:
    res = locked(call, zone, name)
    inst = store.body_of(res)
    current = inst.get("tags", tags_block([]))
    check_fingerprint(body.get("fingerprint"), current["fingerprint"], allow_missing=not current.get("items"))
    inst["tags"] = tags_block(validate_tags(body.get("items"), "resource.items"))
    save(res, inst)
    sync_routers(call.session, res)  # tag-targeted firewall rules change with the tags
    return operation(call, res, "setTags")


def set_machine_type(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any]) -> Operation:
    res = locked(call, zone, name)
    states.move(res, "setMachineType", field="resource.machineType", value=body.get("machineType"))
    mt = spec.machine_type(call, zone, body.get("machineType"))
    inst = store.body_of(res)
    inst["machineType"] = url_of(call.project, res.scope, "machineTypes", mt.name)
    res.vcpus, res.memory_mb, res.subtype = mt.guest_cpus, mt.memory_mb, mt.name
    save(res, inst)
    return operation(call, res, "setMachineType")


def set_deletion_protection(call: Call, zone: ZoneInfo, name: str, protect: bool) -> Operation:
    res = locked(call, zone, name)
    inst = store.body_of(res)
    inst["deletionProtection"] = protect
    save(res, inst)
    return operation(call, res, "setDeletionProtection")


def _attached_entry(inst: dict[str, Any], device_name: str) -> dict[str, Any]:
    entry: dict[str, Any] | None = next((d for d in inst.get("disks", []) if d.get("deviceName") == device_name), None)
    if entry is None:
        raise Invalid("deviceName", device_name, message=f"Invalid value for field 'deviceName': '{device_name}'. "
                      "No attached disk found with that device name.")
    return entry


def set_disk_auto_delete(call: Call, zone: ZoneInfo, name: str, device_name: str, auto_delete: bool) -> Operation:
    res = locked(call, zone, name)
    inst = store.body_of(res)
    _attached_entry(inst, device_name)["autoDelete"] = auto_delete
    save(res, inst)
    return operation(call, res, "setDiskAutoDelete")


def _hotplug(call: Call, res: Resource, action: str, **params: Any) -> Operation:
    """The Operation of a disk change: a hotplug job when the VM runs on a host, DONE otherwise."""
    job = states.move(res, action).job if res.host_id is not None else None
    if job is None:
        return operation(call, res, action)
    return operation(call, res, action, job, **params)


def attach_disk(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any]) -> Operation:
    res = locked(call, zone, name)
    inst = store.body_of(res)
    disk = _disk_to_attach(call, zone, res, body)
    spec.check_attachable(call.session, disk, body.get("mode", "READ_WRITE"))
    device = body.get("deviceName") or disk.name
    attached = inst.get("disks", [])
    if any(d.get("deviceName") == device for d in attached):
        raise Invalid("resource.deviceName", device, "A disk with this device name is already attached.")
    if len(attached) >= 128:
        raise Invalid("resource", disk.name, "At most 128 disks can be attached.")
    inst.setdefault("disks", []).append({
        "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": body.get("mode", "READ_WRITE"),
        "source": url_of(disk.project, disk.scope, "disks", disk.name), "deviceName": device,
        "index": max((d["index"] for d in attached), default=-1) + 1, "boot": False,
        "autoDelete": bool(body.get("autoDelete", False)), "interface": body.get("interface", "SCSI"),
        "diskSizeGb": str(disk.size_gb), "architecture": store.body_of(disk).get("architecture", "X86_64"),
    })
    save(res, inst)
    disks.add_user(disk, instance_url(res))
    return _hotplug(call, res, "attachDisk", disk_uid=disk.uid, device_name=device, attach=True)


def _disk_to_attach(call: Call, zone: ZoneInfo, res: Resource, body: dict[str, Any]) -> Resource:
    """The disk named by ``source``, locked: in the instance's zone."""
    if not body.get("source"):
        raise Required("resource.source")
    ref = parse_ref(body["source"], project=call.project, scope=f"zones/{zone.name}")
    if ref is None or ref.collection != "disks":
        raise Invalid("resource.source", body["source"], "The URL is malformed.")
    if ref.scope != res.scope and not region_disks.attachable_in(call.session, ref, zone.name):
        raise Invalid("resource.source", body["source"], f"Disk must be in zone '{zone.name}'.")
    projects.own(call, ref)
    return lock(call.session, store.find(call.session, ref.project, "disks", ref.scope, ref.name))


def detach_disk(call: Call, zone: ZoneInfo, name: str, device_name: str | None) -> Operation:
    res = locked(call, zone, name)
    if not device_name:
        raise Required("deviceName")
    inst = store.body_of(res)
    entry = _attached_entry(inst, device_name)
    if entry.get("boot"):
        states.move(res, "detachBootDisk", field="deviceName", value=device_name)
    inst["disks"] = [d for d in inst["disks"] if d is not entry]
    save(res, inst)
    ref = parse_ref(entry["source"], project=call.project)
    disk = store.find_optional(call.session, ref.project, "disks", ref.scope, ref.name) if ref else None
    if disk is None:
        return operation(call, res, "detachDisk")
    disks.remove_user(lock(call.session, disk), instance_url(res))
    return _hotplug(call, res, "detachDisk", disk_uid=disk.uid, device_name=device_name, attach=False)


def set_scheduling(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any]) -> Operation:
    """Merge the given options over the current ones. Host maintenance and restart may change while
    the VM runs; the provisioning model only while it is TERMINATED."""
    res = locked(call, zone, name)
    inst = store.body_of(res)
    current = dict(inst.get("scheduling") or {})
    changed = [k for k in _PROVISIONING_FIELDS if k in body and body[k] != current.get(k)]
    if changed:
        states.move(res, "setProvisioningModel", field=f"scheduling.{changed[0]}", value=body[changed[0]])
        # the defaults that follow from the provisioning model are derived again
        for key in ("onHostMaintenance", "automaticRestart", *_PROVISIONING_FIELDS):
            if key not in body:
                current.pop(key, None)
    inst["scheduling"] = spec.scheduling({**current, **body}, "scheduling")
    save(res, inst)
    return operation(call, res, "setScheduling")


def set_service_account(call: Call, zone: ZoneInfo, name: str, body: dict[str, Any]) -> Operation:
    res = locked(call, zone, name)
    states.move(res, "setServiceAccount", field="serviceAccount", value=body.get("email"))
    inst = store.body_of(res)
    if body.get("email") or body.get("scopes"):
        inst["serviceAccounts"] = [spec.service_account(projects.get(call.session, call.project), body, "resource")]
    else:
        inst["serviceAccounts"] = []
    save(res, inst)
    return operation(call, res, "setServiceAccount")
