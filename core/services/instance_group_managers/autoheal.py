"""Autohealing: a managed instance that fails is recreated under its name, from its version.

Failing is what GCE calls it: an instance stopped or suspended behind the group's back (GCE
recreates any managed VM that stops RUNNING without the group asking, autohealing policy or not),
and, when the group has an autohealing policy with a health check, a RUNNING instance the health
model (:mod:`core.resources.health`) finds UNHEALTHY once ``initialDelaySec`` has passed
since its creation. The reconcile run marks it RECREATING (the reconciler deletes it, then makes
it again, see :mod:`.rollout`); :mod:`.monitor` queues a reconcile when a stable group has one.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.models import Resource
from core.resources import health, store
from core.resources.store import Body
from core.services.instance_group_managers.state import NONE, RECREATING, Member, State, load_readonly

# Statuses a managed instance reaches only when someone other than its group stopped it.
STOPPED = ("STOPPING", "STOPPED", "TERMINATED", "SUSPENDING", "SUSPENDED")
DEFAULT_DELAY = 300


def failing(session: Session, group: Resource, body: Body, m: Member, now: float) -> bool:
    """Whether member ``m`` should be recreated now (see the module's docstring)."""
    if m.action != NONE or m.retiring:
        return False
    inst = store.find_optional(session, group.project, "instances", m.scope, m.name)
    if inst is None:  # gone: the reconciler makes it again (reconcile._observe)
        return False
    if inst.status in STOPPED:
        return True
    policy = next((p for p in body.get("autoHealingPolicies") or [] if p.get("healthCheck")), None)
    if policy is None or inst.status != "RUNNING" or now - inst.created < policy.get("initialDelaySec", DEFAULT_DELAY):
        return False
    return health.state(session, inst) == health.UNHEALTHY


def step(session: Session, group: Resource, st: State, now: float) -> None:
    """Mark the group's failing members RECREATING."""
    body = store.body_of(group)
    for m in st.members:
        if failing(session, group, body, m, now):
            m.action, m.issued, m.op, m.error = RECREATING, False, None, None


def due(session: Session, group: Resource, now: float) -> bool:
    """Whether a reconcile of ``group`` would heal a member (read only)."""
    body = store.body_of(group)
    return any(failing(session, group, body, m, now) for m in load_readonly(session, group).members)
