"""What an instance's metadata server serves, read from the database in one go: the instance's
body, its project's number and common metadata, its disks' images and its subnets' gateways; and
the credentials it hands the guest (access tokens and ID tokens of the instance's service account).

The HTTP side (``gstack.metadata``) turns a :class:`GuestView` into GCE's ``computeMetadata/v1``
tree; it never reads the database itself.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from core import identity
from core.errors import NotFound
from core.identity import signing
from core.links import parse_ref
from core.models import GuestAttribute, Principal, Project, Resource, ResourceRevision
from core.prepared import Prepared
from core.resources import store
from core.services import addresses, guest_attributes, projects
from core.systemvms.guests import instances_holding

Sessions = sessionmaker[Session]


@dataclass(frozen=True)
class NicView:
    """One network interface as the guest sees it: the instance's own fields and its subnet's."""

    body: dict[str, Any]
    gateway: str
    netmask: str


@dataclass(frozen=True)
class GuestView:
    """Everything the metadata tree of one instance is made of, read in one transaction."""

    project: str
    project_number: int
    project_items: dict[str, str]
    zone: str
    uid: int
    status: str
    body: dict[str, Any]
    nics: list[NicView] = field(default_factory=list)
    # The boot disk's source image (``projects/P/global/images/I``), "" when it has none.
    image: str = ""
    guest_attributes: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def items(self) -> dict[str, str]:
        return metadata_items(self.body.get("metadata"))


def metadata_items(block: dict[str, Any] | None) -> dict[str, str]:
    return {item["key"]: item.get("value", "") for item in (block or {}).get("items", [])}


def guest_view(session: Session, project: str, zone: str, name: str) -> GuestView:
    """The instance ``name`` of ``project`` in ``zone`` as its metadata server serves it; NotFound
    when it does not exist (any more)."""
    p = projects.get(session, project)
    row = store.find(session, project, "instances", f"zones/{zone}", name)
    body = store.body_of(row)
    common = {item["key"]: item.get("value", "") for item in orjson.loads(p.common_metadata)}
    return GuestView(project=p.name, project_number=p.number, project_items=common, zone=zone, uid=row.uid,
                     status=row.status or body.get("status", ""), body=body,
                     nics=[_nic(session, project, nic) for nic in body.get("networkInterfaces", [])],
                     image=_boot_image(session, project, body),
                     guest_attributes=guest_attributes.values(session, row.uid))


# What a guest's view is made of that the API and the guest change, in one read (see view_stamp):
# the instance's revision (its body and status: setMetadata, setTags, stop, start...), its project's
# common metadata's fingerprint, and its guest attributes' count and latest write.
_BY_NAME = (Resource.project == bindparam("project"), Resource.collection == "instances",
            Resource.scope == bindparam("scope"), Resource.name == bindparam("name"))
_OF_GUEST = GuestAttribute.instance_uid == bindparam("uid")
_STAMP = Prepared(select(
    select(ResourceRevision.rev).join(Resource, Resource.pk == ResourceRevision.resource_pk).where(*_BY_NAME)
    .scalar_subquery(),
    select(Project.metadata_fingerprint).where(Project.name == bindparam("project")).scalar_subquery(),
    select(func.count(GuestAttribute.id)).where(_OF_GUEST).scalar_subquery(),
    select(func.max(GuestAttribute.updated)).where(_OF_GUEST).scalar_subquery()))


def view_stamp(sessions: Sessions, view: GuestView) -> tuple[Any, ...]:
    """A value that changes whenever the instance of ``view`` (its :class:`GuestView`) changes as
    the API or the guest changes it: a hanging GET looks at it several times a second and reads
    the whole view (~0.45 ms, several statements) only when it moved. Its subnetworks' and boot
    disk's parts are not in it (a subnetwork's expanded range): a wait sees those at its next
    full look (``gstack.metadata.waits.FULL_LOOK_INTERVAL``)."""
    rows = _STAMP.all(sessions.kw["bind"], {"project": view.project, "scope": f"zones/{view.zone}", "name": view.body.get("name"),
                               "uid": view.uid})
    return tuple(rows[0])


def instance_at(session: Session, network_url: str, ip: str) -> tuple[str, str, str] | None:
    """(project, zone, name) of the instance whose NIC on ``network_url`` has address ``ip``: who
    asks the metadata server, from the source address its virtual router saw (addresses are unique
    within a network, and only within one).

    The address's allocation in the pool of its subnetwork (the network's, whose range holds it)
    names its holder: the instance, or the static internal address it uses, whose users name the
    instance. A few index seeks for each request of each guest, where a test of every instance's
    body for the address and the network (a LIKE over the cloud's instances) cost more the more
    instances the cloud held."""
    ref = parse_ref(network_url, project="")
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if ref is None or ref.collection != "networks":
        return None
    for subnet, body in store.on_network(session, "subnetworks", network_url, project=ref.project):
        if address not in ipaddress.ip_network(body.get("ipCidrRange", "0.0.0.0/32")):
            continue
        owner = addresses.holder(session, addresses.subnet_pool(subnet), ip)
        for row in instances_holding(session, owner):
            if any(nic.get("network") == network_url and nic.get("networkIP") == ip
                   for nic in store.body_of(row).get("networkInterfaces", [])):
                return row.project, row.scope.split("/", 1)[1], row.name
    return None


def _nic(session: Session, project: str, nic: dict[str, Any]) -> NicView:
    ref = parse_ref(nic.get("subnetwork", ""), project=project)
    try:
        subnet = store.body_of(store.find(session, ref.project, "subnetworks", ref.scope, ref.name)) if ref else {}
    except NotFound:
        subnet = {}
    cidr = subnet.get("ipCidrRange")
    netmask = str(ipaddress.IPv4Network(cidr).netmask) if cidr else ""
    return NicView(nic, subnet.get("gatewayAddress", ""), netmask)


def _boot_image(session: Session, project: str, body: dict[str, Any]) -> str:
    boot = next((d for d in body.get("disks", []) if d.get("boot")), None)
    ref = parse_ref(boot.get("source", ""), project=project) if boot else None
    if ref is None:
        return ""
    try:
        disk = store.body_of(store.find(session, ref.project, "disks", ref.scope, ref.name))
    except NotFound:
        return ""
    image = disk.get("sourceImage", "")
    return image.split("/compute/v1/", 1)[-1] if image else ""


# -- the instance's service account --------------------------------------------------------------------


class NoSuchAccount(LookupError):
    """The instance names a service account that does not exist (or is disabled)."""


def account(session: Session, project: str, email: str) -> Principal:
    """The service account ``email``; the project's default compute account is made on first use,
    as GCE makes ``PROJECT_NUMBER-compute@developer.gserviceaccount.com`` (an editor of the project)
    when the Compute Engine API is first enabled."""
    principal = session.scalar(select(Principal).where(Principal.email == email))
    if principal is None:
        p = session.scalar(select(Project).where(Project.name == project))
        if p is None or email != projects.default_service_account(p):
            raise NoSuchAccount(email)
        principal = Principal(kind="serviceAccount", email=email, display_name="Compute Engine default service account",
                              project_id=p.id, created=time.time())
        session.add(principal)
        session.flush()
        identity.grant(session, p, principal, "roles/editor")
    if principal.disabled or principal.kind != "serviceAccount":
        raise NoSuchAccount(email)
    return principal


def access_token(session: Session, project: str, email: str, scopes: list[str]) -> tuple[str, int]:
    """A new access token of the service account with exactly ``scopes`` and its lifetime (seconds),
    in the caller's write transaction."""
    return identity.issue_token(session, account(session, project, email), scopes, client_id="metadata-server")


def id_token(session: Session, view: GuestView, email: str, issuer: str, audience: str, full: bool) -> str:
    """A signed ID token of the service account for ``audience`` (the ``identity`` endpoint); the
    ``full`` format adds the ``google.compute_engine`` claims that tell which instance asked."""
    principal = account(session, view.project, email)
    subject = identity.subject_id(principal)
    if not full:
        return signing.sign_id_token(session, issuer, subject, email, audience)
    engine = {"project_id": view.project, "project_number": view.project_number, "zone": view.zone,
              "instance_id": str(view.uid), "instance_name": view.body.get("name", ""),
              "instance_creation_timestamp": _epoch(view.body.get("creationTimestamp", ""))}
    return signing.sign_id_token(session, issuer, subject, email, audience, google={"compute_engine": engine})


def _epoch(rfc3339: str) -> int:
    try:
        return int(datetime.fromisoformat(rfc3339).timestamp())
    except ValueError:
        return 0
