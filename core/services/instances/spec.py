"""Request bodies of instances: the machine type, network interfaces, attached disks, scheduling,
service accounts and hostname, each validated with GCE's exact errors before anything is written.

One function per field (and per kind of disk, per NIC field): a rule is found by the field it checks.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, union_all
from sqlalchemy.orm import Session

from core import catalog, ipam
from core.catalog import MachineType, platforms
from core.errors import AlreadyExists, Invalid, Required, ResourceInUse
from core.links import parse_ref, path_of, url_of
from core.models import Host, Project, Resource
from core.prepared import warmed
from core.resources import store
from core.resources.context import Call
from core.services import disks, images, projects, region_disks, shared_vpc, subnetworks, vpc
from core.services.instances.reads import RegionReads, network_read
from core.services.instances.rows import lock
from core.services.metadata import (
    label_fingerprint,
    metadata_block,
    tags_block,
    validate_items,
    validate_labels,
    validate_tags,
)
from core.services.storage_states import ATTACH, DISKS, usable
from core.services.topology import ZoneInfo, get_machine_type

ACCESS_CONFIG_TYPES = {"ONE_TO_ONE_NAT"}
_EXTERNAL = ipaddress.ip_network(ipam.EXTERNAL_RANGE)
_HOSTNAME_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_HOSTNAME_LABEL}(?:\.{_HOSTNAME_LABEL})+\Z")
# A project's subnetworks in a region, by name; and a network read with them (see :mod:`.reads`).
_SUBNETS = network_read("project", "name", "scope")[1].order_by(Resource.name)
_NETWORK_AND_SUBNETS = warmed(select(Resource).from_statement(
    union_all(*network_read("project", "name", "scope")).order_by("collection", "name")))
_NEEDS_SUBNET = "Invalid value for field '{field}.subnetwork': ''. "
_NOT_URL = "{kind} '{value}' must be a valid resource name (not an url)."


@dataclass(frozen=True)
class Where:
    """Where a body is checked: an instance's body in ``zone`` (its fields under ``resource``), or an
    instance template's ``properties`` (under ``resource.properties``), global or in ``region``.

    The rules are the same; a template has no zone, so what lives in a zone (machine types, disk
    types, disks) is named, not linked, and is resolved when an instance is made from it."""

    prefix: str = "resource"
    zone: ZoneInfo | None = None
    region: str | None = None

    @classmethod
    def of(cls, zone: ZoneInfo) -> Where:
        return cls("resource", zone, zone.region.name)

    @classmethod
    def template(cls, region: str | None) -> Where:
        return cls("resource.properties", None, region)

    def field(self, name: str) -> str:
        return f"{self.prefix}.{name}"


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


def template_machine_type(value: object, field: str = "resource.properties.machineType") -> MachineType:
    """A template's machine type: a name (it has no zone to link to) of a type the catalog knows."""
    if not value:
        raise Required(field)
    if not isinstance(value, str) or "/" in value:
        raise Invalid(field, value, _NOT_URL.format(kind="MachineType", value=value))
    try:
        found = catalog.machine_type(value)
    except Invalid as e:  # the catalog words it for an instance's body
        raise Invalid(field, message=e.message.replace("'resource.machineType'", f"'{field}'")) from None
    if found is None:
        raise Invalid(field, value, "Instance properties must provide existing machine type.")
    return found


_ZONE_PLATFORMS = select(Host.cpu_platform).where(Host.zone_id == bindparam("zone_id"))


def cpu_platform(session: Session, zone: ZoneInfo, value: object, field: str = "resource.minCpuPlatform") -> str | None:
    """The minimum CPU platform asked for (None: ``Automatic``, any), one that a host of the zone is
    at or above (see :mod:`core.catalog.platforms`); GCE's refusal lists the ones that are."""
    if value in (None, "", platforms.AUTOMATIC):
        return None
    offered = platforms.minimums_offered(set(session.scalars(_ZONE_PLATFORMS, {"zone_id": zone.id})))
    if not isinstance(value, str) or value not in offered:
        raise Invalid(field, value, "CPU platform unavailable in requested zone. Valid options for this zone are: "
                      f"{', '.join(offered)}.")
    return value


def hostname(value: object, field: str = "resource.hostname") -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 253 or not _HOSTNAME.match(value):
        raise Invalid(field, value, "The hostname must be a fully qualified DNS name: at least two "
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


def network_interfaces(call: Call, zone: ZoneInfo, nics: object, reads: RegionReads | None = None) -> list[ParsedNic]:
    """An instance's NICs; the default network (and its subnetwork in the zone's region) when none
    is named. ``reads``: what the caller read of the region already (see :mod:`.reads`)."""
    where = Where.of(zone)
    out: list[ParsedNic] = []
    reads = reads or RegionReads()
    for i, nic in enumerate(_nic_list(where, nics)):
        field = where.field(f"networkInterfaces[{i}]")
        network, subnet = _nic(call, where, nic, field, [p.network_url for p in out], reads)
        if subnet is None:
            subnet = _default_subnet(call, zone.region.name, network, field, reads.subnets.get(network.project))
            if nic.get("networkIP"):
                vpc.host_address(nic["networkIP"], store.body_of(subnet)["ipCidrRange"], f"{field}.networkIP")
        out.append(ParsedNic(network, subnet, nic))
    return out


def template_interfaces(call: Call, where: Where, nics: object) -> list[dict[str, Any]]:
    """A template's NICs as it stores them, checked by the instance's rules: links made canonical, the
    default network filled in, no subnetwork chosen (that is done per instance)."""
    out: list[dict[str, Any]] = []
    for i, nic in enumerate(_nic_list(where, nics)):
        field = where.field(f"networkInterfaces[{i}]")
        network, subnet = _nic(call, where, nic, field, [n["network"] for n in out])
        if subnet is None and where.region is not None:
            _default_subnet(call, where.region, network, field)
        stored = {"kind": "compute#networkInterface", **nic, "name": f"nic{i}",
                  "network": url_of(network.project, "global", "networks", network.name)}
        if subnet is not None:
            stored["subnetwork"] = url_of(subnet.project, subnet.scope, "subnetworks", subnet.name)
        stored["accessConfigs"] = [{"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": "External NAT",
                                    "networkTier": "PREMIUM", **ac} for ac in nic.get("accessConfigs") or []]
        if not stored["accessConfigs"]:
            del stored["accessConfigs"]
        out.append(stored)
    return out


def _nic_list(where: Where, nics: object) -> list[Any]:
    if nics is None:
        return [{}]
    if not isinstance(nics, list) or not nics:
        raise Invalid(where.field("networkInterfaces"), nics, "At least one network interface is required.")
    if len(nics) > 8:
        raise Invalid(where.field("networkInterfaces"), len(nics), "At most 8 network interfaces are allowed.")
    return nics


def _nic(call: Call, where: Where, nic: object, field: str, before: list[str],
         reads: RegionReads | None = None) -> tuple[Resource, Resource | None]:
    """(network, the subnetwork named or None), every rule of a NIC checked that needs no chosen subnetwork.
    ``reads``: where the network is read with the subnetworks in ``where``'s region of its project
    (see :func:`_find_network`)."""
    if not isinstance(nic, dict):
        raise Invalid(field, nic, "Must be an object.")
    subnet = _named_subnet(call, where, nic, field, reads)
    network = _network(call, nic, subnet, field, where.region, reads)
    net_url = url_of(network.project, "global", "networks", network.name)
    if subnet is not None and store.body_of(subnet)["network"] != net_url:
        raise Invalid(f"{field}.subnetwork", nic.get("subnetwork"), "The subnetwork does not belong to the network.")
    if net_url in before:
        raise Invalid(f"{field}.network", net_url, "Networks must be distinct for NICs attached to a VM.")
    if subnet is None and not store.body_of(network).get("autoCreateSubnetworks"):
        raise Invalid(f"{field}.subnetwork", None, message=_NEEDS_SUBNET.format(field=field) +
                      "Subnetwork should be specified for custom subnetmode network")
    if nic.get("networkIP") and subnet is not None:
        vpc.host_address(nic["networkIP"], store.body_of(subnet)["ipCidrRange"], f"{field}.networkIP")
    _access_configs(nic.get("accessConfigs") or [], field)
    return network, subnet


def _named_subnet(call: Call, where: Where, nic: dict[str, Any], field: str,
                  reads: RegionReads | None = None) -> Resource | None:
    """The subnetwork named: in the instance's (or regional template's) region; a global template's
    may be in any region, so it must say which. ``reads``: the region's subnetworks of the projects
    the caller read them of (taken from there, not read again)."""
    if not nic.get("subnetwork"):
        return None
    region = where.region
    ref = parse_ref(nic["subnetwork"], project=call.project, scope=f"regions/{region}" if region else None)
    if ref is None or ref.collection != "subnetworks" or not ref.scope.startswith("regions/"):
        raise Invalid(f"{field}.subnetwork", nic["subnetwork"], "The URL is malformed.")
    if region is not None and ref.scope != f"regions/{region}":
        raise Invalid(f"{field}.subnetwork", nic["subnetwork"], f"Subnetwork must be in region '{region}'.")
    shared_vpc.check_network_use(call, ref.project, f"{field}.subnetwork", nic["subnetwork"])
    subnet = reads.subnet(ref.project, ref.name) if reads is not None and region is not None else None
    subnet = subnet or store.find(call.session, ref.project, "subnetworks", ref.scope, ref.name)
    subnetworks.check_for_instances(subnet, f"{field}.subnetwork", nic["subnetwork"])
    return subnet


def _network(call: Call, nic: dict[str, Any], subnet: Resource | None, field: str, region: str | None = None,
             reads: RegionReads | None = None) -> Resource:
    """The network named, else the subnetwork's, else the project's ``default``."""
    if nic.get("network"):
        ref = parse_ref(nic["network"], project=call.project, scope="global")
        if ref is None or ref.collection != "networks":
            raise Invalid(f"{field}.network", nic["network"], "The URL is malformed.")
        shared_vpc.check_network_use(call, ref.project, f"{field}.network", nic["network"])
        return _find_network(call.session, ref.project, ref.name, region, reads)
    if subnet is not None:
        return store.find(call.session, subnet.project, "networks", "global",
                          store.body_of(subnet)["network"].rsplit("/", 1)[-1])
    return _find_network(call.session, call.project, "default", region, reads)


def _find_network(session: Session, project: str, name: str, region: str | None,
                  reads: RegionReads | None) -> Resource:
    """The network, as :func:`~core.resources.store.find` finds it; given a region and ``reads``,
    the project's subnetworks in that region are read with it (one statement, not two: a NIC that
    names no subnetwork gets its network's in the region, :func:`_default_subnet`), unless the
    caller read them already."""
    if region is None or reads is None:
        return store.find(session, project, "networks", "global", name)
    if (project, name) not in reads.networks:
        reads.add(project, name, session.scalars(_NETWORK_AND_SUBNETS, {"project": project, "name": name,
                                                                         "scope": f"regions/{region}"}))
    return reads.networks[(project, name)] or store.find(session, project, "networks", "global", name)  # by id


def _default_subnet(call: Call, region: str, network: Resource, field: str,
                    subnets: list[Resource] | None = None) -> Resource:
    """The auto-mode network's subnetwork in the region (a custom-mode one needs it named, see :func:`_nic`).
    ``subnets``: the network's project's subnetworks in the region, by name, when the caller read them."""
    net_url = url_of(network.project, "global", "networks", network.name)
    if subnets is None:
        subnets = list(call.session.scalars(_SUBNETS, {"project": network.project, "scope": f"regions/{region}"}))
    found = next((s for s in subnets if store.body_of(s)["network"] == net_url), None)
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
    new one (see :func:`core.services.disks.build`); ``device`` is its device name. In a template,
    neither: the disk is only named (``spec["name"]``)."""

    request: dict[str, Any]
    row: Resource | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    device: str = ""

    @property
    def disk_name(self) -> str:
        return self.row.name if self.row is not None else str(self.spec["name"])


def attached_disks(call: Call, where: Where, name: str, requested: object,
                   taken: dict[str, bool] | None = None) -> tuple[list[dict[str, Any]], list[Attached]]:
    """Validate ``disks`` (of an instance, or of a template's properties): returns (new disk specs, the
    attached disks in order). ``taken``: whether each name of :func:`new_disk_names` is a disk of the
    zone already, when the caller looked (else each new disk's name is looked up)."""
    if not isinstance(requested, list) or not requested:
        raise Required(where.field("disks"))
    attached: list[Attached] = []
    for i, d in enumerate(requested):
        attached.append(_attached_disk(call, where, name, i, d, attached, taken or {}))
    if not bool(attached[0].request.get("boot", True)):
        raise Invalid(where.field("disks"), "", message=f"Invalid value for field '{where.field('disks')}': ''. "
                      "Exactly one boot disk must be specified, as the first disk.")
    _device_names(where, attached)
    return [a.spec for a in attached if a.row is None and where.zone is not None], attached


def new_disk_names(name: str, requested: object) -> list[str]:
    """The names of the new disks an instance named ``name`` asks for in ``disks`` (those it can
    be told: a malformed entry is left to :func:`attached_disks` to refuse)."""
    if not isinstance(requested, list):
        return []
    names = []
    for i, d in enumerate(requested):
        init = d.get("initializeParams") if isinstance(d, dict) else None
        if isinstance(init, dict):
            disk_name = init.get("diskName") or (name if d.get("boot", i == 0) else f"{name}-{i}")
            if isinstance(disk_name, str):
                names.append(disk_name)
    return names


def boot_image(requested: object) -> object:
    """The ``sourceImage`` a new boot disk asks for in ``disks``, if it can be told (a malformed
    entry is left to :func:`attached_disks` to refuse)."""
    first = requested[0] if isinstance(requested, list) and requested else None
    init = first.get("initializeParams") if isinstance(first, dict) and first.get("boot", True) else None
    return init.get("sourceImage") if isinstance(init, dict) else None


def _attached_disk(call: Call, where: Where, name: str, i: int, d: object, before: list[Attached],
                   taken: dict[str, bool]) -> Attached:
    field = where.field(f"disks[{i}]")
    if not isinstance(d, dict):
        raise Invalid(field, d, "Must be an object.")
    boot = bool(d.get("boot", i == 0))
    _check_mode(d, i, boot, field)
    if d.get("source") and d.get("initializeParams"):
        raise Invalid(field, "source", "Only one of 'source' and 'initializeParams' may be given.")
    if d.get("source"):
        if where.zone is None:
            return _named_disk(d, field, before)
        return _existing_disk(call, where.zone, d, field, before)
    if isinstance(d.get("initializeParams"), dict):
        default_name = name if boot else f"{name}-{i}"
        if where.zone is None:
            return _template_new_disk(call, d, boot, f"{field}.initializeParams", default_name)
        return _new_disk(call, where.zone, d, boot, field, default_name, before, taken)
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
    if ref.scope != f"zones/{zone.name}" and not region_disks.attachable_in(call.session, ref, zone.name):
        raise Invalid(f"{field}.source", d["source"], f"Disk must be in zone '{zone.name}'.")
    projects.own(call, ref)  # another project's disks are not visible, let alone attachable
    row = lock(call.session, store.find(call.session, ref.project, "disks", ref.scope, ref.name))
    check_attachable(call.session, row, d.get("mode", "READ_WRITE"))
    if any(a.row is not None and a.row.uid == row.uid for a in before):
        raise Invalid(f"{field}.source", d["source"], "The disk is already attached to this instance.")
    return Attached(d, row=row)


def _named_disk(d: dict[str, Any], field: str, before: list[Attached]) -> Attached:
    """An existing disk in a template: its name (GCE: "specify the disk name, not the URL"), found in
    the zone of each instance made from the template."""
    value = d["source"]
    if not isinstance(value, str) or "/" in value:
        raise Invalid(f"{field}.source", value, _NOT_URL.format(kind="Disk", value=value))
    store.validate_name(value, f"{field}.source")
    if any(a.request.get("source") == value for a in before):
        raise Invalid(f"{field}.source", value, "The disk is already attached to this instance.")
    return Attached(d, spec={"name": value})


def _new_disk(call: Call, zone: ZoneInfo, d: dict[str, Any], boot: bool, field: str, default_name: str,
              before: list[Attached], taken: dict[str, bool]) -> Attached:
    init = d["initializeParams"]
    if boot and not (init.get("sourceImage") or init.get("sourceSnapshot")):
        raise Required(f"{field}.initializeParams.sourceImage")
    disk_name = init.get("diskName") or default_name
    spec = disks.build(call, zone, name=disk_name, size_gb=init.get("diskSizeGb"), disk_type=init.get("diskType"),
                       source_image=init.get("sourceImage"), source_snapshot=init.get("sourceSnapshot"),
                       labels=init.get("labels"), description=init.get("description", ""),
                       field=f"{field}.initializeParams")
    exists = taken.get(disk_name) if isinstance(disk_name, str) else None
    if exists is None:
        exists = store.exists(call.session, call.project, "disks", f"zones/{zone.name}", disk_name)
    if exists:
        raise AlreadyExists(path_of(call.project, f"zones/{zone.name}", "disks", disk_name))
    if any(a.row is None and a.spec["name"] == disk_name for a in before):
        raise Invalid(f"{field}.initializeParams.diskName", disk_name, "Disk names must be unique.")
    return Attached(d, spec=spec)


def _template_new_disk(call: Call, d: dict[str, Any], boot: bool, field: str, default_name: str) -> Attached:
    """A new disk in a template: the checks of :func:`core.services.disks.build` that need no zone (the
    disk type is a name; its image or snapshot must exist and fit in the size asked for)."""
    init = d["initializeParams"]
    if boot and not (init.get("sourceImage") or init.get("sourceSnapshot")):
        raise Required(f"{field}.sourceImage")
    disk_name = store.validate_name(init.get("diskName") or default_name, f"{field}.diskName")
    dtype = init.get("diskType")
    if dtype and (not isinstance(dtype, str) or "/" in dtype):
        raise Invalid(f"{field}.diskType", dtype, _NOT_URL.format(kind="DiskType", value=dtype))
    if dtype and dtype not in catalog.DISK_TYPES:
        raise Invalid(f"{field}.diskType", dtype, "Instance properties must provide existing disk type.")
    size = disks.parse_size(init.get("diskSizeGb"), f"{field}.diskSizeGb")
    if init.get("sourceImage") and init.get("sourceSnapshot"):
        raise Invalid(f"{field}.sourceSnapshot", init["sourceSnapshot"],
                      "Only one of 'sourceImage' and 'sourceSnapshot' may be given.")
    source = None
    if init.get("sourceImage"):
        img = images.resolve(call.session, init["sourceImage"], call.project, f"{field}.sourceImage")
        source = usable(img, path_of(img.project, "global", "images", img.name))
    elif init.get("sourceSnapshot"):
        source = images.find_source(call.session, init["sourceSnapshot"], call.project, f"{field}.sourceSnapshot",
                                    "snapshots")
    if source is not None and size is not None and source.size_gb and size < source.size_gb:
        raise Invalid(f"{field}.diskSizeGb", size, f"Requested disk size cannot be smaller than the "
                      f"{'image' if init.get('sourceImage') else 'snapshot'} size ({source.size_gb} GB)")
    validate_labels(init.get("labels"), f"{field}.labels")
    return Attached(d, spec={"name": disk_name})


def _device_names(where: Where, attached: list[Attached]) -> None:
    """Each disk's device name: the one asked for, else the boot disk's name or persistent-disk-N."""
    devices: set[str] = set()
    for i, a in enumerate(attached):
        device = a.request.get("deviceName") or (a.disk_name if i == 0 else f"persistent-disk-{i}")
        if device in devices:
            raise Invalid(where.field(f"disks[{i}].deviceName"), device, "Device names must be unique.")
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


def fields(project: Project, body: dict[str, Any], where: Where) -> dict[str, Any]:
    """The body fields that are validated values of the request (metadata, labels, tags, ...), shared
    by an instance and a template's properties."""
    items = validate_items((body.get("metadata") or {}).get("items"), where.field("metadata.items"))
    labels = validate_labels(body.get("labels"), where.field("labels"))
    tags = validate_tags((body.get("tags") or {}).get("items"), where.field("tags.items"))
    sched = scheduling(body.get("scheduling"), where.field("scheduling"))
    accounts = service_accounts(project, body.get("serviceAccounts"), where.prefix)
    return {"tags": tags_block(tags), "metadata": metadata_block(items), "serviceAccounts": accounts,
            "scheduling": sched, "labels": labels, "labelFingerprint": label_fingerprint(labels)}


def service_accounts(project: Project, value: object, prefix: str = "resource") -> list[dict[str, Any]]:
    if not value:
        return []
    if not isinstance(value, list) or len(value) > 1:
        raise Invalid(f"{prefix}.serviceAccounts", value, "Only one service account per VM instance is supported.")
    return [service_account(project, value[0] if isinstance(value[0], dict) else {}, f"{prefix}.serviceAccounts[0]")]


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
