"""disks/instances add/removeResourcePolicies, and the ``resourcePolicies`` of a new disk or instance.

A follower (disk or instance) keeps the policies' links in its ``resourcePolicies`` field, as GCE
shows them; that field is what the scheduler reads and what makes a policy in use. A policy must be
in the follower's region and of a kind the follower can follow (snapshot schedules for disks,
instance schedules and placement for instances); a disk follows one snapshot schedule per request.

When a follower starts following a snapshot schedule, the time is written into the policy's
private state row (:data:`STATE`, never routed): the schedule's first snapshot of it is at the first
slot after that moment, not at once for a slot already past.
"""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from core.errors import Invalid, NotFound
from core.links import parse_ref, path_of, url_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import projects
from core.services.resource_policies.policies import (
    COLLECTION,
    FOLLOWERS,
    PLACEMENT,
    STATE,
    followers,
    kind_of,
)

_NOUN = {"disks": "disk", "instances": "instance"}


def resolve(call: Call, region: str, values: object, field: str, follower: str) -> list[Resource]:
    """The policies a request names for a follower (``disks`` or ``instances``) in ``region``."""
    if not isinstance(values, list) or not values:
        raise Invalid(field, values, "At least one resource policy must be given.")
    if follower == "disks" and len(values) > 1:
        raise Invalid(field, values, "You can only specify one resource policy.")
    out: list[Resource] = []
    for i, value in enumerate(values):
        item = f"{field}[{i}]"
        if not isinstance(value, str) or not value:
            raise Invalid(item, value, "The URL is malformed.")
        ref = parse_ref(value, project=call.project, scope=f"regions/{region}")
        if ref is None and "/" not in value:
            ref = parse_ref(f"regions/{region}/{COLLECTION}/{value}", project=call.project)
        if ref is None or ref.collection != COLLECTION or not ref.scope.startswith("regions/"):
            raise Invalid(item, value, "The URL is malformed.")
        if ref.project != call.project:
            raise Invalid(item, value, f"Cross-project references are not supported: use a resource policy of "
                                       f"project '{call.project}'.")
        if ref.scope != f"regions/{region}":
            raise Invalid(item, value, f"Resource policy must be in the same region as the {_NOUN[follower]} "
                                       f"('{region}').")
        policy = store.find(call.session, ref.project, COLLECTION, ref.scope, ref.name)
        kind = kind_of(policy)
        if FOLLOWERS[kind] != follower:
            raise Invalid(item, value, f"A resource policy of type {kind} cannot be applied to a "
                                       f"{_NOUN[follower]}.")
        if kind == PLACEMENT:
            _check_room(call, policy, item, value)
        out.append(policy)
    return out


def _check_room(call: Call, policy: Resource, field: str, value: str) -> None:
    """A placement policy with ``vmCount`` takes that many instances and no more (the one placement
    rule one machine can keep)."""
    count = store.body_of(policy)[PLACEMENT].get("vmCount")
    if count is None:
        return
    members = followers(call.session, policy, ("instances",))
    if len(members) >= count:
        raise Invalid(field, value, f"The placement policy already holds its {count} instances (vmCount).")


def links_for_new(call: Call, region: str, values: object, field: str, follower: str) -> list[str]:
    """The ``resourcePolicies`` of a disk or instance being inserted (validated; [] when none)."""
    if values in (None, []):
        return []
    return [url_of(p.project, p.scope, COLLECTION, p.name) for p in resolve(call, region, values, field, follower)]


def add(call: Call, collection: str, scope: str, region: str, name: str, body: Body) -> Operation:
    """``collection``'s resource ``name`` of ``scope`` (a zone; a region for a regional disk) follows
    the policies of the body."""
    res = projects.find_for_update(call.session, call.project, collection, scope, name)
    policies = resolve(call, region, body.get("resourcePolicies"), "resourcePolicies", collection)
    current = store.body_of(res)
    links = list(current.get("resourcePolicies", []))
    for i, policy in enumerate(policies):
        link = url_of(policy.project, policy.scope, COLLECTION, policy.name)
        if link in links:
            raise Invalid(f"resourcePolicies[{i}]", body["resourcePolicies"][i],
                          f"The resource policy is already attached to the {_NOUN[collection]}.")
        kind = kind_of(policy)
        if collection == "instances" and any(_kind_of_link(call, other) == kind for other in links):
            raise Invalid(f"resourcePolicies[{i}]", body["resourcePolicies"][i],
                          f"The instance already has a resource policy of type {kind}.")
        links.append(link)
        mark_following(call.session, policy, res.uid, time.time())
    current["resourcePolicies"] = links
    store.save(res, current)
    return operations.begin(call, scope=res.scope, op_type="addResourcePolicies",
                            target_path=path_of(call.project, res.scope, collection, res.name), target_id=res.uid)


def remove(call: Call, collection: str, scope: str, name: str, body: Body) -> Operation:
    res = projects.find_for_update(call.session, call.project, collection, scope, name)
    values = body.get("resourcePolicies")
    if not isinstance(values, list) or not values:
        raise Invalid("resourcePolicies", values, "At least one resource policy must be given.")
    current = store.body_of(res)
    links = list(current.get("resourcePolicies", []))
    region = res.region or ""
    for i, value in enumerate(values):
        ref = parse_ref(value, project=call.project, scope=f"regions/{region}") if isinstance(value, str) else None
        if ref is None and isinstance(value, str) and value and "/" not in value:
            ref = parse_ref(f"regions/{region}/{COLLECTION}/{value}", project=call.project)
        if ref is None or ref.collection != COLLECTION:
            raise Invalid(f"resourcePolicies[{i}]", value, "The URL is malformed.")
        link = url_of(ref.project, ref.scope, COLLECTION, ref.name)
        if link not in links:
            raise Invalid(f"resourcePolicies[{i}]", value,
                          f"The resource policy is not attached to the {_NOUN[collection]}.")
        links.remove(link)
    if links:
        current["resourcePolicies"] = links
    else:
        current.pop("resourcePolicies", None)
    store.save(res, current)
    return operations.begin(call, scope=res.scope, op_type="removeResourcePolicies",
                            target_path=path_of(call.project, res.scope, collection, res.name), target_id=res.uid)


def _kind_of_link(call: Call, link: str) -> str | None:
    ref = parse_ref(link, project=call.project)
    if ref is None:
        return None
    try:
        return kind_of(store.find(call.session, ref.project, COLLECTION, ref.scope, ref.name))
    except NotFound:
        return None


def state_of(session: Session, policy: Resource, *, lock: bool = False) -> tuple[Resource, Body]:
    """The policy's private state row (made when first needed) and its body."""
    row = store.find_optional(session, policy.project, STATE, policy.scope, policy.name)
    if row is None:
        row = store.new_resource(session, project=policy.project, collection=STATE, scope=policy.scope,
                                 name=policy.name, kind="gstack#resourcePolicyState", body={"targets": {}})
    elif lock:
        session.refresh(row, with_for_update=True)
    body = store.body_of(row)
    if body.get("policyId") != str(policy.uid):  # a state left by a deleted policy of the same name
        body = {"policyId": str(policy.uid), "targets": {}}
    return row, body


def mark_following(session: Session, policy: Resource, follower_uid: int, since: float) -> None:
    row, body = state_of(session, policy, lock=True)
    body["targets"][str(follower_uid)] = since
    store.save(row, body)
