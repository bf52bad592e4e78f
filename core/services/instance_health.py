"""The health model: whether an instance answers its health checks. One home for every reader,
``targetPools.getHealth`` and the autohealing of managed groups (:mod:`core.services.
instance_group_managers.autoheal`).

gstack has no prober yet (the data plane will probe real guests): an instance is HEALTHY while it
is RUNNING and its guest serves. A simulated guest serves unless the operator said otherwise with
``gstack admin health set`` (a ``sim_serving`` row), so tests can make a RUNNING instance fail its
checks. A recreated instance is a new guest, and serves. The HTTP(S) balancers read the same model
(``backendServices.getHealth``, and the routers, which render an UNHEALTHY member out of its HAProxy
backend as the balancer would stop sending to it): a change of it asks the instance's routers to
render again.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.links import path_of
from core.models import Resource, SimServing
from core.systemvms.sync import request_sync_for_instance

HEALTHY, UNHEALTHY = "HEALTHY", "UNHEALTHY"


def state(session: Session, inst: Resource | None) -> str:
    """HEALTHY or UNHEALTHY, as a health check would find ``inst`` (None: no such instance)."""
    if inst is None or inst.status != "RUNNING":
        return UNHEALTHY
    serving = session.scalar(select(SimServing.serving).where(SimServing.instance_uid == inst.uid))
    return UNHEALTHY if serving is False else HEALTHY


def not_serving(session: Session, instance_uids: Iterable[int]) -> set[int]:
    """Which of these instances the operator made fail their checks (one query for a whole group)."""
    uids = list(instance_uids)
    if not uids:
        return set()
    return set(session.scalars(select(SimServing.instance_uid).where(SimServing.instance_uid.in_(uids),
                                                                    SimServing.serving.is_(False))))


def set_serving(session: Session, project: str, zone: str, name: str, serving: bool) -> Resource:
    """The operator's knob: make an instance's guest answer its health checks, or not."""
    inst = session.scalar(select(Resource).where(Resource.project == project, Resource.collection == "instances",
                                                 Resource.scope == f"zones/{zone}", Resource.name == name))
    if inst is None:
        raise NotFound(path_of(project, f"zones/{zone}", "instances", name))
    row = session.get(SimServing, inst.uid)
    if row is None:
        session.add(SimServing(instance_uid=inst.uid, serving=serving))
    else:
        row.serving = serving
    request_sync_for_instance(session, inst)
    return inst
