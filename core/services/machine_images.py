"""Machine images (global): an instance kept whole, its configuration and the contents of its disks.

``machineImages.insert`` reads the source instance at once (machine type, NICs, metadata, labels,
service accounts, scheduling, its disks' sizes, types and device names) into ``instanceProperties``
(and GCE's deprecated ``sourceInstanceProperties``), and a durable job copies the disks' written
blocks into the secondary storage of the instance's zone as one stored object
(:func:`core.systemvms.secondary_storage.copy_machine_image`), as a snapshot's job copies one disk;
the image is CREATING until then, READY after (:data:`~core.services.storage_states.MACHINE_IMAGES`).
The image does not depend on the instance afterwards: deleting the instance leaves it.

``instances.insert`` with ``sourceMachineImage`` (:func:`insert_instance`) makes an instance of
the image's properties, the request's fields overriding them (as with an instance template), and
new disks restored from the image's copies, unless the request names its own disks.
"""

from __future__ import annotations

from sqlalchemy import select

from core import quotas
from core.errors import AlreadyExists, Invalid, OperationFailure, Required
from core.jobs import JobContext, job
from core.links import parse_ref, path_of, url_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import disks, images, projects
from core.services.instances import lifecycle, spec
from core.services.instances.rows import attached_rows, instance_url
from core.services.metadata import label_fingerprint, set_labels, validate_labels
from core.services.storage_states import MACHINE_IMAGES, READY_EVENT, SET_LABELS, USE, usable
from core.services.topology import ZoneInfo
from core.systemvms import secondary_storage

COLLECTION = "machineImages"
JOB = "machineImages.insert"
# Instance fields a machine image keeps as they are (both property blocks have them).
_KEPT = ("description", "canIpForward", "metadata", "labels", "serviceAccounts", "scheduling", "tags",
         "minCpuPlatform", "keyRevocationActionType")
# The multi-region a machine image is stored in by default: the one of its instance's region.
_MULTI_REGIONS = {"us": "us", "northamerica": "us", "southamerica": "us", "europe": "eu", "me": "eu",
                  "africa": "eu", "asia": "asia", "australia": "asia"}


def insert(call: Call, body: Body, source_param: str | None = None) -> Operation:
    """Record the machine image (CREATING) from the instance named by ``sourceInstance`` (the body's,
    else the query parameter's); its job copies the instance's disks."""
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    project = projects.get(call.session, call.project, lock=True)  # usage cannot change under the check
    if store.exists(call.session, call.project, COLLECTION, "global", name):
        raise AlreadyExists(path_of(call.project, "global", COLLECTION, name))
    inst = _source_instance(call, body.get("sourceInstance") or source_param)
    for key in ("machineImageEncryptionKey", "sourceDiskEncryptionKeys"):
        if body.get(key):
            raise Invalid(f"resource.{key}", "", message=f"Invalid value for field 'resource.{key}': ''. "
                          "Customer-supplied encryption keys are not supported.")
    labels = validate_labels(body.get("labels"))
    locations = _locations(body.get("storageLocations"), inst)
    disk_rows = attached_rows(call.session, inst)
    if not disk_rows:
        raise Invalid("resource.sourceInstance", body.get("sourceInstance") or source_param,
                      "The source instance has no disk to save.")
    for d in disk_rows:  # a disk still being made cannot be copied yet
        usable(d, path_of(d.project, d.scope, "disks", d.name))
    quotas.check_global(call.session, project, "MACHINE_IMAGES")
    props, source_props, saved = _properties(inst, disk_rows)
    res = store.new_resource(
        call.session, project=call.project, collection=COLLECTION, scope="global", name=name,
        kind="compute#machineImage", status="CREATING", size_gb=sum(d.size_gb for d in disk_rows),
        body={"description": body.get("description") or "", "sourceInstance": instance_url(inst),
              "instanceProperties": props, "sourceInstanceProperties": source_props, "savedDisks": saved,
              "storageLocations": locations, "totalStorageBytes": "0", "labels": labels,
              "labelFingerprint": label_fingerprint(labels), "satisfiesPzs": False})
    return operations.begin(call, scope="global", op_type="insert", target_path=_path(res), target_id=res.uid,
                            job=JOB, params={"uid": res.uid, "disks": [d.uid for d in disk_rows]})


def _source_instance(call: Call, value: object) -> Resource:
    if value in (None, ""):
        raise Required("resource.sourceInstance")
    ref = parse_ref(value, project=call.project) if isinstance(value, str) else None
    if ref is None or ref.collection != "instances" or not ref.scope.startswith("zones/"):
        raise Invalid("resource.sourceInstance", value, "The URL is malformed.")
    if ref.project != call.project:  # another project's instances are not visible
        raise Invalid("resource.sourceInstance", value, "The source instance must be in the project of the "
                      "machine image.")
    return store.find(call.session, ref.project, "instances", ref.scope, ref.name)


def _locations(value: object, inst: Resource) -> list[str]:
    """The storage locations asked for (one), else the multi-region of the instance's region."""
    if value in (None, []):
        region = inst.region or ""
        return [_MULTI_REGIONS.get(region.split("-", 1)[0], region)]
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], str) or not value[0]:
        raise Invalid("resource.storageLocations", value, "Exactly one storage location may be given.")
    return [value[0]]


def _properties(inst_row: Resource, disk_rows: list[Resource]) -> tuple[Body, Body, list[Body]]:
    """(instanceProperties, sourceInstanceProperties, savedDisks) of the instance as it is now."""
    inst = store.body_of(inst_row)
    by_url = {url_of(d.project, d.scope, "disks", d.name): d for d in disk_rows}
    common = {key: inst[key] for key in _KEPT if inst.get(key) not in (None, "")}
    common["machineType"] = str(inst["machineType"]).rsplit("/", 1)[-1]
    common["networkInterfaces"] = [_nic(n) for n in inst.get("networkInterfaces", [])]
    props: Body = {**common, "disks": []}
    if inst.get("shieldedInstanceConfig"):
        props["shieldedInstanceConfig"] = inst["shieldedInstanceConfig"]
    source: Body = {**common, "disks": [], "deletionProtection": bool(inst.get("deletionProtection", False))}
    saved: list[Body] = []
    for attached in inst.get("disks", []):
        row = by_url.get(attached["source"])
        if row is None:
            continue
        disk = store.body_of(row)
        entry = {key: attached[key] for key in ("kind", "type", "mode", "deviceName", "index", "boot", "autoDelete",
                                                "interface") if key in attached}
        entry["diskSizeGb"] = str(row.size_gb)
        entry.update({key: disk[key] for key in ("licenses", "guestOsFeatures") if disk.get(key)})
        props["disks"].append({**entry, "architecture": disk.get("architecture", "X86_64")})
        source["disks"].append({**entry, "kind": "compute#savedAttachedDisk", "source": attached["source"],
                                "diskType": disk["type"],
                                "storageBytes": "0", "storageBytesStatus": "UPDATING"})
        saved.append({"kind": "compute#savedDisk", "sourceDisk": attached["source"],
                      "architecture": disk.get("architecture", "X86_64"), "storageBytes": "0",
                      "storageBytesStatus": "UPDATING"})
    return props, source, saved


def _nic(nic: Body) -> Body:
    """An instance's NIC as a machine image keeps it: its network, subnetwork and access configs, not
    the addresses the instance holds (an instance made from the image gets its own)."""
    out: Body = {"kind": "compute#networkInterface", "name": nic["name"], "network": nic["network"]}
    if nic.get("subnetwork"):
        out["subnetwork"] = nic["subnetwork"]
    out["stackType"] = nic.get("stackType", "IPV4_ONLY")
    configs = [{"kind": "compute#accessConfig", "type": ac.get("type", "ONE_TO_ONE_NAT"), "name": ac.get("name"),
                "networkTier": ac.get("networkTier", "PREMIUM")} for ac in nic.get("accessConfigs", [])]
    if configs:
        out["accessConfigs"] = configs
    return out


def _create(ctx: JobContext) -> None:
    """Copy the instance's disks into the secondary storage of their zone; the image is READY."""
    with ctx.write() as s:
        res = s.scalar(select(Resource).where(Resource.uid == ctx.params["uid"]))
        if res is None:
            return
        rows = {r.uid: r for r in s.scalars(select(Resource).where(Resource.uid.in_(ctx.params["disks"])))}
        if len(rows) != len(ctx.params["disks"]):
            raise OperationFailure("RESOURCE_NOT_FOUND", "A disk of the source instance was deleted before it "
                                   "was copied.", 404)
        ordered = [rows[uid] for uid in ctx.params["disks"]]
        zone = secondary_storage.home_zone(s, ordered[0])
        _checksum, sizes = secondary_storage.copy_machine_image(s, zone, ordered, owner_uid=res.uid)
        move = MACHINE_IMAGES.event(res.status, READY_EVENT)
        if move.status is None:
            return
        image = store.body_of(res)
        for entry, size in zip(image["savedDisks"], sizes, strict=True):
            entry.update(storageBytes=str(size), storageBytesStatus="UP_TO_DATE")
        for entry, size in zip(image["sourceInstanceProperties"]["disks"], sizes, strict=True):
            entry.update(storageBytes=str(size), storageBytesStatus="UP_TO_DATE")
        store.save(res, image)
        store.set_status(res, move.status, totalStorageBytes=str(sum(sizes)))


def _drop(ctx: JobContext, _failure: OperationFailure) -> None:
    with ctx.write() as s:
        res = s.scalar(select(Resource).where(Resource.uid == ctx.params["uid"]))
        if res is not None:
            secondary_storage.remove(s, res.uid)
            s.delete(res)


job(JOB, on_fail=_drop)(_create)


def delete(call: Call, name: str) -> Operation:
    """The image and its copies go at once; instances made from it keep their disks."""
    return images.delete_stored(call, COLLECTION, name)


def set_machine_image_labels(call: Call, name: str, body: Body) -> Operation:
    res = projects.find_for_update(call.session, call.project, COLLECTION, "global", name)
    MACHINE_IMAGES.move(_path(res), res.status, SET_LABELS)
    image = store.body_of(res)
    set_labels(image, body)
    store.save(res, image)
    return operations.begin(call, scope="global", op_type="setLabels", target_path=_path(res), target_id=res.uid)


def _path(res: Resource) -> str:
    return path_of(res.project, "global", COLLECTION, res.name)


# -- instances made from a machine image ------------------------------------------------------------


def insert_instance(call: Call, zone: ZoneInfo, body: Body, source: str,
                    source_template: str | None = None) -> Operation:
    """instances.insert with ``sourceMachineImage``: the image's properties in ``zone`` with the
    request's fields over them; its disks restored from the image unless the request gives disks."""
    if source_template:
        raise Invalid("sourceInstanceTemplate", source_template, "Only one of sourceInstanceTemplate and "
                      "sourceMachineImage may be given.")
    image_row = _usable_image(call, source)
    image = store.body_of(image_row)
    override = {k: v for k, v in body.items() if k != "sourceMachineImage"}
    for key in ("disks", "networkInterfaces"):  # gcloud sends empty lists for what it leaves to the image
        if not override.get(key):
            override.pop(key, None)
    merged = lifecycle.merged(_in_zone(zone, image["instanceProperties"]), override)
    merged["sourceMachineImage"] = url_of(image_row.project, "global", COLLECTION, image_row.name)
    restored = None
    if not override.get("disks"):
        name = store.validate_name(merged.get("name"))
        if store.exists(call.session, call.project, "instances", f"zones/{zone.name}", name):
            raise AlreadyExists(path_of(call.project, f"zones/{zone.name}", "instances", name))
        restored = _restored_disks(call, zone, image_row, name)
        merged.pop("disks", None)
    return lifecycle.insert(call, zone, merged, restored=restored)


def _usable_image(call: Call, value: str) -> Resource:
    ref = parse_ref(value, project=call.project, scope="global")
    if ref is None or ref.collection != COLLECTION or ref.scope != "global":
        raise Invalid("sourceMachineImage", value, "The URL is malformed.")
    if ref.project != call.project:
        raise Invalid("sourceMachineImage", value, "The machine image must be in the project of the instance.")
    row = store.find(call.session, ref.project, COLLECTION, "global", ref.name)
    MACHINE_IMAGES.move(_path(row), row.status, USE)
    return row


def _in_zone(zone: ZoneInfo, props: Body) -> Body:
    """The image's properties as an instance body in ``zone``: its machine type linked in the zone,
    a subnetwork of another region left out (the network's own in the zone's region is used)."""
    body = lifecycle.in_zone(zone, {k: v for k, v in props.items() if k not in ("disks", "shieldedInstanceConfig")})
    if props.get("shieldedInstanceConfig"):
        body["shieldedInstanceConfig"] = props["shieldedInstanceConfig"]
    nics = []
    for nic in props.get("networkInterfaces", []):
        out = {k: v for k, v in nic.items() if k in ("network", "subnetwork", "stackType", "accessConfigs")}
        ref = parse_ref(out.get("subnetwork", ""), project="")
        if ref is None or ref.scope != f"regions/{zone.region.name}":
            out.pop("subnetwork", None)
        out["accessConfigs"] = [{k: v for k, v in ac.items() if k in ("type", "name", "networkTier")}
                                for ac in out.get("accessConfigs", [])]
        nics.append(out)
    body["networkInterfaces"] = nics
    return body


def _restored_disks(call: Call, zone: ZoneInfo, image_row: Resource, name: str) -> list[spec.Attached]:
    """New disks in ``zone`` holding the image's copies: the boot disk named after the instance, the
    others ``NAME-N``; each of the type, size and device name its source disk had."""
    image = store.body_of(image_row)
    image_url = url_of(image_row.project, "global", COLLECTION, image_row.name)
    out: list[spec.Attached] = []
    for i, saved in enumerate(image["sourceInstanceProperties"]["disks"]):
        disk_name = name if i == 0 else f"{name}-{i}"
        field = f"resource.disks[{i}]"
        built = disks.build(call, zone, name=disk_name, size_gb=saved["diskSizeGb"],
                            disk_type=str(saved["diskType"]).rsplit("/", 1)[-1], source_image=None,
                            source_snapshot=None, labels=None, field=f"{field}.initializeParams")
        built["body"].update({key: saved[key] for key in ("licenses", "guestOsFeatures") if saved.get(key)})
        built["body"].update(sourceMachineImage=image_url, sourceMachineImageId=str(image_row.uid),
                             sourceMachineImageDiskDeviceName=saved["deviceName"])
        if store.exists(call.session, call.project, "disks", f"zones/{zone.name}", disk_name):
            raise AlreadyExists(path_of(call.project, f"zones/{zone.name}", "disks", disk_name))
        request = {key: saved[key] for key in ("mode", "boot", "autoDelete", "interface", "deviceName") if key in saved}
        out.append(spec.Attached(request, spec=built, device=saved["deviceName"]))
    if not out:
        raise Required("resource.disks")
    return out
