"""Instances (CloudStack's user VMs): validation, placement, the state machine and its jobs.

GCE statuses are the state machine's states: PROVISIONING -> STAGING -> RUNNING, RUNNING ->
STOPPING -> TERMINATED, RUNNING -> SUSPENDING -> SUSPENDED. A VM holds host capacity while it is
placed (PROVISIONING once placed, STAGING, RUNNING, STOPPING, SUSPENDING) and releases it when it
is TERMINATED or SUSPENDED. Changes that touch only the database finish synchronously (their
Operation is born DONE); changes the hypervisor must make are jobs.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from core import ipam, planner, quotas
from core.errors import (
    AlreadyExists,
    ComputeError,
    Invalid,
    NotFound,
    OperationFailure,
    Required,
    ResourceInUse,
    ResourceNotReady,
    zone_exhausted,
)
from core.hypervisors import DiskSpec, DriverError, NicSpec, VmSpec
from core.hypervisors.base import HostRef
from core.ids import fingerprint, rfc3339
from core.jobs import JobContext, job
from core.links import parse_ref, path_of, scope_url, url_of
from core.models import Cluster, Host, Operation, Resource, Zone
from core.services import disks, operations, projects, store
from core.services.context import Call
from core.services.metadata import (
    METADATA_MISMATCH,
    check_fingerprint,
    label_fingerprint,
    metadata_block,
    set_labels,
    tags_block,
    validate_items,
    validate_labels,
    validate_tags,
)
from core.services.topology import get_machine_type

ACCESS_CONFIG_TYPES = {"ONE_TO_ONE_NAT"}
PLACED = ("PROVISIONING", "STAGING", "RUNNING", "STOPPING", "SUSPENDING")


# -- reading ------------------------------------------------------------------------------------


def find(call: Call, zone: Zone, name: str) -> Resource:
    return store.find(call.session, call.project, "instances", f"zones/{zone.name}", name)


def instance_path(res: Resource) -> str:
    return path_of(res.project, res.scope, "instances", res.name)


# -- insert ---------------------------------------------------------------------------------------


def _machine_type(call: Call, zone: Zone, value: object):
    if not value:
        raise Required("resource.machineType")
    if not isinstance(value, str):
        raise Invalid("resource.machineType", value, "Must be a URL.")
    ref = parse_ref(value, project=call.project, scope=f"zones/{zone.name}")
    if ref is None or ref.collection != "machineTypes":
        raise Invalid("resource.machineType", value, "The URL is malformed.")
    if ref.scope != f"zones/{zone.name}":
        raise Invalid("resource.machineType", value,
                      f"Machine type must be in zone '{zone.name}'; the instance is in that zone.")
    return get_machine_type(call.project, zone.name, ref.name)


def _network_interfaces(call: Call, zone: Zone, nics: object) -> list[tuple[Resource, Resource, dict]]:
    """(network, subnetwork, request) per NIC; the default network when none is named."""
    if nics is None:
        nics = [{}]
    if not isinstance(nics, list) or not nics:
        raise Invalid("resource.networkInterfaces", nics, "At least one network interface is required.")
    if len(nics) > 8:
        raise Invalid("resource.networkInterfaces", len(nics), "At most 8 network interfaces are allowed.")
    region = zone.region.name
    out = []
    for i, nic in enumerate(nics):
        field = f"resource.networkInterfaces[{i}]"
        if not isinstance(nic, dict):
            raise Invalid(field, nic, "Must be an object.")
        subnet = None
        if nic.get("subnetwork"):
            ref = parse_ref(nic["subnetwork"], project=call.project, scope=f"regions/{region}")
            if ref is None or ref.collection != "subnetworks":
                raise Invalid(f"{field}.subnetwork", nic["subnetwork"], "The URL is malformed.")
            if ref.scope != f"regions/{region}":
                raise Invalid(f"{field}.subnetwork", nic["subnetwork"], f"Subnetwork must be in region '{region}'.")
            subnet = store.find(call.session, ref.project, "subnetworks", ref.scope, ref.name)
        if nic.get("network"):
            ref = parse_ref(nic["network"], project=call.project, scope="global")
            if ref is None or ref.collection != "networks":
                raise Invalid(f"{field}.network", nic["network"], "The URL is malformed.")
            network = store.find(call.session, ref.project, "networks", "global", ref.name)
        elif subnet is not None:
            network = store.find(call.session, subnet.project, "networks", "global",
                                 store.body_of(subnet)["network"].rsplit("/", 1)[-1])
        else:
            network = store.find(call.session, call.project, "networks", "global", "default")
        net_url = url_of(network.project, "global", "networks", network.name)
        if subnet is None:
            subnet = next((s for s in call.session.scalars(select(Resource).where(
                Resource.project == network.project, Resource.collection == "subnetworks",
                Resource.scope == f"regions/{region}").order_by(Resource.name))
                if store.body_of(s)["network"] == net_url), None)
            if subnet is None:
                raise Invalid(f"{field}.subnetwork", None,
                              message=f"Invalid value for field '{field}.subnetwork': ''. "
                                      f"Network '{network.name}' has no subnetwork in region '{region}'; "
                                      "specify a subnetwork.")
        elif store.body_of(subnet)["network"] != net_url:
            raise Invalid(f"{field}.subnetwork", nic.get("subnetwork"), "The subnetwork does not belong to the network.")
        for j, ac in enumerate(nic.get("accessConfigs") or []):
            if ac.get("type", "ONE_TO_ONE_NAT") not in ACCESS_CONFIG_TYPES:
                raise Invalid(f"{field}.accessConfigs[{j}].type", ac.get("type"), "Must be ONE_TO_ONE_NAT.")
        out.append((network, subnet, nic))
    return out


def _build_nics(call: Call, zone: Zone, uid: int, parsed: list[tuple[Resource, Resource, dict]]) -> list[dict]:
    nics = []
    for i, (network, subnet, req) in enumerate(parsed):
        sub = store.body_of(subnet)
        pool = f"subnet:{subnet.uid}"
        if req.get("networkIP"):
            if not ipam.reserve(call.session, pool, req["networkIP"], uid):
                raise ResourceInUse("address", req["networkIP"], "another instance")
            ip = req["networkIP"]
        else:
            ip = ipam.allocate(call.session, pool, sub["ipCidrRange"], uid)
        nic = {
            "kind": "compute#networkInterface", "name": f"nic{i}",
            "network": url_of(network.project, "global", "networks", network.name),
            "subnetwork": url_of(subnet.project, subnet.scope, "subnetworks", subnet.name),
            "networkIP": ip, "stackType": req.get("stackType", "IPV4_ONLY"),
        }
        configs = []
        for ac in req.get("accessConfigs") or []:
            nat = ac.get("natIP") or ipam.allocate(call.session, f"external:{zone.region.name}", ipam.EXTERNAL_RANGE, uid)
            configs.append({"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT",
                            "name": ac.get("name") or "External NAT", "natIP": nat,
                            "networkTier": ac.get("networkTier", "PREMIUM")})
        if configs:
            nic["accessConfigs"] = configs
        nic["fingerprint"] = fingerprint(["nic", nic])
        nics.append(nic)
    return nics


def _attached_disks(call: Call, zone: Zone, name: str, requested: object) -> tuple[list[dict], list[tuple[dict, dict]]]:
    """Validate ``disks``: returns (new disk specs, [(attached-disk request, source row or spec)])."""
    if not isinstance(requested, list) or not requested:
        raise Required("resource.disks")
    new_specs: list[dict] = []
    attached: list[tuple[dict, dict]] = []
    boot_seen = False
    for i, d in enumerate(requested):
        field = f"resource.disks[{i}]"
        if not isinstance(d, dict):
            raise Invalid(field, d, "Must be an object.")
        boot = bool(d.get("boot", i == 0))
        if boot:
            if i != 0:
                raise Invalid(f"{field}.boot", True, "The boot disk must be the first disk.")
            boot_seen = True
        if d.get("type", "PERSISTENT") != "PERSISTENT":
            raise Invalid(f"{field}.type", d.get("type"), "Only PERSISTENT disks are supported.")
        if d.get("mode", "READ_WRITE") not in ("READ_WRITE", "READ_ONLY"):
            raise Invalid(f"{field}.mode", d.get("mode"), "Must be READ_WRITE or READ_ONLY.")
        init = d.get("initializeParams")
        if d.get("source") and init:
            raise Invalid(field, "source", "Only one of 'source' and 'initializeParams' may be given.")
        if d.get("source"):
            ref = parse_ref(d["source"], project=call.project, scope=f"zones/{zone.name}")
            if ref is None or ref.collection != "disks":
                raise Invalid(f"{field}.source", d["source"], "The URL is malformed.")
            if ref.scope != f"zones/{zone.name}":
                raise Invalid(f"{field}.source", d["source"], f"Disk must be in zone '{zone.name}'.")
            row = store.find(call.session, ref.project, "disks", ref.scope, ref.name)
            if store.body_of(row).get("users") and d.get("mode", "READ_WRITE") == "READ_WRITE":
                raise ResourceInUse("disk", path_of(row.project, row.scope, "disks", row.name),
                                    store.body_of(row)["users"][0].split("/compute/v1/", 1)[-1])
            attached.append((d, {"row": row}))
        elif isinstance(init, dict):
            if boot and not (init.get("sourceImage") or init.get("sourceSnapshot")):
                raise Required(f"{field}.initializeParams.sourceImage")
            disk_name = init.get("diskName") or (name if boot else f"{name}-{i}")
            spec = disks.build(call, zone, name=disk_name, size_gb=init.get("diskSizeGb"),
                               disk_type=init.get("diskType"), source_image=init.get("sourceImage"),
                               source_snapshot=init.get("sourceSnapshot"), labels=init.get("labels"),
                               description=init.get("description", ""), field=f"{field}.initializeParams")
            if store.find_optional(call.session, call.project, "disks", f"zones/{zone.name}", disk_name):
                raise AlreadyExists(path_of(call.project, f"zones/{zone.name}", "disks", disk_name))
            if any(s["name"] == disk_name for s in new_specs):
                raise Invalid(f"{field}.initializeParams.diskName", disk_name, "Disk names must be unique.")
            new_specs.append(spec)
            attached.append((d, {"spec": spec}))
        else:
            raise Required(f"{field}.source")
    if not boot_seen:
        raise Invalid("resource.disks", "", message="Invalid value for field 'resource.disks': ''. "
                      "Exactly one boot disk must be specified, as the first disk.")
    return new_specs, attached


def _service_accounts(project, value: object) -> list[dict]:
    if not value:
        return []
    if not isinstance(value, list) or len(value) > 1:
        raise Invalid("resource.serviceAccounts", value, "Only one service account per VM instance is supported.")
    sa = value[0] if isinstance(value[0], dict) else {}
    email = sa.get("email") or "default"
    if email == "default":
        email = projects.default_service_account(project)
    return [{"email": email, "scopes": list(sa.get("scopes") or [])}]


def _scheduling(value: object) -> dict:
    value = value if isinstance(value, dict) else {}
    preemptible = bool(value.get("preemptible", False))
    model = value.get("provisioningModel", "SPOT" if preemptible else "STANDARD")
    host_maint = value.get("onHostMaintenance", "TERMINATE" if preemptible else "MIGRATE")
    if host_maint not in ("MIGRATE", "TERMINATE"):
        raise Invalid("resource.scheduling.onHostMaintenance", host_maint, "Must be MIGRATE or TERMINATE.")
    out = {"onHostMaintenance": host_maint, "automaticRestart": bool(value.get("automaticRestart", not preemptible)),
           "preemptible": preemptible, "provisioningModel": model}
    return out


def insert(call: Call, zone: Zone, body: dict) -> Operation:
    name = store.validate_name(body.get("name"))
    path = path_of(call.project, f"zones/{zone.name}", "instances", name)
    if store.find_optional(call.session, call.project, "instances", f"zones/{zone.name}", name):
        raise AlreadyExists(path)
    mt = _machine_type(call, zone, body.get("machineType"))
    project = projects.get(call.session, call.project)
    new_specs, attached = _attached_disks(call, zone, name, body.get("disks"))
    parsed_nics = _network_interfaces(call, zone, body.get("networkInterfaces"))
    items = validate_items((body.get("metadata") or {}).get("items"), "resource.metadata.items")
    labels = validate_labels(body.get("labels"))
    tags = validate_tags((body.get("tags") or {}).get("items"))
    scheduling = _scheduling(body.get("scheduling"))
    service_accounts = _service_accounts(project, body.get("serviceAccounts"))
    demand = {"CPUS": mt.guest_cpus, "INSTANCES": 1, **disks.quota_demand(new_specs)}
    quotas.check_region(call.session, project, zone.region.name, demand)

    scope = f"zones/{zone.name}"
    instance_url = url_of(call.project, scope, "instances", name)
    created_disks = []
    attached_json = []
    for index, (req, src) in enumerate(attached):
        if "spec" in src:
            row = disks.create_row(call, zone, src["spec"])
            created_disks.append(row.uid)
        else:
            row = src["row"]
        disks.add_user(row, instance_url)
        attached_json.append({
            "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": req.get("mode", "READ_WRITE"),
            "source": url_of(row.project, row.scope, "disks", row.name),
            "deviceName": req.get("deviceName") or row.name if index == 0 else req.get("deviceName") or f"persistent-disk-{index}",
            "index": index, "boot": index == 0, "autoDelete": bool(req.get("autoDelete", False)),
            "interface": req.get("interface", "SCSI"), "diskSizeGb": str(row.size_gb),
            "architecture": store.body_of(row).get("architecture", "X86_64"),
            **({"licenses": store.body_of(row)["licenses"]} if store.body_of(row).get("licenses") else {}),
        })
    res = store.new_resource(
        call.session, project=call.project, collection="instances", scope=scope, name=name,
        kind="compute#instance", status="PROVISIONING", region=zone.region.name,
        vcpus=mt.guest_cpus, memory_mb=mt.memory_mb, subtype=mt.name,
        body={
            "description": body.get("description", ""), "tags": tags_block(tags),
            "machineType": url_of(call.project, scope, "machineTypes", mt.name),
            "canIpForward": bool(body.get("canIpForward", False)), "networkInterfaces": [],
            "disks": attached_json, "metadata": metadata_block(items), "serviceAccounts": service_accounts,
            "selfLink": instance_url, "scheduling": scheduling, "cpuPlatform": "Unknown CPU Platform",
            "labels": labels, "labelFingerprint": label_fingerprint(labels), "startRestricted": False,
            "deletionProtection": bool(body.get("deletionProtection", False)),
            "zone": scope_url(call.project, scope),
            "hostname": body.get("hostname") or f"{name}.{zone.name}.c.{call.project}.internal",
            "shieldedInstanceConfig": body.get("shieldedInstanceConfig") or
            {"enableSecureBoot": False, "enableVtpm": True, "enableIntegrityMonitoring": True},
            "keyRevocationActionType": "NONE",
        },
    )
    inst = store.body_of(res)
    inst["networkInterfaces"] = _build_nics(call, zone, res.uid, parsed_nics)
    inst["fingerprint"] = fingerprint(["instance", inst["networkInterfaces"], inst["disks"]])
    store.save(res, inst)
    return operations.begin(call, scope=scope, op_type="insert", target_path=path, target_id=res.uid,
                            job="instances.run", params={"uid": res.uid, "created_disks": created_disks,
                                                         "zone_id": zone.id, "delete_on_fail": True})


# -- jobs ------------------------------------------------------------------------------------------


def _host_ref(host: Host) -> HostRef:
    return HostRef(host.id, host.name, host.uri)


def _driver(ctx_or_engine, session, host_id: int):
    host = session.get(Host, host_id)
    cluster = session.get(Cluster, host.cluster_id)
    return ctx_or_engine.drivers.get(cluster.hypervisor), _host_ref(host)


def vm_spec(session, res: Resource) -> VmSpec:
    inst = store.body_of(res)
    disk_specs = []
    for d in inst.get("disks", []):
        row = session.scalar(select(Resource).where(Resource.project == res.project, Resource.collection == "disks",
                                                    Resource.scope == res.scope,
                                                    Resource.name == d["source"].rsplit("/", 1)[-1]))
        if row is not None:
            body = store.body_of(row)
            disk_specs.append(DiskSpec(row.uid, row.name, row.size_gb, d.get("boot", False), d.get("deviceName", ""),
                                       body.get("sourceImage")))
    nics = tuple(NicSpec(n["name"], ipam.mac_for(n["networkIP"]), n["network"].rsplit("/", 1)[-1], n["networkIP"])
                 for n in inst.get("networkInterfaces", []))
    meta = {i["key"]: i["value"] for i in inst.get("metadata", {}).get("items", [])}
    return VmSpec(res.uid, res.name, inst.get("hostname", res.name), res.vcpus, res.memory_mb, tuple(disk_specs), nics, meta)


def _load(s, uid: int) -> Resource | None:
    return s.scalar(select(Resource).where(Resource.uid == uid))


def _run_vm(ctx: JobContext) -> None:
    """Place the VM (if it is not) and start it on its host, trying other hosts when a spawn fails."""
    uid = ctx.params["uid"]
    tried: set[int] = set()
    while True:
        with ctx.write() as s:
            res = _load(s, uid)
            if res is None or res.status == "RUNNING":
                return
            if res.host_id is None:
                host = planner.place_vm(s, ctx.params["zone_id"], res.vcpus, res.memory_mb, frozenset(tried))
                if host is None:
                    raise zone_exhausted(res.project, res.scope.split("/", 1)[1])
                res.host_id = host.id
            disks.place_disks(s, ctx.params["zone_id"], ctx.params.get("created_disks", []), res.project,
                              res.scope.split("/", 1)[1])
            store.set_status(res, "STAGING")
            driver, host_ref = _driver(ctx, s, res.host_id)
            spec = vm_spec(s, res)
            resuming = ctx.params.get("resume", False)
            ctx.progress(40, session=s)
        try:
            if resuming:
                driver.resume(host_ref, spec)
            else:
                driver.spawn(host_ref, spec)
        except DriverError as exc:
            tried.add(host_ref.id)
            with ctx.write() as s:
                res = _load(s, uid)
                if res is not None:
                    res.host_id = None
            if not exc.retry_elsewhere:
                raise OperationFailure("INTERNAL_ERROR", str(exc), 500) from exc
            continue
        break
    with ctx.write() as s:
        res = _load(s, uid)
        if res is None:
            return
        host = s.get(Host, res.host_id)
        now = rfc3339(time.time())
        store.set_status(res, "RUNNING", lastStartTimestamp=now, cpuPlatform=host.cpu_platform)
        res.last_host_id = res.host_id
        for d in s.scalars(select(Resource).where(Resource.uid.in_(ctx.params.get("created_disks", [])),
                                                  Resource.status == "CREATING")):
            store.set_status(d, "READY")


def _run_failed(ctx: JobContext, failure: OperationFailure) -> None:
    """Undo a failed insert completely; a failed start leaves the instance TERMINATED, holding nothing."""
    with ctx.write() as s:
        res = _load(s, ctx.params["uid"])
        if res is None:
            return
        host_id = res.host_id or res.last_host_id
        driver, host_ref = _driver(ctx, s, host_id) if host_id else (None, None)
    if driver is not None and ctx.params.get("delete_on_fail"):
        driver.destroy(host_ref, ctx.params["uid"])
    with ctx.write() as s:
        res = _load(s, ctx.params["uid"])
        if res is None:
            return
        if ctx.params.get("delete_on_fail"):
            url = url_of(res.project, res.scope, "instances", res.name)
            for d in s.scalars(select(Resource).where(Resource.collection == "disks", Resource.project == res.project,
                                                      Resource.scope == res.scope)):
                if d.uid in ctx.params.get("created_disks", []):
                    s.delete(d)
                elif url in store.body_of(d).get("users", []):
                    disks.remove_user(d, url)
            ipam.release_owner(s, res.uid)
            s.delete(res)
        else:
            res.host_id = None
            store.set_status(res, "SUSPENDED" if ctx.params.get("resume") else "TERMINATED")


job("instances.run", on_fail=_run_failed)(_run_vm)


def _power_job(action: str, final: str, release: bool, stamp: str | None):
    """A job asking the VM's hypervisor for one power action, then recording the new status.

    Powering off a VM whose host is down succeeds: the VM is not running anywhere.
    """

    def run(ctx: JobContext) -> None:
        with ctx.write() as s:
            res = _load(s, ctx.params["uid"])
            if res is None or (res.status == final and action != "reboot"):
                return
            host_id = res.host_id or res.last_host_id
            driver, host_ref = _driver(ctx, s, host_id) if host_id else (None, None)
        if driver is not None:
            try:
                getattr(driver, action)(host_ref, ctx.params["uid"])
            except DriverError as exc:
                if action != "power_off":
                    raise OperationFailure("INTERNAL_ERROR", str(exc), 500) from exc
        with ctx.write() as s:
            res = _load(s, ctx.params["uid"])
            if res is None:
                return
            fields = {stamp: rfc3339(time.time())} if stamp else {}
            if release:
                res.host_id = None
            store.set_status(res, final, **fields)

    return run


job("instances.stop")(_power_job("power_off", "TERMINATED", True, "lastStopTimestamp"))
job("instances.suspend")(_power_job("suspend", "SUSPENDED", True, "lastSuspendedTimestamp"))
job("instances.reset")(_power_job("reboot", "RUNNING", False, None))


def _delete_vm(ctx: JobContext) -> None:
    with ctx.write() as s:
        res = _load(s, ctx.params["uid"])
        if res is None:
            return
        host_id = res.host_id or res.last_host_id
        driver = host_ref = None
        if host_id:
            driver, host_ref = _driver(ctx, s, host_id)
    if driver is not None:
        driver.destroy(host_ref, ctx.params["uid"])
    with ctx.write() as s:
        res = _load(s, ctx.params["uid"])
        if res is None:
            return
        url = url_of(res.project, res.scope, "instances", res.name)
        auto = {d["source"] for d in store.body_of(res).get("disks", []) if d.get("autoDelete")}
        for d in s.scalars(select(Resource).where(Resource.project == res.project, Resource.collection == "disks",
                                                  Resource.scope == res.scope)):
            disk_url = url_of(d.project, d.scope, "disks", d.name)
            if url in store.body_of(d).get("users", []):
                if disk_url in auto:
                    s.delete(d)
                else:
                    disks.remove_user(d, url)
        ipam.release_owner(s, res.uid)
        s.delete(res)


job("instances.delete")(_delete_vm)


def _disk_hotplug(ctx: JobContext) -> None:
    with ctx.write() as s:
        res = _load(s, ctx.params["uid"])
        disk = _load(s, ctx.params["disk_uid"])
        if res is None or disk is None or res.host_id is None:
            return
        driver, host_ref = _driver(ctx, s, res.host_id)
        spec = DiskSpec(disk.uid, disk.name, disk.size_gb, False, ctx.params["device_name"])
    if ctx.params["attach"]:
        driver.attach_volume(host_ref, res.uid, spec)
    else:
        driver.detach_volume(host_ref, res.uid, spec)


job("instances.diskHotplug")(_disk_hotplug)


# -- lifecycle use cases ---------------------------------------------------------------------------


def _op(call: Call, res: Resource, op_type: str, job_name: str | None = None, **params) -> Operation:
    zone_id = params.pop("zone_id", None)
    job_params = {"uid": res.uid, **params}
    if zone_id is not None:
        job_params["zone_id"] = zone_id
    return operations.begin(call, scope=res.scope, op_type=op_type, target_path=instance_path(res),
                            target_id=res.uid, job=job_name, params=job_params)


def _not_ready(res: Resource, action: str) -> ComputeError:
    return ResourceNotReady(f"The resource '{instance_path(res)}' is not ready: it is {res.status} and cannot {action}.")


def start(call: Call, zone: Zone, name: str) -> Operation:
    res = find(call, zone, name)
    if res.status in ("RUNNING", "PROVISIONING", "STAGING"):
        return _op(call, res, "start")
    if res.status != "TERMINATED":
        raise _not_ready(res, "be started")
    quotas.check_region(call.session, projects.get(call.session, call.project), zone.region.name, {"CPUS": res.vcpus})
    store.set_status(res, "PROVISIONING")
    return _op(call, res, "start", "instances.run", zone_id=zone.id)


def stop(call: Call, zone: Zone, name: str) -> Operation:
    res = find(call, zone, name)
    if res.status == "TERMINATED":
        return _op(call, res, "stop")
    if res.status not in ("RUNNING", "SUSPENDED"):
        raise _not_ready(res, "be stopped")
    store.set_status(res, "STOPPING")
    return _op(call, res, "stop", "instances.stop")


def reset(call: Call, zone: Zone, name: str) -> Operation:
    res = find(call, zone, name)
    if res.status != "RUNNING":
        raise _not_ready(res, "be reset")
    return _op(call, res, "reset", "instances.reset")


def suspend(call: Call, zone: Zone, name: str) -> Operation:
    res = find(call, zone, name)
    if res.status == "SUSPENDED":
        return _op(call, res, "suspend")
    if res.status != "RUNNING":
        raise _not_ready(res, "be suspended")
    store.set_status(res, "SUSPENDING")
    return _op(call, res, "suspend", "instances.suspend")


def resume(call: Call, zone: Zone, name: str) -> Operation:
    res = find(call, zone, name)
    if res.status == "RUNNING":
        return _op(call, res, "resume")
    if res.status != "SUSPENDED":
        raise _not_ready(res, "be resumed")
    store.set_status(res, "PROVISIONING")
    return _op(call, res, "resume", "instances.run", zone_id=zone.id, resume=True)


def delete(call: Call, zone: Zone, name: str) -> Operation:
    res = find(call, zone, name)
    inst = store.body_of(res)
    if inst.get("deletionProtection"):
        raise Invalid("deletionProtection", True, message=(
            "Invalid resource usage: 'Resource cannot be deleted if it's protected against deletion.'."))
    store.set_status(res, "STOPPING")
    return _op(call, res, "delete", "instances.delete")


# -- synchronous changes ---------------------------------------------------------------------------


def set_metadata(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    res = find(call, zone, name)
    inst = store.body_of(res)
    current = inst.get("metadata", {})
    check_fingerprint(body.get("fingerprint"), current.get("fingerprint", ""), METADATA_MISMATCH,
                      allow_missing=not current.get("items"))
    inst["metadata"] = metadata_block(validate_items(body.get("items"), "resource.items"))
    store.save(res, inst)
    return _op(call, res, "setMetadata")


def set_instance_labels(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    res = find(call, zone, name)
    inst = store.body_of(res)
    set_labels(inst, body)
    store.save(res, inst)
    return _op(call, res, "setLabels")


def set_tags(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    res = find(call, zone, name)
    inst = store.body_of(res)
    current = inst.get("tags", tags_block([]))
    check_fingerprint(body.get("fingerprint"), current["fingerprint"], allow_missing=not current.get("items"))
    inst["tags"] = tags_block(validate_tags(body.get("items"), "resource.items"))
    store.save(res, inst)
    return _op(call, res, "setTags")


def set_machine_type(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    res = find(call, zone, name)
    if res.status != "TERMINATED":
        raise Invalid("resource.machineType", body.get("machineType"), message=(
            f"Invalid value for field 'resource.machineType': '{body.get('machineType')}'. "
            f"Instance '{res.name}' must be stopped before changing its machine type."))
    mt = _machine_type(call, zone, body.get("machineType"))
    inst = store.body_of(res)
    inst["machineType"] = url_of(call.project, res.scope, "machineTypes", mt.name)
    res.vcpus, res.memory_mb, res.subtype = mt.guest_cpus, mt.memory_mb, mt.name
    store.save(res, inst)
    return _op(call, res, "setMachineType")


def set_deletion_protection(call: Call, zone: Zone, name: str, protect: bool) -> Operation:
    res = find(call, zone, name)
    inst = store.body_of(res)
    inst["deletionProtection"] = protect
    store.save(res, inst)
    return _op(call, res, "setDeletionProtection")


def set_disk_auto_delete(call: Call, zone: Zone, name: str, device_name: str, auto_delete: bool) -> Operation:
    res = find(call, zone, name)
    inst = store.body_of(res)
    for d in inst.get("disks", []):
        if d.get("deviceName") == device_name:
            d["autoDelete"] = auto_delete
            break
    else:
        raise Invalid("deviceName", device_name, message=f"Invalid value for field 'deviceName': '{device_name}'. "
                      "No attached disk found with that device name.")
    store.save(res, inst)
    return _op(call, res, "setDiskAutoDelete")


def attach_disk(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    res = find(call, zone, name)
    inst = store.body_of(res)
    if not body.get("source"):
        raise Required("resource.source")
    ref = parse_ref(body["source"], project=call.project, scope=f"zones/{zone.name}")
    if ref is None or ref.collection != "disks":
        raise Invalid("resource.source", body["source"], "The URL is malformed.")
    if ref.scope != res.scope:
        raise Invalid("resource.source", body["source"], f"Disk must be in zone '{zone.name}'.")
    disk = store.find(call.session, ref.project, "disks", ref.scope, ref.name)
    users = store.body_of(disk).get("users", [])
    instance_url = url_of(res.project, res.scope, "instances", res.name)
    if users:
        raise ResourceInUse("disk", path_of(disk.project, disk.scope, "disks", disk.name),
                            users[0].split("/compute/v1/", 1)[-1])
    device = body.get("deviceName") or disk.name
    if any(d.get("deviceName") == device for d in inst.get("disks", [])):
        raise Invalid("resource.deviceName", device, "A disk with this device name is already attached.")
    if len(inst.get("disks", [])) >= 128:
        raise Invalid("resource", disk.name, "At most 128 disks can be attached.")
    index = max((d["index"] for d in inst.get("disks", [])), default=-1) + 1
    inst.setdefault("disks", []).append({
        "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": body.get("mode", "READ_WRITE"),
        "source": url_of(disk.project, disk.scope, "disks", disk.name), "deviceName": device, "index": index,
        "boot": False, "autoDelete": bool(body.get("autoDelete", False)), "interface": body.get("interface", "SCSI"),
        "diskSizeGb": str(disk.size_gb), "architecture": store.body_of(disk).get("architecture", "X86_64"),
    })
    store.save(res, inst)
    disks.add_user(disk, instance_url)
    if res.host_id is not None and res.status == "RUNNING":
        return _op(call, res, "attachDisk", "instances.diskHotplug", disk_uid=disk.uid, device_name=device, attach=True)
    return _op(call, res, "attachDisk")


def detach_disk(call: Call, zone: Zone, name: str, device_name: str | None) -> Operation:
    res = find(call, zone, name)
    if not device_name:
        raise Required("deviceName")
    inst = store.body_of(res)
    entry = next((d for d in inst.get("disks", []) if d.get("deviceName") == device_name), None)
    if entry is None:
        raise Invalid("deviceName", device_name, message=f"Invalid value for field 'deviceName': '{device_name}'. "
                      "No attached disk found with that device name.")
    if entry.get("boot") and res.status not in ("TERMINATED",):
        raise Invalid("deviceName", device_name, message=f"Invalid value for field 'deviceName': '{device_name}'. "
                      "The boot disk can only be detached from a stopped instance.")
    inst["disks"] = [d for d in inst["disks"] if d is not entry]
    store.save(res, inst)
    ref = parse_ref(entry["source"], project=call.project)
    disk = store.find_optional(call.session, ref.project, "disks", ref.scope, ref.name) if ref else None
    if disk is not None:
        disks.remove_user(disk, url_of(res.project, res.scope, "instances", res.name))
    if disk is not None and res.host_id is not None and res.status == "RUNNING":
        return _op(call, res, "detachDisk", "instances.diskHotplug", disk_uid=disk.uid, device_name=device_name,
                   attach=False)
    return _op(call, res, "detachDisk")


def serial_port_output(call: Call, zone: Zone, name: str, drivers, port: int, start: int) -> dict:
    res = find(call, zone, name)
    if port not in (1, 2, 3, 4):
        raise Invalid("port", port, "Must be between 1 and 4.")
    host_id = res.host_id or res.last_host_id
    contents, first, nxt = "", 0, 0
    if host_id is not None and port == 1:
        driver, _ = _driver_for(call.session, drivers, host_id)
        contents, first, nxt = driver.serial_output(res.uid, start)
    return {"kind": "compute#serialPortOutput", "contents": contents, "start": str(first), "next": str(nxt),
            "selfLink": url_of(res.project, res.scope, "instances", res.name) + "/serialPort"}


def _driver_for(session, drivers, host_id: int):
    host = session.get(Host, host_id)
    if host is None:
        raise NotFound(f"hosts/{host_id}")
    cluster = session.get(Cluster, host.cluster_id)
    return drivers.get(cluster.hypervisor), _host_ref(host)
