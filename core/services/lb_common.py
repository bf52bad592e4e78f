"""What the HTTP(S) load-balancing collections share (backend services, url maps, target HTTP(S)
proxies, SSL certificates and policies, the forwarding rules that front them).

Each of those collections exists twice in GCE, global and regional (``backendServices`` and
``regionBackendServices`` ...). gstack stores both in one collection, told apart by scope
(``global`` or ``regions/R``), as addresses and forwarding rules are: the selfLinks come out as
GCE's, and a reference is checked to be in the scope its user may use.

Every change of the chain can move traffic, so it asks the routers of the backends' networks to
render again: the networks the project's backend services reach before the change and after it
(:func:`networks_in_use`, :func:`notify`). Reading every backend service of the project costs a few
rows; tracing which rule a change reaches would cost more code than it saves.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.errors import AlreadyExists, Invalid, Required, ResourceInUse
from core.ids import fingerprint
from core.links import parse_ref, path_of, url_of
from core.models import InstanceGroupMember, Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import metadata, projects, vpc

GROUP_COLLECTIONS = ("instanceGroups",)


def scope_of(call: Call, region: str | None) -> str:
    """``global``, or ``regions/R`` of an existing region (404 otherwise)."""
    return "global" if region is None else vpc.region_scope(call.session, call.project, region)


def new_name(call: Call, collection: str, scope: str, body: Body) -> str:
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    if store.exists(call.session, call.project, collection, scope, name):
        raise AlreadyExists(path_of(call.project, scope, collection, name))
    return name


def begin(call: Call, res: Resource, op_type: str) -> Operation:
    return operations.begin(call, scope=res.scope, op_type=op_type, target_path=vpc.path(res), target_id=res.uid)


def find(call: Call, collection: str, scope: str, name: str) -> Resource:
    """The resource of this call's project, row-locked (a change and a delete take turns)."""
    return projects.find_for_update(call.session, call.project, collection, scope, name)


def referenced(call: Call, value: object, field: str, collection: str, scope: str, *,
               same_scope: bool = True) -> Resource:
    """The resource a body names, row-locked so that it cannot be deleted while this change makes it
    used. A regional resource refers to resources of its own region, a global one to global ones
    (``same_scope``); GCE refuses a mix with this message."""
    ref = vpc.reference(call, value, field, collection, scope)
    if same_scope and ref.scope != scope:
        where = "global" if scope == "global" else f"region '{scope.split('/', 1)[1]}'"
        raise Invalid(field, value, f"The {collection[:-1]} must be {where}: a "
                                    f"{'global' if scope == 'global' else 'regional'} resource can only refer to "
                                    f"{'global' if scope == 'global' else 'regional'} resources of the same scope.")
    return projects.find_for_update(call.session, ref.project, ref.collection, ref.scope, ref.name)


def users(session: Session, project: str, target: Resource, collections: tuple[str, ...]) -> list[Resource]:
    """The project's resources of ``collections`` whose body names ``target`` anywhere."""
    return vpc.mentioning(session, project, vpc.url(target), collections)


def refuse_if_used(session: Session, kind: str, target: Resource, collections: tuple[str, ...]) -> None:
    """GCE's resourceInUseByAnotherResource, naming the first user."""
    found = users(session, target.project, target, collections)
    if found:
        raise ResourceInUse(kind, vpc.path(target), vpc.path(found[0]))


def set_fingerprint(body: Body, kind: str) -> None:
    """Give the body a fingerprint over its other fields (it changes whenever they do)."""
    body["fingerprint"] = fingerprint([kind, {k: v for k, v in body.items() if k != "fingerprint"}])


def save(res: Resource, body: Body, order: tuple[str, ...], kind: str) -> None:
    """Store the body, its fields in GCE's ``order``, with a new fingerprint."""
    ordered = {k: body[k] for k in order if k in body}
    set_fingerprint(ordered, kind)
    store.save(res, ordered)


def check_fingerprint(given: object, current: Body) -> None:
    """An update or patch carrying a fingerprint must carry the current one (optimistic locking; GCE's
    412 conditionNotMet); one without a fingerprint applies, as the field is optional."""
    metadata.check_fingerprint(given, current.get("fingerprint", ""), allow_missing=True)


def group_rows(session: Session, group_urls: list[str]) -> list[Resource]:
    out = []
    for url in group_urls:
        ref = parse_ref(url, project="")
        row = store.find_optional(session, ref.project, ref.collection, ref.scope, ref.name) if ref else None
        if row is not None:
            out.append(row)
    return out


def networks_in_use(session: Session, project: str) -> set[str]:
    """The networks of every instance group a backend service of the project balances to."""
    bodies = session.scalars(select(Resource.body).where(Resource.project == project,
                                                         Resource.collection == "backendServices"))
    groups = sorted({b["group"] for body in bodies for b in orjson.loads(body).get("backends") or []})
    return {n for g in group_rows(session, groups) if (n := store.body_of(g).get("network"))}


def notify(session: Session, project: str, before: set[str]) -> None:
    """Ask the routers of the networks that served the chain before a change, and of those that serve
    it now, to render again (in the caller's transaction)."""
    for network in sorted(before | networks_in_use(session, project)):
        vpc.notify_router(session, project, network)


class Member(NamedTuple):
    uid: int
    url: str
    status: str
    ip: str | None


_MEMBERS = (select(Resource.uid, Resource.project, Resource.scope, Resource.name, Resource.status, Resource.body)
            .join(InstanceGroupMember, InstanceGroupMember.instance_uid == Resource.uid)
            .where(InstanceGroupMember.group_uid == bindparam("group")).order_by(Resource.name))


def member_addresses(session: Session, group: Resource) -> list[Member]:
    """Each member of an instance group, by name, with the address of its first interface."""
    out = []
    for uid, project, scope, name, status, body in session.execute(_MEMBERS, {"group": group.uid}):
        nics = orjson.loads(body).get("networkInterfaces") or [{}]
        out.append(Member(uid, url_of(project, scope, "instances", name), status, nics[0].get("networkIP")))
    return out
