"""The health model's one write: the operator's knob on whether an instance answers its health
checks. Its reads (``targetPools.getHealth``, ``backendServices.getHealth``, the autohealing of
managed groups, the routers' render) live in :mod:`core.resources.health`, on the floor the
routers can import.

gstack has no prober yet (the data plane will probe real guests): an instance is HEALTHY while it
is RUNNING and its guest serves. A simulated guest serves unless the operator said otherwise with
``gstack admin health set`` (a ``sim_serving`` row), so tests can make a RUNNING instance fail its
checks. A recreated instance is a new guest, and serves. The HTTP(S) balancers read the same model
(``backendServices.getHealth``, and the routers, which render an UNHEALTHY member out of its HAProxy
backend as the balancer would stop sending to it): a change of it asks the instance's routers to
render again.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.links import path_of
from core.models import Resource, SimServing
from core.systemvms.sync import request_sync_for_instance


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

