"""Rolling updates: moving a group's members to their intended version, a step per reconcile run.

Every member carries its version (``Member.template`` and ``Member.version``, the version's name).
The group's ``versions`` say how many members each version should have (:func:`state.version_counts`:
a canary's ``targetSize``, the rest to the version without one); members already on a version keep
it while it has room, the others are *outdated* and assigned to a version short of members.

Moving a member takes the least disruptive action that does the job, at least ``minimalAction``
and at most ``mostDisruptiveAllowedAction`` (else the member is left as it is): another template
needs REPLACE, another version name on the same template nothing. REPLACE substitutes a new
member (SUBSTITUTE: the old one is *retiring*, serving until it may be deleted) or recreates the
member under its name (RECREATE); RESTART resets the instance; REFRESH and NONE relabel it.

A PROACTIVE policy moves every outdated member; OPPORTUNISTIC ones move only when asked
(applyUpdatesToInstances, recreateInstances: ``Member.update``), and those requests act at once.
PROACTIVE moves respect the policy: at most ``maxSurge`` members above ``targetSize`` (the creation
gate :func:`room`), and no disruption that would leave fewer than ``targetSize - maxUnavailable``
members available (RUNNING with no action under way and, when the group has a health check,
HEALTHY). Everything a step decides is written in the reconcile run's transaction, with the
Operation of any reset it issues, so a run resumed after ``kill -9`` repeats nothing.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import ComputeError
from core.models import Resource
from core.resources import store
from core.resources.context import Call
from core.resources.store import Body
from core.services import instances, topology
from core.services.instance_group_managers import spec
from core.services.instance_group_managers.observed import Seen
from core.services.instance_group_managers.state import (
    CREATING,
    DELETING,
    NONE,
    RECREATING,
    RESTARTING,
    Member,
    State,
    calculated,
    version_counts,
)

Version = tuple[str, str]  # (template URL, version name)


def _policy(body: Body) -> Body:
    return {**spec.DEFAULT_POLICY, **(body.get("updatePolicy") or {})}


def _limits(body: Body) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers of instances for the group's targetSize."""
    policy, target = _policy(body), body["targetSize"]
    return calculated(policy["maxSurge"], target, "up"), calculated(policy["maxUnavailable"], target, "down")


def _counted(m: Member) -> bool:
    return m.action != DELETING and not m.retiring


def assign(body: Body, st: State) -> dict[str, Version]:
    """The version each member should be on: its own while that version has room (running members
    first), else the first version short of members."""
    room = {(t, n): c for t, n, c in version_counts(body)}
    out: dict[str, Version] = {}
    pool = sorted((m for m in st.members if _counted(m)), key=lambda m: (m.action != NONE, m.name))
    for m in pool:
        key = (m.template, m.version)
        if room.get(key, 0) > 0:
            room[key] -= 1
            out[m.name] = key
    for m in pool:
        if m.name not in out:
            short = next((k for k, c in room.items() if c > 0), None)
            if short is not None:
                room[short] -= 1
            out[m.name] = short or (m.template, m.version)  # an extra: the size logic deletes it
    return out


def next_version(body: Body, st: State) -> Version:
    """The version of a member about to be made: the first one short of members."""
    have: dict[Version, int] = {}
    for m in st.members:
        if _counted(m):
            have[(m.template, m.version)] = have.get((m.template, m.version), 0) + 1
    counts = version_counts(body)
    for t, n, c in counts:
        if have.get((t, n), 0) < c:
            return t, n
    rest = next((v for v in body.get("versions") or [] if not v.get("targetSize")), None)
    return (rest["instanceTemplate"], rest.get("name", "")) if rest else (counts[-1][0], counts[-1][1])


def room(body: Body, st: State) -> bool:
    """Whether the reconciler may make one more member: while members retire, the group holds at
    most ``targetSize + maxSurge`` of them (those being deleted count until they are gone)."""
    if not any(m.retiring for m in st.members):
        return True
    return len(st.members) < int(body["targetSize"]) + _limits(body)[0]


def checked(body: Body) -> bool:
    """Whether the group judges its instances by a health check."""
    return any(p.get("healthCheck") for p in body.get("autoHealingPolicies") or [])


def available(seen: Seen, m: Member) -> bool:
    """RUNNING with no action under way and, when the group has a health check, HEALTHY."""
    return m.action == NONE and seen.available(m)


def _action(m: Member, goal: Version, minimal: str, most: str) -> str | None:
    """The action moving ``m`` to ``goal``: at least ``minimal``; None when ``most`` forbids it."""
    needed = "REPLACE" if m.template != goal[0] else "NONE"
    action = max(minimal, needed, key=spec.ACTIONS.index)
    return None if spec.ACTIONS.index(action) > spec.ACTIONS.index(most) else action


class _Step:
    """One run's decisions: the availability budget it spends as it disrupts members."""

    def __init__(self, session: Session, group: Resource, st: State, user: str, seen: Seen):
        self.session, self.group, self.st, self.user, self.seen = session, group, st, user, seen
        self.body = store.body_of(group)
        self.surge, self.unavailable = _limits(self.body)
        self.floor = self.body["targetSize"] - self.unavailable
        self.up = sum(1 for m in st.members if available(seen, m))
        self.surging = 0  # members retired by this step whose substitutes are yet to be named

    def may_disrupt(self, m: Member) -> bool:
        """Take ``m`` out of service if the group stays at or above its floor; spend the budget."""
        if not available(self.seen, m):
            return True
        if self.up - 1 < self.floor:
            return False
        self.up -= 1
        return True

    def restart(self, m: Member) -> None:
        zone = topology.zone(self.session, self.group.project, m.zone)
        try:
            op = instances.reset(Call(self.session, self.group.project, self.user), zone, m.name)
        except ComputeError:  # not running (stopped behind the group's back): nothing to restart
            return
        m.action, m.op, m.error = RESTARTING, op.name, None

    def move(self, m: Member, goal: Version, action: str, recreate: bool, at_once: bool) -> bool:
        """Start moving ``m`` to ``goal`` with ``action``; False when it must wait for budget."""
        if action in ("NONE", "REFRESH"):
            m.template, m.version = goal
            return True
        if action == "REPLACE" and not recreate:
            # Substituted: kept serving while the group may grow by a surge member, else deleted
            # first when the group can spare it.
            if at_once or len(self.st.members) + self.surging >= self.body["targetSize"] + self.surge:
                if not at_once and not self.may_disrupt(m):
                    return False
                m.action, m.error = DELETING, None
            else:
                self.surging += 1
            m.retiring = True
            return True
        if not at_once and not self.may_disrupt(m):
            return False
        m.template, m.version = goal
        if action == "RESTART":
            self.restart(m)
        else:
            m.action, m.issued, m.op, m.error = RECREATING, False, None, None
        return True


def step(session: Session, group: Resource, st: State, user: str, seen: Seen) -> None:
    """Advance the group's updates by what its policy allows now (see the module's docstring);
    ``seen``: the run's reads of its members' instances."""
    for m in st.members:
        if m.action == RESTARTING and m.op is None:  # the reset ended (its error, if any, is listed)
            m.action = NONE
        elif m.action == RECREATING and m.issued and not seen.exists(m):
            m.action, m.issued, m.op, m.error, m.retry_at = CREATING, False, None, None, 0.0
    s = _Step(session, group, st, user, seen)
    policy = _policy(s.body)
    recreate_all = policy["replacementMethod"] == "RECREATE"
    for m in st.members:  # retiring members leave once the group can spare them
        if m.retiring and m.action == NONE and s.may_disrupt(m):
            m.action, m.error = DELETING, None
    goals = assign(s.body, st)
    proactive = policy["type"] == "PROACTIVE"
    in_flight = sum(1 for m in st.members if m.retiring or m.action in (RECREATING, RESTARTING))
    budget = max(1, s.surge + s.unavailable)
    left = False
    for m in sorted(st.members, key=lambda m: m.name):
        if not _counted(m) or m.action not in (NONE, CREATING) or m.name not in goals:
            continue
        goal, asked = goals[m.name], m.update
        if asked is not None:
            action = _action(m, goal, asked["minimalAction"], asked["mostDisruptiveAllowedAction"])
            m.update = None
            if action is not None and not (m.action == CREATING and action != "NONE"):
                s.move(m, goal, action, recreate_all or bool(asked.get("recreate")), at_once=True)
            continue
        if not proactive or goal == (m.template, m.version):
            continue
        if m.action == CREATING:  # not made yet: it is made on its new version (else replaced once made)
            if m.op is None:
                m.template, m.version = goal
            else:
                left = True
            continue
        action = _action(m, goal, policy["minimalAction"], policy["mostDisruptiveAllowedAction"])
        if action is None:
            continue
        if action not in ("NONE", "REFRESH") and in_flight >= budget:
            left = True
            continue
        if s.move(m, goal, action, recreate_all, at_once=False):
            in_flight += action not in ("NONE", "REFRESH")
        else:
            left = True
    st.rolling = left or any(m.retiring for m in st.members)
