"""Autohealing: a managed instance that fails is recreated under its name, from its version.

Failing is what GCE calls it: an instance stopped or suspended behind the group's back (GCE
recreates any managed VM that stops RUNNING without the group asking, autohealing policy or not),
and, when the group has an autohealing policy with a health check, a RUNNING instance the health
model (:mod:`core.resources.health`) finds UNHEALTHY once ``initialDelaySec`` has passed
since its creation. The reconcile run marks it RECREATING (the reconciler deletes it, then makes
it again, see :mod:`.rollout`); :mod:`.monitor` queues a reconcile when a stable group has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Resource, ResourceTerm
from core.resources import health, store
from core.resources.store import Body
from core.services.instance_group_managers import state
from core.services.instance_group_managers.state import NONE, RECREATING, Member, State

# Statuses a managed instance reaches only when someone other than its group stopped it.
STOPPED = ("STOPPING", "STOPPED", "TERMINATED", "SUSPENDING", "SUSPENDED")
DEFAULT_DELAY = 300


def failing(session: Session, group: Resource, body: Body, members: Sequence[Member], now: float) -> set[str]:
    """The names of the members to recreate now (see the module's docstring); a member whose instance
    is gone is not one (the reconciler makes it again, reconcile._observe)."""
    wanted = _healable(members)
    if not wanted:
        return set()
    return {name for _, name in _suspects(session, group, body, {scope for scope, _ in wanted}, now) & wanted}


def _healable(members: Sequence[Member]) -> set[tuple[str, str]]:
    """(scope, name) of the members autohealing may recreate: not being changed by the group already."""
    return {(m.scope, m.name) for m in members if m.action == NONE and not m.retiring}


# The stopped instances of a project's zones, by (project, zones): what a monitor round read already.
Stopped = dict[tuple[str, tuple[str, ...]], set[tuple[str, str]]]


def _suspects(session: Session, group: Resource, body: Body, scopes: Iterable[str], now: float,
              seen: Stopped | None = None) -> set[tuple[str, str]]:
    """(scope, name) of the project's instances in ``scopes`` that would be recreated if they were
    members: stopped ones, from the status terms of the zones (:mod:`core.terms`, an index range per
    zone and status; read once per round for the groups of the same zones, ``seen``), and, when the
    group's policy has a health check, RUNNING ones old enough to be checked that fail their checks
    (:func:`health.failing_in`). Each read is as long as what it finds, not as the group: a row read
    per member cost ~70 us, 70 ms a monitor round at 1,000 members, and the monitor asks of every
    group every two seconds."""
    key = (group.project, tuple(sorted(scopes)))
    found = (seen or {}).get(key)
    if found is None:
        found = {(scope, name) for scope, name in session.execute(select(ResourceTerm.scope, ResourceTerm.name).where(
            ResourceTerm.project == group.project, ResourceTerm.collection == "instances",
            ResourceTerm.scope.in_(key[1]), ResourceTerm.field == "status", ResourceTerm.value.in_(STOPPED)))}
        if seen is not None:
            seen[key] = found
    policy = next((p for p in body.get("autoHealingPolicies") or [] if p.get("healthCheck")), None)
    if policy is not None:
        return found | health.failing_in(session, group.project, key[1], now - policy.get("initialDelaySec", DEFAULT_DELAY))
    return found


def step(session: Session, group: Resource, st: State, now: float) -> None:
    """Mark the group's failing members RECREATING."""
    names = failing(session, group, store.body_of(group), st.members, now)
    for m in st.members:
        if m.name in names:
            m.action, m.issued, m.op, m.error = RECREATING, False, None, None


def due(session: Session, group: Resource, zones: Sequence[str], now: float, seen: Stopped | None = None) -> bool:
    """Whether a reconcile of ``group``, whose instances are in ``zones``, would heal a member (read
    only; ``seen``: the round's reads of stopped instances, shared by its groups). Its members are
    read only when an instance of those zones is a suspect whose name the group's state holds (a
    substring test of the state's text first: a stopped VM of the zone that is no member costs no
    parse of the members)."""
    body = store.body_of(group)
    suspects = _suspects(session, group, body, [f"zones/{z}" for z in zones], now, seen)
    if not suspects:
        return False
    text = state.text_readonly(session, group)
    if not any(f'"name":"{name}"' in text for _, name in suspects):
        return False
    return bool(_healable(state.load_readonly(session, group).members) & suspects)
