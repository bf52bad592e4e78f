"""The use cases that change what a managed group's members should be: patch, setInstanceTemplate,
createInstances, recreateInstances and applyUpdatesToInstances.

Like resize, each changes the database only and answers a DONE Operation ("the operation is marked
DONE when the actions are scheduled", as GCE's): the group's body (versions, updatePolicy,
autoHealingPolicies, targetSize), or a request recorded on the members it names (``Member.update``),
and a reconcile queued that carries it out (:mod:`.rollout`, :mod:`.autoheal`). Bad input raises
before anything is written.
"""

from __future__ import annotations

import time

from core.errors import AlreadyExists, Invalid, Required
from core.ids import fingerprint
from core.links import path_of
from core.models import Operation, Resource
from core.resources import store
from core.resources.context import Call
from core.resources.store import Body
from core.services import metadata
from core.services.instance_group_managers import (
    distribution,
    groups,
    location,
    reconcile,
    rollout,
    spec,
    state,
)
from core.services.instance_group_managers.location import Where
from core.services.instance_group_managers.state import CREATING, DELETING, Member

PATCHABLE = ("versions", "instanceTemplate", "updatePolicy", "autoHealingPolicies", "targetSize", "description")
RECREATE: Body = {"minimalAction": "REPLACE", "mostDisruptiveAllowedAction": "REPLACE", "recreate": True}


def _commit(call: Call, group: Resource, st: state.State, body: Body, method: str) -> Operation:
    """Store the new body (its ``calculated`` values and fingerprint anew), mark a PROACTIVE update
    pending until the reconciler has looked, and queue the reconcile."""
    groups.refresh_calculated(body)
    body["fingerprint"] = fingerprint(["igm", group.name, time.time()])
    store.save(group, body)
    st.rolling = st.rolling or body["updatePolicy"]["type"] == "PROACTIVE"
    st.save()
    state.render(group, st)
    if not st.deleting:
        reconcile.enqueue(call.session, group, call.user)
    return groups.begin(call, group, method)


def _set_versions(body: Body, versions: list[Body]) -> None:
    body["versions"] = versions
    body["instanceTemplate"] = groups.main_template(versions)


def patch(call: Call, where: Where, name: str, patch_body: Body) -> Operation:
    """Merge ``versions``/``instanceTemplate``, ``updatePolicy``, ``autoHealingPolicies``,
    ``targetSize`` and ``description`` into the group (a given ``fingerprint`` must be current)."""
    group = groups.locked(call, where, name)
    st = state.load(call.session, group)
    body = store.body_of(group)
    if patch_body.get("fingerprint") is not None:
        metadata.check_fingerprint(patch_body["fingerprint"], body["fingerprint"], (
            "Supplied fingerprint does not match current fingerprint."))
    region = location.of(where).region
    target = body["targetSize"]
    if patch_body.get("targetSize") is not None:
        target = groups.size(patch_body["targetSize"], "resource.targetSize")
    if patch_body.get("versions"):
        versions = spec.versions(call, region, patch_body["versions"])
    elif patch_body.get("instanceTemplate"):
        url, _ = spec.template(call, region, patch_body["instanceTemplate"], "resource.instanceTemplate")
        versions = [{"instanceTemplate": url}]
    else:
        versions = body["versions"]
    policy = spec.update_policy(patch_body.get("updatePolicy") or {}, body.get("updatePolicy"), target)
    healing = (spec.auto_healing(call, region, patch_body["autoHealingPolicies"])
               if patch_body.get("autoHealingPolicies") is not None else body.get("autoHealingPolicies"))
    _set_versions(body, versions)
    body.update(targetSize=target, updatePolicy=policy)
    body.pop("autoHealingPolicies", None)
    if healing:
        body["autoHealingPolicies"] = healing
    if patch_body.get("description") is not None:
        body["description"] = str(patch_body["description"])
    return _commit(call, group, st, body, "patch")


def set_instance_template(call: Call, where: Where, name: str, request: Body) -> Operation:
    """One version, of the given template: new members are made from it; existing ones move only
    by the update policy (PROACTIVE) or when asked."""
    if not request.get("instanceTemplate"):
        raise Required("instanceTemplate")
    url, _ = spec.template(call, location.of(where).region, request["instanceTemplate"], "instanceTemplate")
    group = groups.locked(call, where, name)
    st = state.load(call.session, group)
    body = store.body_of(group)
    _set_versions(body, [{"instanceTemplate": url}])
    return _commit(call, group, st, body, "setInstanceTemplate")


def create_instances(call: Call, where: Where, name: str, request: Body) -> Operation:
    """New members with the names given; ``targetSize`` grows by as many."""
    items = request.get("instances")
    if not isinstance(items, list) or not items:
        raise Required("instances")
    group = groups.locked(call, where, name)
    st = state.load(call.session, group)
    names: list[str] = []
    for i, item in enumerate(items):
        field = f"instances[{i}].name"
        if not isinstance(item, dict) or not item.get("name"):
            raise Required(field)
        n = store.validate_name(item["name"])
        if n in names or st.member(n) is not None:
            raise AlreadyExists(path_of(call.project, group.scope, "instances", n))
        names.append(n)
    body = store.body_of(group)
    body["targetSize"] += len(names)
    now = time.time()
    for n in names:
        template, version = rollout.next_version(body, st)
        m = Member(n, CREATING, template, zone=distribution.place(body, st, now), version=version)
        if store.exists(call.session, call.project, "instances", m.scope, n):
            raise AlreadyExists(path_of(call.project, m.scope, "instances", n))
        st.members.append(m)
    return _commit(call, group, st, body, "createInstances")


def recreate_instances(call: Call, where: Where, name: str, request: Body) -> Operation:
    """Recreate the named members under their names, on their intended version."""
    group = groups.locked(call, where, name)
    st = state.load(call.session, group)
    for m in groups.named_members(call, group, st, request):
        m.update = dict(RECREATE)
    return _commit(call, group, st, store.body_of(group), "recreateInstances")


def apply_updates(call: Call, where: Where, name: str, request: Body) -> Operation:
    """Move the named members (or all, ``allInstances``) to their intended version with at least
    ``minimalAction`` (default NONE) and at most ``mostDisruptiveAllowedAction`` (default REPLACE)."""
    minimal = spec.ACTIONS[0] if request.get("minimalAction") in (None, "") else request["minimalAction"]
    most = "REPLACE" if request.get("mostDisruptiveAllowedAction") in (None, "") else request[
        "mostDisruptiveAllowedAction"]
    for field, value in (("minimalAction", minimal), ("mostDisruptiveAllowedAction", most)):
        if value not in spec.ACTIONS:
            raise Invalid(field, value, f"Must be one of {list(spec.ACTIONS)}.")
    if spec.ACTIONS.index(minimal) > spec.ACTIONS.index(most):
        raise Invalid("mostDisruptiveAllowedAction", most,
                      "Most disruptive allowed action cannot be less disruptive than minimal action.")
    every = bool(request.get("allInstances"))
    if every and request.get("instances"):
        raise Invalid("allInstances", True, "Instances cannot be specified when allInstances is set.")
    group = groups.locked(call, where, name)
    st = state.load(call.session, group)
    targets = ([m for m in st.members if m.action != DELETING and not m.retiring] if every
               else groups.named_members(call, group, st, request))
    for m in targets:
        m.update = {"minimalAction": minimal, "mostDisruptiveAllowedAction": most}
    return _commit(call, group, st, store.body_of(group), "applyUpdatesToInstances")
