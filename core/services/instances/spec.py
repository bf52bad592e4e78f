"""Request bodies of instances: the machine type, network interfaces, attached disks, scheduling,
service accounts and hostname, each validated with GCE's exact errors before anything is written.

One function per field (and per kind of disk, per NIC field): a rule is found by the field it checks.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core import ipam
from core.catalog import MachineType
from core.errors import AlreadyExists, Invalid, Required, ResourceInUse
from core.links import parse_ref, path_of, url_of
from core.models import Project, Resource
from core.resources import store
from core.resources.context import Call
from core.services import disks, projects, vpc
from core.services.instances.rows import lock
from core.services.storage_states import ATTACH, DISKS
from core.services.topology import ZoneInfo, get_machine_type

ACCESS_CONFIG_TYPES = {"ONE_TO_ONE_NAT"}
_EXTERNAL = ipaddress.ip_network(ipam.EXTERNAL_RANGE)
_HOSTNAME_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_HOSTNAME_LABEL}(?:\.{_HOSTNAME_LABEL})+\Z")
_SUBNETS = select(Resource).where(Resource.project == bindparam("project"), Resource.collection == "subnetworks",
                                  Resource.scope == bindparam("scope")).order_by(Resource.name)
_NEEDS_SUBNET = "Invalid value for field '{field}.subnetwork': ''. "


# -- machine type, hostname -------------------------------------------------------------------------


def machine_type(call: Call, zone: ZoneInfo, value: object) -> MachineType:
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
    return get_machine_type(call.project, zone.name, ref.name, value=value)


def hostname(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 253 or not _HOSTNAME.match(value):
        raise Invalid("resource.hostname", value, "The hostname must be a fully qualified DNS name: at least two "
                      "labels of lowercase letters, digits and dashes, at most 253 characters.")
    return value


# -- network interfaces -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedNic:
    """A requested NIC with the rows it names (its network and subnetwork)."""

    network: Resource
    subnet: Resource
    request: dict[str, Any]

    @property
    def network_url(self) -> str:
        return url_of(self.network.project, "global", "networks", self.network.name)


def network_interfaces(call: Call, zone: ZoneInfo, nics: object) -> list[ParsedNic]:
    """The NICs asked for; the default network when none is named."""
    if nics is None:
        nics = [{}]
    if not isinstance(nics, list) or not nics:
        raise Invalid("resource.networkInterfaces", nics, "At least one network interface is required.")
    if len(nics) > 8:
        raise Invalid("resource.networkInterfaces", len(nics), "At most 8 network interfaces are allowed.")
    out: list[ParsedNic] = []
    for i, nic in enumerate(nics):
        out.append(_nic(call, zone, nic, f"resource.networkInterfaces[{i}]", out))
    return out


def _nic(call: Call, zone: ZoneInfo, nic: object, field: str, before: list[ParsedNic]) -> ParsedNic:
    if not isinstance(nic, dict):
        raise Invalid(field, nic, "Must be an object.")
    subnet = _named_subnet(call, zone, nic, field)
    network = _network(call, nic, subnet, field)
    parsed = ParsedNic(network, subnet if subnet is not None else _default_subnet(call, zone, network, field), nic)
    if subnet is not None and store.body_of(subnet)["network"] != parsed.network_url:
        raise Invalid(f"{field}.subnetwork", nic.get("subnetwork"), "The subnetwork does not belong to the network.")
    if any(parsed.network_url == other.network_url for other in before):
        raise Invalid(f"{field}.network", parsed.network_url, "Networks must be distinct for NICs attached to a VM.")
    if nic.get("networkIP"):
        vpc.host_address(nic["networkIP"], store.body_of(parsed.subnet)["ipCidrRange"], f"{field}.networkIP")
    _access_configs(nic.get("accessConfigs") or [], field)
    return parsed


def _named_subnet(call: Call, zone: ZoneInfo, nic: dict[str, Any], field: str) -> Resource | None:
    if not nic.get("subnetwork"):
        return None
    region = zone.region.name
    ref = parse_ref(nic["subnetwork"], project=call.project, scope=f"regions/{region}")
    if ref is None or ref.collection != "subnetworks":
        raise Invalid(f"{field}.subnetwork", nic["subnetwork"], "The URL is malformed.")
    if ref.scope != f"regions/{region}":
        raise Invalid(f"{field}.subnetwork", nic["subnetwork"], f"Subnetwork must be in region '{region}'.")
    return store.find(call.session, ref.project, "subnetworks", ref.scope, ref.name)


def _network(call: Call, nic: dict[str, Any], subnet: Resource | None, field: str) -> Resource:
    """The network named, else the subnetwork's, else the project's ``default``."""
    if nic.get("network"):
        ref = parse_ref(nic["network"], project=call.project, scope="global")
        if ref is None or ref.collection != "networks":
            raise Invalid(f"{field}.network", nic["network"], "The URL is malformed.")
        return store.find(call.session, ref.project, "networks", "global", ref.name)
    if subnet is not None:
        return store.find(call.session, subnet.project, "networks", "global",
                          store.body_of(subnet)["network"].rsplit("/", 1)[-1])
    return store.find(call.session, call.project, "networks", "global", "default")


def _default_subnet(call: Call, zone: ZoneInfo, network: Resource, field: str) -> Resource:
    """The auto-mode network's subnetwork in the zone's region (a custom-mode one needs it named)."""
    region = zone.region.name
    if not store.body_of(network).get("autoCreateSubnetworks"):
        raise Invalid(f"{field}.subnetwork", None, message=_NEEDS_SUBNET.format(field=field) +
                      "Subnetwork should be specified for custom subnetmode network")
    net_url = url_of(network.project, "global", "networks", network.name)
    found = next((s for s in call.session.scalars(_SUBNETS, {"project": network.project, "scope": f"regions/{region}"})
                  if store.body_of(s)["network"] == net_url), None)
    if found is None:
        raise Invalid(f"{field}.subnetwork", None, message=_NEEDS_SUBNET.format(field=field) +
                      f"Network '{network.name}' has no subnetwork in region '{region}'; specify a subnetwork.")
    return found


def _access_configs(configs: list[object], field: str) -> None:
    if len(configs) > 1:
        raise Invalid(f"{field}.accessConfigs", len(configs), "At most one access config currently supported.")
    for j, ac in enumerate(configs):
        check_access_config(ac, f"{field}.accessConfigs[{j}]")


def check_access_config(ac: object, field: str) -> None:
    if not isinstance(ac, dict):
        raise Invalid(field, ac, "Must be an object.")
    if ac.get("type", "ONE_TO_ONE_NAT") not in ACCESS_CONFIG_TYPES:
        raise Invalid(f"{field}.type", ac.get("type"), "Must be ONE_TO_ONE_NAT.")
    if ac.get("networkTier", "PREMIUM") not in ("PREMIUM", "STANDARD"):
        raise Invalid(f"{field}.networkTier", ac.get("networkTier"), "Must be PREMIUM or STANDARD.")
    nat = ac.get("natIP")
    if nat and not _external(nat):
        raise Invalid(f"{field}.natIP", nat, "Must be an external IPv4 address.")


def _external(nat: object) -> bool:
    try:
        ip = ipaddress.IPv4Address(nat) if isinstance(nat, str) else None
    except ValueError:
        return False
    return not (ip is None or (ip.is_private and ip not in _EXTERNAL) or ip.is_unspecified or ip.is_multicast)


# -- attached disks ---------------------------------------------------------------------------------


@dataclass
class Attached:
    """A requested attached disk and its source: an existing disk's ``row``, or the ``spec`` of a
    new one (see :func:`core.services.disks.build`); ``device`` is its device name."""

    request: dict[str, Any]
    row: Resource | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    device: str = ""

    @property
    def disk_name(self) -> str:
        return self.row.name if self.row is not None else str(self.spec["name"])


def attached_disks(call: Call, zone: ZoneInfo, name: str, requested: object) -> tuple[list[dict[str, Any]],
                                                                                      list[Attached]]:
    """Validate ``disks``: returns (new disk specs, the attached disks in order)."""
    if not isinstance(requested, list) or not requested:
        raise Required("resource.disks")
    attached: list[Attached] = []
    for i, d in enumerate(requested):
        attached.append(_attached_disk(call, zone, name, i, d, attached))
    if not bool(attached[0].request.get("boot", True)):
        raise Invalid("resource.disks", "", message="Invalid value for field 'resource.disks': ''. "
                      "Exactly one boot disk must be specified, as the first disk.")
    _device_names(attached)
    return [a.spec for a in attached if a.row is None], attached


def _attached_disk(call: Call, zone: ZoneInfo, name: str, i: int, d: object, before: list[Attached]) -> Attached:
    field = f"resource.disks[{i}]"
    if not isinstance(d, dict):
        raise Invalid(field, d, "Must be an object.")
    boot = bool(d.get("boot", i == 0))
    _check_mode(d, i, boot, field)
    if d.get("source") and d.get("initializeParams"):
        raise Invalid(field, "source", "Only one of 'source' and 'initializeParams' may be given.")
    if d.get("source"):
        return _existing_disk(call, zone, d, field, before)
    if isinstance(d.get("initializeParams"), dict):
        return _new_disk(call, zone, d, boot, field, name if boot else f"{name}-{i}", before)
    raise Required(f"{field}.source")


def _check_mode(d: dict[str, Any], i: int, boot: bool, field: str) -> None:
    """The boot disk comes first and is READ_WRITE; every disk is PERSISTENT."""
    if boot and i != 0:
        raise Invalid(f"{field}.boot", True, "The boot disk must be the first disk.")
    if d.get("type", "PERSISTENT") != "PERSISTENT":
        raise Invalid(f"{field}.type", d.get("type"), "Only PERSISTENT disks are supported.")
    if d.get("mode", "READ_WRITE") not in ("READ_WRITE", "READ_ONLY"):
        raise Invalid(f"{field}.mode", d.get("mode"), "Must be READ_WRITE or READ_ONLY.")
    if boot and d.get("mode", "READ_WRITE") != "READ_WRITE":
        raise Invalid(f"{field}.mode", d.get("mode"), "The boot disk must be attached in READ_WRITE mode.")


def _existing_disk(call: Call, zone: ZoneInfo, d: dict[str, Any], field: str, before: list[Attached]) -> Attached:
    ref = parse_ref(d["source"], project=call.project, scope=f"zones/{zone.name}")
    if ref is None or ref.collection != "disks":
        raise Invalid(f"{field}.source", d["source"], "The URL is malformed.")
    if ref.scope != f"zones/{zone.name}":
        raise Invalid(f"{field}.source", d["source"], f"Disk must be in zone '{zone.name}'.")
    row = lock(call.session, store.find(call.session, ref.project, "disks", ref.scope, ref.name))
    check_attachable(call.session, row, d.get("mode", "READ_WRITE"))
    if any(a.row is not None and a.row.uid == row.uid for a in before):
        raise Invalid(f"{field}.source", d["source"], "The disk is already attached to this instance.")
    return Attached(d, row=row)


def _new_disk(call: Call, zone: ZoneInfo, d: dict[str, Any], boot: bool, field: str, default_name: str,
              before: list[Attached]) -> Attached:
    init = d["initializeParams"]
    if boot and not (init.get("sourceImage") or init.get("sourceSnapshot")):
        raise Required(f"{field}.initializeParams.sourceImage")
    disk_name = init.get("diskName") or default_name
    spec = disks.build(call, zone, name=disk_name, size_gb=init.get("diskSizeGb"), disk_type=init.get("diskType"),
                       source_image=init.get("sourceImage"), source_snapshot=init.get("sourceSnapshot"),
                       labels=init.get("labels"), description=init.get("description", ""),
                       field=f"{field}.initializeParams")
    if store.exists(call.session, call.project, "disks", f"zones/{zone.name}", disk_name):
        raise AlreadyExists(path_of(call.project, f"zones/{zone.name}", "disks", disk_name))
    if any(a.row is None and a.spec["name"] == disk_name for a in before):
        raise Invalid(f"{field}.initializeParams.diskName", disk_name, "Disk names must be unique.")
    return Attached(d, spec=spec)


def _device_names(attached: list[Attached]) -> None:
    """Each disk's device name: the one asked for, else the boot disk's name or persistent-disk-N."""
    devices: set[str] = set()
    for i, a in enumerate(attached):
        device = a.request.get("deviceName") or (a.disk_name if i == 0 else f"persistent-disk-{i}")
        if device in devices:
            raise Invalid(f"resource.disks[{i}].deviceName", device, "Device names must be unique.")
        devices.add(device)
        a.device = device


def check_attachable(session: Session, disk: Resource, mode: str) -> None:
    """A disk can be attached when it is READY and unused; READ_ONLY also beside READ_ONLY attachments."""
    path = path_of(disk.project, disk.scope, "disks", disk.name)
    DISKS.move(path, disk.status, ATTACH)
    disk_url = url_of(disk.project, disk.scope, "disks", disk.name)
    for user in store.body_of(disk).get("users", []):
        ref = parse_ref(user, project=disk.project)
        inst = store.find_optional(session, ref.project, "instances", ref.scope, ref.name) if ref else None
        read_write = inst is None or any(d["source"] == disk_url and d.get("mode", "READ_WRITE") != "READ_ONLY"
                                         for d in store.body_of(inst).get("disks", []))
        if mode != "READ_ONLY" or read_write:
            raise ResourceInUse("disk", path, user.split("/compute/v1/", 1)[-1])


# -- service accounts, scheduling -------------------------------------------------------------------


def service_accounts(project: Project, value: object) -> list[dict[str, Any]]:
    if not value:
        return []
    if not isinstance(value, list) or len(value) > 1:
        raise Invalid("resource.serviceAccounts", value, "Only one service account per VM instance is supported.")
    return [service_account(project, value[0] if isinstance(value[0], dict) else {}, "resource.serviceAccounts[0]")]


def service_account(project: Project, sa: dict[str, Any], field: str) -> dict[str, Any]:
    email = sa.get("email") or "default"
    if email == "default":
        email = projects.default_service_account(project)
    elif not isinstance(email, str) or "@" not in email:
        raise Invalid(f"{field}.email", email, "Must be a service account email address or 'default'.")
    scopes: list[str] = []
    for scope in sa.get("scopes") or []:
        # gcloud's aliases are expanded by gcloud; bare scope names are expanded here
        full = scope if "://" in scope else "https://www.googleapis.com/auth/" + scope
        if full not in scopes:
            scopes.append(full)
    return {"email": email, "scopes": scopes}


def scheduling(value: object, field: str = "resource.scheduling") -> dict[str, Any]:
    """The scheduling options with their defaults, which follow from the provisioning model."""
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
    if "instanceTerminationAction" in value:
        out["instanceTerminationAction"] = value["instanceTerminationAction"]
    return out
