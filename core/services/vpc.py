"""What the VPC collections share: references to networks and subnetworks in request bodies, IPv4
ranges, finding the resources that use another one, and telling a network's virtual router that
its configuration changed."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import ipam
from core.errors import Invalid, Required
from core.links import Ref, parse_ref, path_of, url_of
from core.models import Resource
from core.resources import store
from core.resources.context import Call
from core.resources.store import Body
from core.services import projects, topology
from core.systemvms import peering
from core.systemvms.sync import request_sync

# Ranges a subnetwork may use: RFC 1918, shared address space (RFC 6598), the IETF protocol and
# documentation blocks and the reserved 240/4, as GCE allows. 198.18.0.0/15 is not among them:
# gstack hands out external addresses from it.
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(r) for r in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24",
    "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4"))
EXTERNAL = ipaddress.IPv4Network(ipam.EXTERNAL_RANGE)
SMALLEST_PREFIX, LARGEST_PREFIX = 29, 8


def notify_router(session: Session, project: str, network_url: str, *, peers: bool = False) -> None:
    """Ask the virtual router of ``network_url`` to render its configuration again, in this transaction;
    with ``peers``, those of its ACTIVE peers too (a change of its ranges or routes, which they import)."""
    request_sync(session, project, network_url)
    for peer_url in peering.active_peers(session, network_url) if peers else []:
        request_sync(session, project, peer_url)


def region_scope(session: Session, project: str, region: str) -> str:
    """``regions/R`` of an existing region; 404 otherwise."""
    return f"regions/{topology.region(session, project, region).name}"


def relative(url: str) -> str:
    """``projects/P/...`` of a stored canonical URL (as error messages quote resources)."""
    return url.split("/compute/v1/", 1)[-1]


def reference(call: Call, value: object, field: str, collection: str, scope: str | None = None) -> Ref:
    """A reference in a request body to a resource of this project: full URL, ``projects/P/...`` or
    scope-relative (``global/networks/N``, ``regions/R/subnetworks/S``)."""
    if value is None or value == "":
        raise Required(field)
    ref = parse_ref(value, project=call.project, scope=scope) if isinstance(value, str) else None
    if ref is None or ref.collection != collection:
        raise Invalid(field, value, "The URL is malformed.")
    if ref.project != call.project:
        raise Invalid(field, value, f"Cross-project references are not supported: use a {collection[:-1]} "
                                    f"of project '{call.project}'.")
    return ref


def network(call: Call, value: object, field: str = "resource.network", *, lock: bool = False) -> Resource:
    """The network a body names (404 when it does not exist); row-locked with ``lock`` so that it
    cannot be deleted while something that uses it is being created."""
    ref = reference(call, value, field, "networks", "global")
    if ref.scope != "global":
        raise Invalid(field, value, "The URL is malformed.")
    if lock:
        return projects.find_for_update(call.session, ref.project, "networks", "global", ref.name)
    return store.find(call.session, ref.project, "networks", "global", ref.name)


def network_url(res: Resource) -> str:
    return url_of(res.project, "global", "networks", res.name)


def url(res: Resource) -> str:
    return url_of(res.project, res.scope, res.collection, res.name)


def path(res: Resource) -> str:
    return path_of(res.project, res.scope, res.collection, res.name)


def referring(session: Session, project: str, field: str, target_url: str, collections: Iterable[str]) -> list[Resource]:
    """The project's resources of ``collections`` whose body holds ``"field":"target_url"`` (at any depth).

    Stored bodies are compact JSON with canonical links, so one substring test finds the users of a
    resource without parsing every body.
    """
    needle = f'"{field}":"{target_url}"'
    return list(session.scalars(select(Resource).where(
        Resource.project == project, Resource.collection.in_(tuple(collections)),
        Resource.body.contains(needle, autoescape=True)).order_by(Resource.collection, Resource.name)))


def mentioning(session: Session, project: str, target_url: str, collections: Iterable[str]) -> list[Resource]:
    """The project's resources of ``collections`` that name ``target_url`` anywhere (also in lists)."""
    return list(session.scalars(select(Resource).where(
        Resource.project == project, Resource.collection.in_(tuple(collections)),
        Resource.body.contains(f'"{target_url}"', autoescape=True)).order_by(Resource.collection, Resource.name)))


def cidr(value: object, field: str) -> ipaddress.IPv4Network:
    """A subnetwork range: an IPv4 CIDR block in private space, between /8 and /29."""
    if value is None or value == "":
        raise Required(field)
    try:
        net = ipaddress.IPv4Network(value) if isinstance(value, str) else None
    except ValueError:
        net = None
    if net is None or not isinstance(value, str) or "/" not in value:
        raise Invalid(field, value, f"Invalid IPCidrRange: {value} is not a valid IPv4 CIDR range with its host "
                                    "bits set to zero.")
    if not LARGEST_PREFIX <= net.prefixlen <= SMALLEST_PREFIX:
        raise Invalid(field, value, f"Invalid IPCidrRange: {value}. The prefix length must be between "
                                    f"/{LARGEST_PREFIX} and /{SMALLEST_PREFIX}.")
    if net.overlaps(EXTERNAL) or not any(net.subnet_of(r) for r in PRIVATE_RANGES):
        raise Invalid(field, value, f"Invalid IPCidrRange: {value} is not in a private address range "
                                    "(10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 ...).")
    return net


def _ipv4(value: object, field: str) -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.IPv4Address(value) if isinstance(value, str) else None
    except ValueError:
        ip = None
    if ip is None:
        raise Invalid(field, value, "Must be an IPv4 address.")
    return ip


def host_address(value: object, block: str, field: str) -> str:
    """An address chosen in a subnetwork: IPv4, in ``block``, not one GCE reserves (the network and
    gateway addresses, the second-to-last and the broadcast address)."""
    net = ipaddress.IPv4Network(block)
    ip = _ipv4(value, field)
    if ip not in net:
        raise Invalid(field, value, f"The address is not in the subnetwork's range {block}.")
    if int(ip) - int(net.network_address) < 2 or int(net.broadcast_address) - int(ip) < 2:
        raise Invalid(field, value, f"The address is reserved in the subnetwork's range {block}.")
    return str(ip)


def external_address(value: object, field: str) -> str:
    """An external IPv4 address gstack can hand out (it owns :data:`core.ipam.EXTERNAL_RANGE`)."""
    ip = _ipv4(value, field)
    net = ipaddress.IPv4Network(ipam.EXTERNAL_RANGE)
    if ip not in net or int(ip) - int(net.network_address) < 2 or int(net.broadcast_address) - int(ip) < 2:
        raise Invalid(field, value, f"The address is not available: external addresses come from "
                                    f"{ipam.EXTERNAL_RANGE}.")
    return str(ip)


def integer(value: object, field: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Invalid(field, value, f"Must be an integer between {low} and {high}.")
    try:
        number = int(value)
    except ValueError:
        raise Invalid(field, value, f"Must be an integer between {low} and {high}.") from None
    if not low <= number <= high:
        raise Invalid(field, value, f"Must be between {low} and {high}.")
    return number


OUTPUT_ONLY = frozenset({"kind", "id", "creationTimestamp", "selfLink", "selfLinkWithId", "region", "status",
                         "users", "fingerprint", "labelFingerprint"})


def merge_patch(current: Body, patch: Body) -> Body:
    """RFC 7396 JSON merge patch (what GCE's PATCH methods apply): objects merge, ``null`` removes."""
    out = dict(current)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = merge_patch(out[key] if isinstance(out.get(key), dict) else {}, value)
        else:
            out[key] = value
    return out
