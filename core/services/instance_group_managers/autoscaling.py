"""What an autoscaler needs of a managed group: the instances it may measure, a way to set the
group's size outside a user's request, and the refusal to delete a group an autoscaler scales.

An autoscaler keeps its private state in a row named after its group (collection
:data:`AUTOSCALER_STATE`, the group's project and scope), so a group has one autoscaler at most
(the unique name decides) and the group's delete finds it without knowing the autoscalers.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import ResourceInUse
from core.links import path_of
from core.models import Resource
from core.resources import store
from core.services.instance_group_managers import reconcile, state
from core.services.instance_group_managers.state import COLLECTION, NONE

AUTOSCALER_STATE = "autoscalerStates"  # private: never routed, never listed


def attach(session: Session, group: Resource, autoscaler_path: str, autoscaler_url: str, user: str) -> Resource:
    """Make the autoscaler's state row (``user``: whose instances its resizes make; refused with GCE's in-use error when the group has an
    autoscaler already) and name the autoscaler in the group's ``status.autoscaler``."""
    found = store.find_optional(session, group.project, AUTOSCALER_STATE, group.scope, group.name)
    if found is not None:
        refuse_if_autoscaled(session, group)
    row = store.new_resource(session, project=group.project, collection=AUTOSCALER_STATE, scope=group.scope,
                             name=group.name, kind="gstack#autoscalerState", body={"autoscaler": autoscaler_path, "user": user},
                             region=group.region)
    body = store.body_of(group)
    body["status"] = {**body.get("status", {}), "autoscaler": autoscaler_url}
    store.save(group, body)
    return row


def detach(session: Session, project: str, scope: str, name: str) -> None:
    """Drop the autoscaler's state row of the group ``name`` and its ``status.autoscaler``."""
    row = store.find_optional(session, project, AUTOSCALER_STATE, scope, name)
    if row is not None:
        session.delete(row)
    group = store.find_optional(session, project, COLLECTION, scope, name)
    if group is not None:
        body = store.body_of(group)
        body.get("status", {}).pop("autoscaler", None)
        store.save(group, body)


def state_row(session: Session, project: str, scope: str, name: str) -> Resource | None:
    """The autoscaler's state row of the group ``name``, row-locked."""
    where = {"project": project, "collection": AUTOSCALER_STATE, "scope": scope, "name": name}
    return session.scalar(store.BY_NAME_LOCKED, where)


def refuse_if_autoscaled(session: Session, group: Resource) -> None:
    """GCE's REST API deletes no autoscaler with its group: it must go first (gcloud deletes it)."""
    row = store.find_optional(session, group.project, AUTOSCALER_STATE, group.scope, group.name)
    if row is not None:
        raise ResourceInUse("instance_group_manager", path_of(group.project, group.scope, COLLECTION, group.name),
                            store.body_of(row)["autoscaler"])


def running_members(session: Session, group: Resource) -> list[Resource]:
    """The group's instances that are made and RUNNING (none under creation or deletion), in the
    group's zone, or in any zone of a regional group's region."""
    names = [m.name for m in state.load_readonly(session, group).members if m.action == NONE]
    if not names:
        return []
    where = (Resource.region == group.region if group.scope.startswith("regions/")
             else Resource.scope == group.scope)
    return list(session.scalars(select(Resource).where(
        Resource.project == group.project, Resource.collection == "instances", where,
        Resource.name.in_(names), Resource.status == "RUNNING")))


def set_target_size(session: Session, uid: int, size: int, user: str) -> bool:
    """The autoscaler's resize: ``targetSize`` becomes ``size`` and the reconcile job converges, as
    after instanceGroupManagers.resize (no Operation of the user's). False when the group is gone
    or being deleted."""
    group = session.scalar(select(Resource).where(Resource.uid == uid).with_for_update())
    if group is None:
        return False
    st = state.load(session, group)
    if st.deleting:
        return False
    body = store.body_of(group)
    body["targetSize"] = size
    store.save(group, body)
    state.render(group, st)
    reconcile.enqueue(session, group, user)
    return True
