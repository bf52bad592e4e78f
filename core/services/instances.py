"""Instances (CloudStack's user VMs): validation, placement, the state machine and its jobs.

GCE statuses are the state machine's states: PROVISIONING -> STAGING -> RUNNING, RUNNING ->
STOPPING -> TERMINATED, RUNNING -> SUSPENDING -> SUSPENDED. A VM holds host capacity while it is
placed (PROVISIONING once placed, STAGING, RUNNING, STOPPING, SUSPENDING) and releases it when it
is TERMINATED or SUSPENDED. Changes that touch only the database finish synchronously (their
Operation is born DONE); changes the hypervisor must make are jobs.
"""

from __future__ import annotations

import ipaddress
import re
import time

from sqlalchemy import bindparam, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.exc import InvalidRequestError

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
from core.ids import fingerprint, new_uid, rfc3339
from core.jobs import JobContext, job
from core.links import parse_ref, path_of, scope_url, url_of
from core.models import Cluster, Host, IpAllocation, Operation, Resource, Zone
from core.resources import operations, store
from core.resources.context import Call
from core.resources.operations import DuplicateRequest
from core.services import addresses, disks, projects, vpc
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
from core.systemvms.sync import request_sync_for_instance

ACCESS_CONFIG_TYPES = {"ONE_TO_ONE_NAT"}
_EXTERNAL = ipaddress.ip_network(ipam.EXTERNAL_RANGE)
_HOSTNAME_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_HOSTNAME_LABEL}(?:\.{_HOSTNAME_LABEL})+\Z")
PLACED = ("PROVISIONING", "STAGING", "RUNNING", "STOPPING", "SUSPENDING")


# -- reading ------------------------------------------------------------------------------------


def find(call: Call, zone: Zone, name: str) -> Resource:
    return store.find(call.session, call.project, "instances", f"zones/{zone.name}", name)


def instance_path(res: Resource) -> str:
    return path_of(res.project, res.scope, "instances", res.name)


def lock(session, row: Resource) -> Resource:
    """Re-read ``row`` under a row lock (PostgreSQL; SQLite write transactions are serialized anyway).

    Every read-check-write use case (fingerprints, states, disk users) takes it, so it sees the latest
    committed version and a concurrent one cannot interleave and lose its update.
    """
    path = path_of(row.project, row.scope, row.collection, row.name)
    try:
        session.refresh(row, with_for_update=True)
    except InvalidRequestError:  # deleted meanwhile
        raise NotFound(path) from None
    return row


def _locked(call: Call, zone: Zone, name: str) -> Resource:
    return lock(call.session, find(call, zone, name))


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


_SUBNETS = select(Resource).where(Resource.project == bindparam("project"), Resource.collection == "subnetworks",
                                  Resource.scope == bindparam("scope")).order_by(Resource.name)


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
        if subnet is None and not store.body_of(network).get("autoCreateSubnetworks"):
            raise Invalid(f"{field}.subnetwork", None, message=f"Invalid value for field '{field}.subnetwork': ''. "
                          "Subnetwork should be specified for custom subnetmode network")
        if subnet is None:
            subnet = next((s for s in call.session.scalars(_SUBNETS, {"project": network.project,
                                                                      "scope": f"regions/{region}"})
                           if store.body_of(s)["network"] == net_url), None)
            if subnet is None:
                raise Invalid(f"{field}.subnetwork", None,
                              message=f"Invalid value for field '{field}.subnetwork': ''. "
                                      f"Network '{network.name}' has no subnetwork in region '{region}'; "
                                      "specify a subnetwork.")
        elif store.body_of(subnet)["network"] != net_url:
            raise Invalid(f"{field}.subnetwork", nic.get("subnetwork"), "The subnetwork does not belong to the network.")
        if any(net_url == url_of(n.project, "global", "networks", n.name) for n, _, _ in out):
            raise Invalid(f"{field}.network", net_url, "Networks must be distinct for NICs attached to a VM.")
        if nic.get("networkIP"):
            vpc.host_address(nic["networkIP"], store.body_of(subnet)["ipCidrRange"], f"{field}.networkIP")
        configs = nic.get("accessConfigs") or []
        if len(configs) > 1:
            raise Invalid(f"{field}.accessConfigs", len(configs), "At most one access config currently supported.")
        for j, ac in enumerate(configs):
            _check_access_config(ac, f"{field}.accessConfigs[{j}]")
        out.append((network, subnet, nic))
    return out


def _check_access_config(ac: object, field: str) -> None:
    if not isinstance(ac, dict):
        raise Invalid(field, ac, "Must be an object.")
    if ac.get("type", "ONE_TO_ONE_NAT") not in ACCESS_CONFIG_TYPES:
        raise Invalid(f"{field}.type", ac.get("type"), "Must be ONE_TO_ONE_NAT.")
    if ac.get("networkTier", "PREMIUM") not in ("PREMIUM", "STANDARD"):
        raise Invalid(f"{field}.networkTier", ac.get("networkTier"), "Must be PREMIUM or STANDARD.")
    nat = ac.get("natIP")
    if nat:
        try:
            ip = ipaddress.IPv4Address(nat) if isinstance(nat, str) else None
        except ValueError:
            ip = None
        if ip is None or (ip.is_private and ip not in _EXTERNAL) or ip.is_unspecified or ip.is_multicast:
            raise Invalid(f"{field}.natIP", nat, "Must be an external IPv4 address.")


def _address_owner(session, pool: str, address: str) -> str:
    """The relative path of the instance holding ``address`` in ``pool`` (for in-use messages)."""
    owner = session.scalar(select(IpAllocation.owner_uid).where(
        IpAllocation.pool == pool, IpAllocation.address == int(ipaddress.ip_address(address))))
    res = session.scalar(select(Resource).where(Resource.uid == owner)) if owner is not None else None
    return instance_path(res) if res is not None else "another resource"


class AddressInUse(ResourceInUse):
    def __init__(self, message: str):
        ComputeError.__init__(self, message)


def _reserve(call: Call, pool: str, address: str, uid: int, what: str) -> str:
    if not ipam.reserve(call.session, pool, address, uid):
        raise AddressInUse(f"The IP address '{address}' of {what} is already being used by "
                           f"'{_address_owner(call.session, pool, address)}'")
    return address


def _access_config(call: Call, zone: Zone, uid: int, instance_url: str, ac: dict) -> dict:
    """An access config with its external address: a static address of the region (which becomes
    IN_USE), another requested one (reserved), or an ephemeral one."""
    region = zone.region.name
    pool = f"external:{region}"
    quotas.check_region(call.session, projects.get(call.session, call.project), region, {"IN_USE_ADDRESSES": 1})
    nat = ac.get("natIP")
    if nat:
        if not addresses.use_for_instance(call.session, call.project, region, nat, instance_url):
            _reserve(call, pool, nat, uid, f"region '{region}'")
    else:
        nat = ipam.allocate(call.session, pool, ipam.EXTERNAL_RANGE, uid)
    return {"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": ac.get("name") or "External NAT",
            "natIP": nat, "networkTier": ac.get("networkTier", "PREMIUM")}


def _nic_fingerprint(nic: dict) -> str:
    return fingerprint(["nic", {k: v for k, v in nic.items() if k != "fingerprint"}])


def _build_nics(call: Call, zone: Zone, uid: int, instance_url: str,
                parsed: list[tuple[Resource, Resource, dict]]) -> list[dict]:
    nics = []
    for i, (network, subnet, req) in enumerate(parsed):
        sub = store.body_of(subnet)
        pool = addresses.subnet_pool(subnet)
        if req.get("networkIP"):
            ip = req["networkIP"]
            if not addresses.use_internal_for_instance(call.session, call.project, subnet, ip, instance_url):
                _reserve(call, pool, ip, uid,
                         f"subnetwork '{path_of(subnet.project, subnet.scope, 'subnetworks', subnet.name)}'")
        else:
            ip = ipam.allocate(call.session, pool, sub["ipCidrRange"], uid)
        nic = {
            "kind": "compute#networkInterface", "name": f"nic{i}",
            "network": url_of(network.project, "global", "networks", network.name),
            "subnetwork": url_of(subnet.project, subnet.scope, "subnetworks", subnet.name),
            "networkIP": ip, "stackType": req.get("stackType", "IPV4_ONLY"),
        }
        configs = [_access_config(call, zone, uid, instance_url, ac) for ac in req.get("accessConfigs") or []]
        if configs:
            nic["accessConfigs"] = configs
        nic["fingerprint"] = _nic_fingerprint(nic)
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
        if boot and d.get("mode", "READ_WRITE") != "READ_WRITE":
            raise Invalid(f"{field}.mode", d.get("mode"), "The boot disk must be attached in READ_WRITE mode.")
        init = d.get("initializeParams")
        if d.get("source") and init:
            raise Invalid(field, "source", "Only one of 'source' and 'initializeParams' may be given.")
        if d.get("source"):
            ref = parse_ref(d["source"], project=call.project, scope=f"zones/{zone.name}")
            if ref is None or ref.collection != "disks":
                raise Invalid(f"{field}.source", d["source"], "The URL is malformed.")
            if ref.scope != f"zones/{zone.name}":
                raise Invalid(f"{field}.source", d["source"], f"Disk must be in zone '{zone.name}'.")
            row = lock(call.session, store.find(call.session, ref.project, "disks", ref.scope, ref.name))
            _check_attachable(call.session, row, d.get("mode", "READ_WRITE"))
            if any("row" in src and src["row"].uid == row.uid for _, src in attached):
                raise Invalid(f"{field}.source", d["source"], "The disk is already attached to this instance.")
            attached.append((d, {"row": row}))
        elif isinstance(init, dict):
            if boot and not (init.get("sourceImage") or init.get("sourceSnapshot")):
                raise Required(f"{field}.initializeParams.sourceImage")
            disk_name = init.get("diskName") or (name if boot else f"{name}-{i}")
            spec = disks.build(call, zone, name=disk_name, size_gb=init.get("diskSizeGb"),
                               disk_type=init.get("diskType"), source_image=init.get("sourceImage"),
                               source_snapshot=init.get("sourceSnapshot"), labels=init.get("labels"),
                               description=init.get("description", ""), field=f"{field}.initializeParams")
            if store.exists(call.session, call.project, "disks", f"zones/{zone.name}", disk_name):
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
    devices: set[str] = set()
    for i, (d, src) in enumerate(attached):
        disk_name = src["row"].name if "row" in src else src["spec"]["name"]
        device = d.get("deviceName") or (disk_name if i == 0 else f"persistent-disk-{i}")
        if device in devices:
            raise Invalid(f"resource.disks[{i}].deviceName", device, "Device names must be unique.")
        devices.add(device)
        src["device"] = device
    return new_specs, attached


def _check_attachable(session, disk: Resource, mode: str) -> None:
    """A disk can be attached when it is READY and unused; READ_ONLY also beside READ_ONLY attachments."""
    path = path_of(disk.project, disk.scope, "disks", disk.name)
    if disk.status != "READY":
        raise ResourceNotReady(f"The resource '{path}' is not ready")
    users = store.body_of(disk).get("users", [])
    if not users:
        return
    disk_url = url_of(disk.project, disk.scope, "disks", disk.name)
    for user in users:
        ref = parse_ref(user, project=disk.project)
        inst = store.find_optional(session, ref.project, "instances", ref.scope, ref.name) if ref else None
        read_write = inst is None or any(d["source"] == disk_url and d.get("mode", "READ_WRITE") != "READ_ONLY"
                                         for d in store.body_of(inst).get("disks", []))
        if mode != "READ_ONLY" or read_write:
            raise ResourceInUse("disk", path, user.split("/compute/v1/", 1)[-1])


def _service_accounts(project, value: object) -> list[dict]:
    if not value:
        return []
    if not isinstance(value, list) or len(value) > 1:
        raise Invalid("resource.serviceAccounts", value, "Only one service account per VM instance is supported.")
    return [_service_account(project, value[0] if isinstance(value[0], dict) else {}, "resource.serviceAccounts[0]")]


def _service_account(project, sa: dict, field: str) -> dict:
    email = sa.get("email") or "default"
    if email == "default":
        email = projects.default_service_account(project)
    elif not isinstance(email, str) or "@" not in email:
        raise Invalid(f"{field}.email", email, "Must be a service account email address or 'default'.")
    scopes = []
    for scope in sa.get("scopes") or []:
        # gcloud's aliases are expanded by gcloud; bare scope names are expanded here
        full = scope if "://" in scope else "https://www.googleapis.com/auth/" + scope
        if full not in scopes:
            scopes.append(full)
    return {"email": email, "scopes": scopes}


def _scheduling(value: object, field: str = "resource.scheduling") -> dict:
    value = value if isinstance(value, dict) else {}
    preemptible = bool(value.get("preemptible", False))
    model = value.get("provisioningModel", "SPOT" if preemptible else "STANDARD")
    spot = preemptible or model == "SPOT"
    host_maint = value.get("onHostMaintenance", "TERMINATE" if spot else "MIGRATE")
    if host_maint not in ("MIGRATE", "TERMINATE"):
        raise Invalid(f"{field}.onHostMaintenance", host_maint, "Must be MIGRATE or TERMINATE.")
    restart = bool(value.get("automaticRestart", not spot))
    if spot and host_maint != "TERMINATE":
        raise Invalid(f"{field}.onHostMaintenance", host_maint,
                      "Preemptible and Spot instances must have onHostMaintenance set to TERMINATE.")
    if spot and restart:
        raise Invalid(f"{field}.automaticRestart", "true", "Preemptible and Spot instances cannot be automatically "
                      "restarted.")
    out = {"onHostMaintenance": host_maint, "automaticRestart": restart, "preemptible": preemptible,
           "provisioningModel": model}
    for key in ("instanceTerminationAction",):
        if key in value:
            out[key] = value[key]
    return out


def insert(call: Call, zone: Zone, body: dict) -> Operation:
    name = store.validate_name(body.get("name"))
    path = path_of(call.project, f"zones/{zone.name}", "instances", name)
    if store.exists(call.session, call.project, "instances", f"zones/{zone.name}", name):
        raise AlreadyExists(path)
    mt = _machine_type(call, zone, body.get("machineType"))
    hostname = _hostname(body.get("hostname"))
    project = projects.get(call.session, call.project)
    try:
        new_specs, attached = _attached_disks(call, zone, name, body.get("disks"))
    except AlreadyExists:
        # PostgreSQL: a concurrent insert of this instance may have committed since the check above,
        # boot disk included; the clash to report is the instance's, not its disk's.
        if store.exists(call.session, call.project, "instances", f"zones/{zone.name}", name):
            _lost_race(call, path)
        raise
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
    # The body is complete before the row goes in (one INSERT, no UPDATE after it): addresses are
    # allocated for the uid the row will have, and the new disks are described from their specs.
    uid = new_uid()
    nics = _build_nics(call, zone, uid, instance_url, parsed_nics)
    attached_json = []
    for index, (req, src) in enumerate(attached):
        if "spec" in src:
            spec = src["spec"]
            disk_url, size, disk_body = url_of(call.project, scope, "disks", spec["name"]), spec["size_gb"], spec["body"]
        else:
            row = src["row"]
            disk_url, size, disk_body = url_of(row.project, row.scope, "disks", row.name), row.size_gb, store.body_of(row)
        attached_json.append({
            "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": req.get("mode", "READ_WRITE"),
            "source": disk_url, "deviceName": src["device"],
            "index": index, "boot": index == 0, "autoDelete": bool(req.get("autoDelete", False)),
            "interface": req.get("interface", "SCSI"), "diskSizeGb": str(size),
            "architecture": disk_body.get("architecture", "X86_64"),
            **({"licenses": disk_body["licenses"]} if disk_body.get("licenses") else {}),
        })
    # The instance row comes before the disks': a concurrent insert of the same name meets the unique
    # constraint here (not on the boot disk's name), and a concurrent retry of the same requestId
    # gets the operation of the request that won.
    res = _new_instance_row(
        call, uid=uid, project=call.project, collection="instances", scope=scope, name=name,
        kind="compute#instance", status="PROVISIONING", region=zone.region.name,
        vcpus=mt.guest_cpus, memory_mb=mt.memory_mb, subtype=mt.name, finish=_fingerprinted,
        body={
            "description": body.get("description", ""), "tags": tags_block(tags),
            "machineType": url_of(call.project, scope, "machineTypes", mt.name),
            "canIpForward": bool(body.get("canIpForward", False)), "networkInterfaces": nics,
            "disks": attached_json, "metadata": metadata_block(items), "serviceAccounts": service_accounts,
            "selfLink": instance_url, "scheduling": scheduling, "cpuPlatform": "Unknown CPU Platform",
            "labels": labels, "labelFingerprint": label_fingerprint(labels), "startRestricted": False,
            "deletionProtection": bool(body.get("deletionProtection", False)),
            "zone": scope_url(call.project, scope),
            "hostname": hostname or f"{name}.{zone.name}.c.{call.project}.internal",
            "shieldedInstanceConfig": body.get("shieldedInstanceConfig") or
            {"enableSecureBoot": False, "enableVtpm": True, "enableIntegrityMonitoring": True},
            "keyRevocationActionType": "NONE",
        },
    )
    created_disks = []
    for _req, src in attached:
        if "spec" in src:
            created_disks.append(disks.create_row(call, zone, src["spec"], users=[instance_url]).uid)
        else:
            disks.add_user(src["row"], instance_url)
    return operations.begin(call, scope=scope, op_type="insert", target_path=path, target_id=res.uid,
                            job="instances.run", params={"uid": res.uid, "created_disks": created_disks,
                                                         "zone_id": zone.id, "delete_on_fail": True,
                                                         "warnings": _size_warnings(call, zone, new_specs)})


def _new_instance_row(call: Call, **columns) -> Resource:
    try:
        return store.new_resource(call.session, **columns)  # a clash leaves the transaction usable
    except AlreadyExists:
        _lost_race(call, path_of(columns["project"], columns["scope"], "instances", columns["name"]))
        raise


def _lost_race(call: Call, path: str) -> None:
    """A concurrent insert of the same instance won: this request retried the same requestId
    (it gets the winner's Operation), or it is a name clash."""
    if call.request_id and operations.by_request_id(call) is not None:
        raise DuplicateRequest() from None
    raise AlreadyExists(path)


def _hostname(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 253 or not _HOSTNAME.match(value):
        raise Invalid("resource.hostname", value, "The hostname must be a fully qualified DNS name: at least two "
                      "labels of lowercase letters, digits and dashes, at most 253 characters.")
    return value


def _size_warnings(call: Call, zone: Zone, specs: list[dict]) -> list[dict]:
    """DISK_SIZE_LARGER_THAN_IMAGE_SIZE for each new disk made bigger than its image."""
    out = []
    for spec in specs:
        if spec.get("source_size") and spec["size_gb"] > spec["source_size"] and spec["body"].get("sourceImage"):
            out.append({"code": "DISK_SIZE_LARGER_THAN_IMAGE_SIZE", "message": (
                f"Disk size: '{spec['size_gb']} GB' is larger than image size: '{spec['source_size']} GB'. "
                "You might need to resize the root repartition manually if the operating system does not "
                "support automatic resizing. See https://cloud.google.com/compute/docs/disks/add-persistent-disk"
                "#resize_pd for details."),
                "data": [{"key": "resource_name",
                          "value": path_of(call.project, f"zones/{zone.name}", "disks", spec["name"])}]})
    return out


# Output-only fields that change with the VM's state, not its configuration: outside the fingerprint.
_STATE_FIELDS = frozenset({"fingerprint", "status", "statusMessage", "cpuPlatform", "lastStartTimestamp",
                           "lastStopTimestamp", "lastSuspendedTimestamp"})


def _fingerprinted(inst: dict) -> None:
    """A new ``fingerprint``: it changes on every modification of the configuration."""
    inst["fingerprint"] = fingerprint(["instance", {k: v for k, v in inst.items() if k not in _STATE_FIELDS}])


def _save(res: Resource, inst: dict) -> None:
    """Store a changed instance body with a new fingerprint."""
    _fingerprinted(inst)
    store.save(res, inst)


# -- jobs ------------------------------------------------------------------------------------------


def _host_ref(host: Host) -> HostRef:
    return HostRef(host.id, host.name, host.uri)


def _driver(ctx_or_engine, session, host_id: int):
    host = session.get(Host, host_id)
    cluster = session.get(Cluster, host.cluster_id)
    return ctx_or_engine.drivers.get(cluster.hypervisor), _host_ref(host)


def vm_spec(session, res: Resource, known: dict[str, Resource] | None = None) -> VmSpec:
    """What the driver needs to start the VM. ``known``: disk rows the caller loaded already, by URL."""
    inst = store.body_of(res)
    disk_specs = []
    for d in inst.get("disks", []):
        row = (known or {}).get(d["source"]) or store.find_optional(
            session, res.project, "disks", res.scope, d["source"].rsplit("/", 1)[-1])
        if row is not None:
            body = store.body_of(row)
            disk_specs.append(DiskSpec(row.uid, row.name, row.size_gb, d.get("boot", False), d.get("deviceName", ""),
                                       body.get("sourceImage")))
    nics = tuple(NicSpec(n["name"], ipam.mac_for(n["networkIP"]), n["network"].rsplit("/", 1)[-1], n["networkIP"])
                 for n in inst.get("networkInterfaces", []))
    meta = {i["key"]: i["value"] for i in inst.get("metadata", {}).get("items", [])}
    return VmSpec(res.uid, res.name, inst.get("hostname", res.name), res.vcpus, res.memory_mb, tuple(disk_specs), nics, meta)


def _attached_rows(s, res: Resource) -> list[Resource]:
    """The disk rows the instance has attached, locked: the caller changes their users."""
    rows = []
    for d in store.body_of(res).get("disks", []):
        ref = parse_ref(d["source"], project=res.project)
        row = ref and s.scalar(select(Resource).where(
            Resource.project == ref.project, Resource.collection == "disks", Resource.scope == ref.scope,
            Resource.name == ref.name).with_for_update())
        if row is not None and row not in rows:
            rows.append(row)
    return rows


def _sync_routers(session, res: Resource) -> None:
    """Ask the virtual routers of the instance's networks to re-render (DHCP, DNS, firewall, NAT)."""
    request_sync_for_instance(session, res)


_BY_UIDS = select(Resource).where(Resource.uid.in_(bindparam("uids", expanding=True)))
_BY_UIDS_LOCKED = _BY_UIDS.with_for_update()
_HOSTS = select(Host).where(Host.id.in_(bindparam("ids", expanding=True)))
_BY_UID_LOCKED = select(Resource).where(Resource.uid == bindparam("uid")).with_for_update()


def _load(s, uid: int) -> Resource | None:
    """A row a job is about to change, locked until its write transaction ends (see :func:`lock`)."""
    return s.scalar(_BY_UID_LOCKED, {"uid": uid})


def _stage(ctx: JobContext, s, tried: set[int]) -> tuple | None:
    """Place the VM (if it is not) and mark it STAGING, in the caller's transaction: (driver,
    host, spec) to start it with, or None when it is gone or running already."""
    res = _load(s, ctx.params["uid"])
    if res is None or res.status == "RUNNING":
        return None
    if res.host_id is None:
        host = planner.place_vm(s, ctx.params["zone_id"], res.vcpus, res.memory_mb, frozenset(tried),
                                prefer=res.last_host_id)
        if host is None:
            raise zone_exhausted(res.project, res.scope.split("/", 1)[1])
        res.host_id = host.id
    disks.place_disks(s, ctx.params["zone_id"], ctx.params.get("created_disks", []), res.project,
                      res.scope.split("/", 1)[1])
    store.set_status(res, "STAGING")
    _sync_routers(s, res)  # the first instance on a network deploys its virtual router
    driver, host_ref = _driver(ctx, s, res.host_id)
    spec = vm_spec(s, res)
    ctx.progress(40, session=s)
    return driver, host_ref, spec


def _unplace(ctx: JobContext, s) -> None:
    """Its host failed to start the VM: it is placed again, elsewhere."""
    res = _load(s, ctx.params["uid"])
    if res is not None:
        res.host_id = None


def _run_vm(ctx: JobContext) -> None:
    """Place the VM (if it is not) and start it on its host, trying other hosts when a spawn fails."""
    tried: set[int] = set(ctx.scratch.get("tried", ()))
    while True:
        with ctx.write() as s:
            staged = _stage(ctx, s, tried)
        if staged is None:
            return
        driver, host_ref, spec = staged
        try:
            if ctx.params.get("resume", False):
                driver.resume(host_ref, spec)
            else:
                driver.spawn(host_ref, spec)
        except DriverError as exc:
            tried.add(host_ref.id)
            with ctx.write() as s:
                _unplace(ctx, s)
            if not exc.retry_elsewhere:
                raise OperationFailure("INTERNAL_ERROR", str(exc), 500) from exc
            continue
        break
    with ctx.write() as s:
        _mark_running([ctx], s)


def _run_vms(ctxs: list[JobContext]) -> None:
    """:func:`_run_vm` for a burst of new VMs: one transaction places and stages them all, each
    driver spawns its share at once, and one transaction marks them all RUNNING. A VM this cannot
    start (no room, a failed spawn) is left to :func:`_run_vm`, which retries or fails it alone."""
    with ctxs[0].write() as s:
        staged = _stage_batch([c for c in ctxs if not c.params.get("resume")], s)
    by_driver: dict[int, list[tuple[JobContext, object, HostRef, VmSpec]]] = {}
    for item in staged:
        by_driver.setdefault(id(item[1]), []).append(item)
    started, failed = [], []
    for items in by_driver.values():
        errors = items[0][1].spawn_many([(host_ref, spec) for _, _, host_ref, spec in items])
        for (ctx, _, host_ref, _), error in zip(items, errors, strict=True):
            if error is None:
                started.append(ctx)
            else:
                ctx.scratch["tried"] = [host_ref.id]
                failed.append(ctx)
    with ctxs[0].write() as s:
        for ctx in failed:
            _unplace(ctx, s)
        _mark_running(started, s)


def _stage_batch(ctxs: list[JobContext], s) -> list[tuple[JobContext, object, HostRef, VmSpec]]:
    """:func:`_stage` for many new VMs at once, with one query per kind of row: their rows, their new
    disks, each zone's capacity (read once, see :class:`~core.planner.ZoneCapacity`), one progress
    update and one router sync request per network. A VM that is placed already, or that finds
    no room, is left out: its single run places it, or fails it with the usual error."""
    rows = {r.uid: r for r in s.scalars(_BY_UIDS_LOCKED, {"uids": [c.params["uid"] for c in ctxs]})}
    new_disks = {url_of(d.project, d.scope, "disks", d.name): d for d in s.scalars(
        _BY_UIDS, {"uids": [uid for c in ctxs for uid in c.params.get("created_disks", [])]})}
    disk_by_uid = {d.uid: d for d in new_disks.values()}
    capacity: dict[int, planner.ZoneCapacity] = {}
    staged = []
    for ctx in ctxs:
        res = rows.get(ctx.params["uid"])
        if res is None or res.status != "PROVISIONING" or res.host_id is not None:
            continue
        zone = capacity.setdefault(ctx.params["zone_id"], planner.ZoneCapacity(s, ctx.params["zone_id"]))
        own = [disk_by_uid[uid] for uid in ctx.params.get("created_disks", ())
               if uid in disk_by_uid and disk_by_uid[uid].pool_id is None]
        host = _place_with_disks(zone, res, own)
        if host is None:
            continue
        store.set_status(res, "STAGING")
        driver = ctx.drivers.get(zone.cluster_of(host).hypervisor)
        staged.append((ctx, driver, _host_ref(host), vm_spec(s, res, new_disks)))
    JobContext.progress_all(s, [item[0] for item in staged], 40)
    for ctx, *_ in staged:  # one request per network: request_sync remembers it within the transaction
        _sync_routers(s, rows[ctx.params["uid"]])
    return staged


def _place_with_disks(zone: planner.ZoneCapacity, res: Resource, new_disks: list[Resource]) -> Host | None:
    """A host for the VM and a pool for each of its new disks, or nothing at all (None)."""
    host = zone.place_vm(res.vcpus, res.memory_mb)
    if host is None:
        return None
    pools = []
    for d in new_disks:
        pool = zone.place_disk(d.size_gb)
        if pool is None:
            zone.unplace_vm(host, res.vcpus, res.memory_mb)
            for placed, disk in zip(pools, new_disks, strict=False):
                zone.unplace_disk(placed, disk.size_gb)
            return None
        pools.append(pool)
    res.host_id = host.id
    for pool, d in zip(pools, new_disks, strict=True):
        d.pool_id = pool.id
    return host


def _mark_running(ctxs: list[JobContext], s) -> None:
    """The VMs run: RUNNING, their new disks READY, and their Operations DONE in the same
    transaction; one query for each kind of row, however many VMs."""
    rows = {r.uid: r for r in s.scalars(_BY_UIDS_LOCKED, {"uids": [c.params["uid"] for c in ctxs]})}
    hosts = {h.id: h for h in s.scalars(_HOSTS, {"ids": list({r.host_id for r in rows.values()})})}
    created = [uid for c in ctxs for uid in c.params.get("created_disks", [])]
    for d in s.scalars(_BY_UIDS, {"uids": created}):
        if d.status == "CREATING":
            store.set_status(d, "READY")
    now = rfc3339(time.time())
    done = []
    for ctx in ctxs:
        res = rows.get(ctx.params["uid"])
        if res is None:  # deleted meanwhile: its own run ends the Operation
            continue
        store.set_status(res, "RUNNING", lastStartTimestamp=now, cpuPlatform=hosts[res.host_id].cpu_platform)
        res.last_host_id = res.host_id
        done.append(ctx)
    JobContext.complete_all(s, done)


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
            for d in _attached_rows(s, res):
                if d.uid in ctx.params.get("created_disks", []):
                    s.delete(d)
                elif url in store.body_of(d).get("users", []):
                    disks.remove_user(d, url)
            ipam.release_owner(s, res.uid)
            addresses.release_instance(s, res)
            _sync_routers(s, res)
            s.delete(res)
        else:
            res.host_id = None
            store.set_status(res, "SUSPENDED" if ctx.params.get("resume") else "TERMINATED")


# Batches of new VMs start at most every 0.2 s: a burst of inserts is started in batches of many
# VMs each, at the cost of up to 0.2 s for the VMs of a burst (none for a lone insert).
job("instances.run", on_fail=_run_failed, batch=_run_vms, spacing=0.2)(_run_vm)


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
            ctx.complete(s)

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
        for d in _attached_rows(s, res):
            disk_url = url_of(d.project, d.scope, "disks", d.name)
            users = store.body_of(d).get("users", [])
            if url in users:
                if disk_url in auto and users == [url]:
                    s.delete(d)
                else:  # kept; an autoDelete disk still attached elsewhere (READ_ONLY) is kept as well
                    disks.remove_user(d, url)
        ipam.release_owner(s, res.uid)
        addresses.release_instance(s, res)
        _sync_routers(s, res)
        s.delete(res)
        ctx.complete(s)


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
    res = _locked(call, zone, name)
    if res.status == "RUNNING":
        return _op(call, res, "start")
    if res.status in ("PROVISIONING", "STAGING"):  # already starting: done when that start is
        return _op(call, res, "start", "instances.run", zone_id=zone.id)
    if res.status != "TERMINATED":
        raise _not_ready(res, "be started")
    quotas.check_region(call.session, projects.get(call.session, call.project), zone.region.name, {"CPUS": res.vcpus})
    store.set_status(res, "PROVISIONING")
    return _op(call, res, "start", "instances.run", zone_id=zone.id)


def stop(call: Call, zone: Zone, name: str) -> Operation:
    res = _locked(call, zone, name)
    if res.status == "TERMINATED":
        return _op(call, res, "stop")
    if res.status in ("STOPPING", "PROVISIONING", "STAGING"):
        # stopping already, or starting: the stop runs after the job in flight (jobs of one VM run in order)
        return _op(call, res, "stop", "instances.stop")
    if res.status not in ("RUNNING", "SUSPENDED"):
        raise _not_ready(res, "be stopped")
    store.set_status(res, "STOPPING")
    return _op(call, res, "stop", "instances.stop")


def reset(call: Call, zone: Zone, name: str) -> Operation:
    res = _locked(call, zone, name)
    if res.status != "RUNNING":
        raise _not_ready(res, "be reset")
    return _op(call, res, "reset", "instances.reset")


def suspend(call: Call, zone: Zone, name: str) -> Operation:
    res = _locked(call, zone, name)
    if res.status == "SUSPENDED":
        return _op(call, res, "suspend")
    if res.status == "SUSPENDING":
        return _op(call, res, "suspend", "instances.suspend")
    if res.status != "RUNNING":
        raise _not_ready(res, "be suspended")
    store.set_status(res, "SUSPENDING")
    return _op(call, res, "suspend", "instances.suspend")


def resume(call: Call, zone: Zone, name: str) -> Operation:
    res = _locked(call, zone, name)
    if res.status == "RUNNING":
        return _op(call, res, "resume")
    if res.status != "SUSPENDED":
        raise _not_ready(res, "be resumed")
    store.set_status(res, "PROVISIONING")
    return _op(call, res, "resume", "instances.run", zone_id=zone.id, resume=True)


def delete(call: Call, zone: Zone, name: str) -> Operation:
    res = _locked(call, zone, name)
    inst = store.body_of(res)
    if inst.get("deletionProtection"):
        raise Invalid("deletionProtection", True, message=(
            "Invalid resource usage: 'Resource cannot be deleted if it's protected against deletion.'."))
    store.set_status(res, "STOPPING")
    return _op(call, res, "delete", "instances.delete")


# -- synchronous changes ---------------------------------------------------------------------------


def set_metadata(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    res = _locked(call, zone, name)
    inst = store.body_of(res)
    current = inst.get("metadata", {})
    check_fingerprint(body.get("fingerprint"), current.get("fingerprint", ""), METADATA_MISMATCH,
                      allow_missing=not current.get("items"))
    inst["metadata"] = metadata_block(validate_items(body.get("items"), "resource.items"))
    _save(res, inst)
    return _op(call, res, "setMetadata")


def set_instance_labels(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    res = _locked(call, zone, name)
    inst = store.body_of(res)
    set_labels(inst, body)
    _save(res, inst)
    return _op(call, res, "setLabels")


def set_tags(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    res = _locked(call, zone, name)
    inst = store.body_of(res)
    current = inst.get("tags", tags_block([]))
    check_fingerprint(body.get("fingerprint"), current["fingerprint"], allow_missing=not current.get("items"))
    inst["tags"] = tags_block(validate_tags(body.get("items"), "resource.items"))
    _save(res, inst)
    _sync_routers(call.session, res)  # tag-targeted firewall rules change with the tags
    return _op(call, res, "setTags")


def set_machine_type(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    res = _locked(call, zone, name)
    if res.status != "TERMINATED":
        raise Invalid("resource.machineType", body.get("machineType"), message=(
            f"Invalid value for field 'resource.machineType': '{body.get('machineType')}'. "
            f"Instance '{res.name}' must be stopped before changing its machine type."))
    mt = _machine_type(call, zone, body.get("machineType"))
    inst = store.body_of(res)
    inst["machineType"] = url_of(call.project, res.scope, "machineTypes", mt.name)
    res.vcpus, res.memory_mb, res.subtype = mt.guest_cpus, mt.memory_mb, mt.name
    _save(res, inst)
    return _op(call, res, "setMachineType")


def set_deletion_protection(call: Call, zone: Zone, name: str, protect: bool) -> Operation:
    res = _locked(call, zone, name)
    inst = store.body_of(res)
    inst["deletionProtection"] = protect
    _save(res, inst)
    return _op(call, res, "setDeletionProtection")


def set_disk_auto_delete(call: Call, zone: Zone, name: str, device_name: str, auto_delete: bool) -> Operation:
    res = _locked(call, zone, name)
    inst = store.body_of(res)
    for d in inst.get("disks", []):
        if d.get("deviceName") == device_name:
            d["autoDelete"] = auto_delete
            break
    else:
        raise Invalid("deviceName", device_name, message=f"Invalid value for field 'deviceName': '{device_name}'. "
                      "No attached disk found with that device name.")
    _save(res, inst)
    return _op(call, res, "setDiskAutoDelete")


def attach_disk(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    res = _locked(call, zone, name)
    inst = store.body_of(res)
    if not body.get("source"):
        raise Required("resource.source")
    ref = parse_ref(body["source"], project=call.project, scope=f"zones/{zone.name}")
    if ref is None or ref.collection != "disks":
        raise Invalid("resource.source", body["source"], "The URL is malformed.")
    if ref.scope != res.scope:
        raise Invalid("resource.source", body["source"], f"Disk must be in zone '{zone.name}'.")
    disk = lock(call.session, store.find(call.session, ref.project, "disks", ref.scope, ref.name))
    instance_url = url_of(res.project, res.scope, "instances", res.name)
    _check_attachable(call.session, disk, body.get("mode", "READ_WRITE"))
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
    _save(res, inst)
    disks.add_user(disk, instance_url)
    if res.host_id is not None and res.status == "RUNNING":
        return _op(call, res, "attachDisk", "instances.diskHotplug", disk_uid=disk.uid, device_name=device, attach=True)
    return _op(call, res, "attachDisk")


def detach_disk(call: Call, zone: Zone, name: str, device_name: str | None) -> Operation:
    res = _locked(call, zone, name)
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
    _save(res, inst)
    ref = parse_ref(entry["source"], project=call.project)
    disk = store.find_optional(call.session, ref.project, "disks", ref.scope, ref.name) if ref else None
    if disk is not None:
        disks.remove_user(lock(call.session, disk), url_of(res.project, res.scope, "instances", res.name))
    if disk is not None and res.host_id is not None and res.status == "RUNNING":
        return _op(call, res, "detachDisk", "instances.diskHotplug", disk_uid=disk.uid, device_name=device_name,
                   attach=False)
    return _op(call, res, "detachDisk")


def _nic_named(inst: dict, nic_name: str | None) -> dict:
    if not nic_name:
        raise Required("networkInterface")
    nic = next((n for n in inst.get("networkInterfaces", []) if n.get("name") == nic_name), None)
    if nic is None:
        raise Invalid("networkInterface", nic_name, "The instance has no network interface of that name.")
    return nic


def add_access_config(call: Call, zone: Zone, name: str, nic_name: str | None, body: dict) -> Operation:
    res = _locked(call, zone, name)
    inst = store.body_of(res)
    nic = _nic_named(inst, nic_name)
    _check_access_config(body, "resource")
    if nic.get("accessConfigs"):
        raise Invalid("networkInterface", nic_name, "At most one access config currently supported.")
    nic["accessConfigs"] = [_access_config(call, zone, res.uid, vpc.url(res), body)]
    nic["fingerprint"] = _nic_fingerprint(nic)
    _save(res, inst)
    vpc.notify_router(call.session, call.project, nic["network"])
    return _op(call, res, "addAccessConfig")


def delete_access_config(call: Call, zone: Zone, name: str, nic_name: str | None, config: str | None) -> Operation:
    res = _locked(call, zone, name)
    if not config:
        raise Required("accessConfig")
    inst = store.body_of(res)
    nic = _nic_named(inst, nic_name)
    ac = next((a for a in nic.get("accessConfigs", []) if a.get("name") == config), None)
    if ac is None:
        raise Invalid("accessConfig", config, f"Network interface '{nic['name']}' has no access config of that name.")
    remaining = [a for a in nic["accessConfigs"] if a is not ac]
    if remaining:
        nic["accessConfigs"] = remaining
    else:
        nic.pop("accessConfigs")
    if ac.get("natIP"):
        call.session.execute(sql_delete(IpAllocation).where(
            IpAllocation.pool == f"external:{zone.region.name}", IpAllocation.owner_uid == res.uid,
            IpAllocation.address == int(ipaddress.ip_address(ac["natIP"]))))
    nic["fingerprint"] = _nic_fingerprint(nic)
    _save(res, inst)
    if ac.get("natIP"):  # after the save: the static address checks that the instance no longer holds it
        addresses.release_for_instance(call.session, zone.region.name, ac["natIP"], vpc.url(res))
    vpc.notify_router(call.session, call.project, nic["network"])
    return _op(call, res, "deleteAccessConfig")


_PTR_FIELDS = ("setPublicPtr", "publicPtrDomainName")


def update_access_config(call: Call, zone: Zone, name: str, nic_name: str | None, body: dict) -> Operation:
    """Change the public DNS (PTR) settings or the name of the interface's access config; its type,
    tier and address stay (to change the address, delete the access config and add another)."""
    res = _locked(call, zone, name)
    inst = store.body_of(res)
    nic = _nic_named(inst, nic_name)
    _check_access_config(body, "resource")
    configs = nic.get("accessConfigs") or []
    if not configs:
        raise Invalid("networkInterface", nic_name, f"Network interface '{nic['name']}' has no access config.")
    ac = configs[0]
    for key in ("natIP", "type", "networkTier"):
        if body.get(key) not in (None, "", ac.get(key)):
            raise Invalid(f"resource.{key}", body[key], "Only the name and the public PTR settings of an access "
                          "config can be updated; delete it and add another to change this.")
    if body.get("publicPtrDomainName") and not body.get("setPublicPtr", ac.get("setPublicPtr")):
        raise Invalid("resource.publicPtrDomainName", body["publicPtrDomainName"],
                      "A public PTR domain name needs setPublicPtr.")
    if body.get("name"):
        ac["name"] = body["name"]
    for key in _PTR_FIELDS:
        if key in body:
            ac[key] = body[key]
    if not ac.get("setPublicPtr"):
        ac.pop("publicPtrDomainName", None)
    nic["fingerprint"] = _nic_fingerprint(nic)
    _save(res, inst)
    vpc.notify_router(call.session, call.project, nic["network"])
    return _op(call, res, "updateAccessConfig")


_PROVISIONING_FIELDS = ("preemptible", "provisioningModel")


def set_scheduling(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    """Merge the given options over the current ones. Host maintenance and restart may change while
    the VM runs; the provisioning model only while it is TERMINATED."""
    res = _locked(call, zone, name)
    inst = store.body_of(res)
    current = dict(inst.get("scheduling") or {})
    changed = [k for k in _PROVISIONING_FIELDS if k in body and body[k] != current.get(k)]
    if changed:
        if res.status != "TERMINATED":
            key = changed[0]
            raise Invalid(f"scheduling.{key}", body[key], message=(
                f"Invalid value for field 'scheduling.{key}': '{body[key]}'. "
                f"Instance '{res.name}' must be stopped before changing its provisioning model."))
        # the defaults that follow from the provisioning model are derived again
        for key in ("onHostMaintenance", "automaticRestart", *_PROVISIONING_FIELDS):
            if key not in body:
                current.pop(key, None)
    inst["scheduling"] = _scheduling({**current, **body}, "scheduling")
    _save(res, inst)
    return _op(call, res, "setScheduling")


def set_service_account(call: Call, zone: Zone, name: str, body: dict) -> Operation:
    res = _locked(call, zone, name)
    if res.status != "TERMINATED":
        raise Invalid("serviceAccount", body.get("email"), message=(
            f"Invalid value for field 'serviceAccount': '{body.get('email')}'. "
            f"Instance '{res.name}' must be stopped before changing its service account."))
    inst = store.body_of(res)
    if body.get("email") or body.get("scopes"):
        inst["serviceAccounts"] = [_service_account(projects.get(call.session, call.project), body, "resource")]
    else:
        inst["serviceAccounts"] = []
    _save(res, inst)
    return _op(call, res, "setServiceAccount")


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
