"""The use cases of autoscalers (zonal ``autoscalers`` and ``regionAutoscalers``, one service with
the scope as argument): insert, patch, update and delete. They change the database only and answer
a DONE Operation, as GCE does; the autoscaler reads its new configuration at its next round
(:mod:`.rounds`), and until then its ``status`` is PENDING.
"""

from __future__ import annotations

from core.errors import AlreadyExists, Invalid, Required
from core.links import parse_ref, path_of, scope_url, url_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import projects, vpc
from core.services.autoscalers import policy
from core.services.instance_group_managers import autoscaling

COLLECTION = "autoscalers"
GROUPS = "instanceGroupManagers"
WRITABLE = ("description", "target", "autoscalingPolicy")  # what patch merges into and update replaces


def _op_type(scope: str, method: str) -> str:
    return f"compute.{'regionAutoscalers' if scope.startswith('regions/') else 'autoscalers'}.{method}"


def _group(call: Call, scope: str, target: object) -> Resource:
    """The managed group a ``target`` names: in the autoscaler's own zone (or region), row-locked."""
    if target in (None, ""):
        raise Required("resource.target")
    ref = parse_ref(target, project=call.project, scope=scope) if isinstance(target, str) else None
    if ref is None or ref.collection != GROUPS:
        raise Invalid("resource.target", target, "The URL is malformed.")
    if (ref.project, ref.scope) != (call.project, scope):
        where = "region" if scope.startswith("regions/") else "zone"
        raise Invalid("resource.target", target,
                      f"The target instance group manager must be in the autoscaler's {where}, '{scope}'.")
    return store.find(call.session, call.project, GROUPS, scope, ref.name, lock=True)


def _fields(call: Call, scope: str, body: Body) -> tuple[Resource, Body]:
    """(the target group, the writable fields as stored): everything checked before anything changes."""
    group = _group(call, scope, body.get("target"))
    fields: Body = {"description": body["description"]} if body.get("description") else {}
    fields["target"] = url_of(group.project, group.scope, GROUPS, group.name)
    fields["autoscalingPolicy"] = policy.normalized(body.get("autoscalingPolicy"))
    return group, fields


def _attach(call: Call, group: Resource, scope: str, name: str) -> None:
    autoscaling.attach(call.session, group, path_of(call.project, scope, COLLECTION, name),
                       url_of(call.project, scope, COLLECTION, name), call.user)


def _begin(call: Call, res: Resource, method: str) -> Operation:
    return operations.begin(call, scope=res.scope, op_type=_op_type(res.scope, method),
                            target_path=path_of(res.project, res.scope, COLLECTION, res.name), target_id=res.uid)


def insert(call: Call, scope: str, body: Body) -> Operation:
    """A new autoscaler of a managed group that has none, PENDING until its first round."""
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    group, fields = _fields(call, scope, body)
    if store.exists(call.session, call.project, COLLECTION, scope, name):
        raise AlreadyExists(path_of(call.project, scope, COLLECTION, name))
    _attach(call, group, scope, name)
    where = "region" if scope.startswith("regions/") else "zone"
    fields[where] = scope_url(call.project, scope)
    res = store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                             kind="compute#autoscaler", body=fields, status="PENDING", region=group.region)
    return _begin(call, res, "insert")


def _replace(call: Call, scope: str, name: object, body: Body, method: str, merge: bool) -> Operation:
    name = name or body.get("name")
    if name in (None, ""):
        raise Required("autoscaler")
    res = projects.find_for_update(call.session, call.project, COLLECTION, scope, str(name))
    if body.get("name") not in (None, res.name):
        raise Invalid("resource.name", body["name"], "The name of an autoscaler cannot be changed.")
    current = store.body_of(res)
    given = {k: v for k, v in body.items() if k in WRITABLE}
    mine = {k: current[k] for k in WRITABLE if k in current}
    wanted = vpc.merge_patch(mine, given) if merge else {"target": current["target"], **given}
    group, fields = _fields(call, scope, wanted)
    if fields["target"] != current["target"]:
        old = parse_ref(current["target"], project=call.project, scope=scope)
        if old is not None:
            autoscaling.detach(call.session, call.project, scope, old.name)
        _attach(call, group, scope, res.name)
    kept = {k: v for k, v in current.items() if k not in WRITABLE and k != "statusDetails"}
    store.save(res, {**kept, **fields, "status": "PENDING"})
    res.status = "PENDING"
    return _begin(call, res, method)


def patch(call: Call, scope: str, name: object, body: Body) -> Operation:
    """JSON merge patch of the autoscaler named by the ``autoscaler`` parameter (or the body)."""
    return _replace(call, scope, name, body, "patch", merge=True)


def update(call: Call, scope: str, name: object, body: Body) -> Operation:
    """PUT: the autoscaler becomes the body (omitted policy fields take their defaults)."""
    return _replace(call, scope, name, body, "update", merge=False)


def delete(call: Call, scope: str, name: str) -> Operation:
    """The autoscaler goes at once; its group keeps the size it has."""
    res = projects.find_for_update(call.session, call.project, COLLECTION, scope, name)
    target = parse_ref(store.body_of(res)["target"], project=call.project, scope=scope)
    if target is not None:
        autoscaling.detach(call.session, call.project, scope, target.name)
    op = _begin(call, res, "delete")
    call.session.delete(res)
    return op
