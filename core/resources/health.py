"""Who serves: the read side of the health model and the members of network endpoint groups.

The routers' render (:mod:`core.systemvms.http_lb`) must read both to leave an UNHEALTHY or gone
member out of its HAProxy backend, and it sits below the services; so the reads live here, on the
floor both can import, while the writes stay with their services (the operator's knob in
:mod:`core.services.instance_health`, attach and detach in :mod:`core.services.
network_endpoint_groups`).

gstack has no prober yet (the data plane will probe real guests): an instance is HEALTHY while it
is RUNNING and its guest serves. A simulated guest serves unless the operator said otherwise with
``gstack admin health set`` (a ``sim_serving`` row).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Resource, SimServing
from core.resources import store
from core.resources.store import Body

HEALTHY, UNHEALTHY = "HEALTHY", "UNHEALTHY"
NEG_COLLECTION = "networkEndpointGroups"
NEG_ENDPOINTS = "networkEndpoints"  # a group's private row of endpoints: never routed, never listed


def state(session: Session, inst: Resource | None) -> str:
    """HEALTHY or UNHEALTHY, as a health check would find ``inst`` (None: no such instance)."""
    if inst is None or inst.status != "RUNNING":
        return UNHEALTHY
    serving = session.scalar(select(SimServing.serving).where(SimServing.instance_uid == inst.uid))
    return UNHEALTHY if serving is False else HEALTHY


def failing_in(session: Session, project: str, scopes: Iterable[str], made_by: float) -> set[tuple[str, str]]:
    """(scope, name) of the project's RUNNING instances in ``scopes``, made at ``made_by`` or before,
    that fail their checks: a walk of the few the operator made fail (``sim_serving``), not of the
    instances."""
    return {(scope, name) for scope, name in session.execute(
        select(Resource.scope, Resource.name).join(SimServing, SimServing.instance_uid == Resource.uid).where(
            SimServing.serving.is_(False), Resource.project == project, Resource.collection == "instances",
            Resource.scope.in_(list(scopes)), Resource.status == "RUNNING", Resource.created <= made_by))}


def not_serving(session: Session, instance_uids: Iterable[int]) -> set[int]:
    """Which of these instances the operator made fail their checks (one query for a whole group)."""
    uids = list(instance_uids)
    if not uids:
        return set()
    return set(session.scalars(select(SimServing.instance_uid).where(SimServing.instance_uid.in_(uids),
                                                                    SimServing.serving.is_(False))))


def members(session: Session, group: Resource) -> list[tuple[Body, Resource]]:
    """(endpoint, instance row) of each endpoint of a network endpoint group whose instance exists,
    in attach order."""
    private = store.find_optional(session, group.project, NEG_ENDPOINTS, group.scope, group.name)
    out = []
    for e in store.body_of(private).get("endpoints") or [] if private is not None else []:
        inst = store.find_optional(session, group.project, "instances", group.scope, e["instance"])
        if inst is not None:
            out.append((e, inst))
    return out


def healthy(session: Session, pairs: list[tuple[Body, Resource]]) -> list[bool]:
    """Whether each endpoint's instance answers its health checks."""
    down = not_serving(session, [inst.uid for _, inst in pairs])
    return [inst.status == "RUNNING" and inst.uid not in down for _, inst in pairs]
