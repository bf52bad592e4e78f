"""What a managed instance group knows beyond its GCE body: its managed instances (named before
they exist, with the action under way on each) and the errors ``listErrors`` reports.

GCE's InstanceGroupManager has no member list, and the stored body is what GET returns, so this
state is a private row of its own (collection :data:`STATE`, same project, scope and name as the
group), row-locked after the group's. The group's ``currentActions`` and ``status.isStable`` are
rendered from it into the group's body whenever it changes.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.ids import rfc3339
from core.links import url_of
from core.models import Resource
from core.resources import store
from core.resources.store import Body

COLLECTION = "instanceGroupManagers"
STATE = "instanceGroupManagerStates"  # private: never routed, never listed
CREATING, DELETING, NONE = "CREATING", "DELETING", "NONE"
RECREATING, RESTARTING = "RECREATING", "RESTARTING"
MAX_ERRORS = 100  # listErrors keeps the newest
_ACTIONS = ("abandoning", "creating", "creatingWithoutRetries", "deleting", "none", "recreating", "refreshing",
            "restarting", "resuming", "starting", "stopping", "suspending", "verifying")
_ALPHABET = string.ascii_lowercase + string.digits
_COUNTED = {CREATING: "creating", DELETING: "deleting", RECREATING: "recreating", RESTARTING: "restarting"}


@dataclass
class Member:
    """A managed instance: ``zone`` the zone its instance is (to be) in, the group's own for a
    zonal group; ``op`` the name of its instances.insert Operation once issued; ``retry_at`` when a
    failed creation may be tried again; ``issued`` whether its delete was. ``template`` and
    ``version`` (the version's name) are the member's version, the one it was made from or is being
    moved to; ``retiring`` marks an outdated member kept serving until its substitute is up
    (:mod:`.rollout`); ``update`` an update asked for this member alone (applyUpdatesToInstances,
    recreateInstances), done by the next run."""

    name: str
    action: str
    template: str
    op: str | None = None
    retry_at: float = 0.0
    error: Body | None = None
    issued: bool = False
    zone: str = ""
    version: str = ""
    retiring: bool = False
    update: Body | None = None

    @property
    def scope(self) -> str:
        """``zones/Z`` of the member's instance."""
        return f"zones/{self.zone}"

    def dump(self) -> Body:
        return {"name": self.name, "zone": self.zone, "action": self.action, "template": self.template,
                "op": self.op, "retryAt": self.retry_at, "error": self.error, "issued": self.issued,
                "version": self.version, "retiring": self.retiring, "update": self.update}

    @classmethod
    def load(cls, d: Body, zone: str) -> Member:
        """``zone``: the group's, for a member recorded before members carried theirs."""
        return cls(d["name"], d["action"], d["template"], d.get("op"), d.get("retryAt", 0.0), d.get("error"),
                   d.get("issued", False), d.get("zone") or zone, d.get("version", ""), d.get("retiring", False),
                   d.get("update"))


@dataclass
class State:
    row: Resource
    members: list[Member] = field(default_factory=list)
    errors: list[Body] = field(default_factory=list)
    deleting: bool = False
    exhausted: dict[str, float] = field(default_factory=dict)  # zone -> when it last had no room
    rolling: bool = False  # a PROACTIVE update has members left to move (set by :mod:`.rollout`)

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def save(self) -> None:
        store.save(self.row, {"members": [m.dump() for m in self.members], "errors": self.errors[:MAX_ERRORS],
                              "deleting": self.deleting, "exhausted": self.exhausted, "rolling": self.rolling})

    def record_error(self, m: Member, error: Body, now: float) -> None:
        """A failed creation: the member's last attempt, and an entry of listErrors."""
        m.error = error
        self.errors.insert(0, {"error": error, "timestamp": rfc3339(now), "instanceActionDetails": {
            "action": m.action, "instance": url_of(self.row.project, m.scope, "instances", m.name),
            "version": {"instanceTemplate": m.template}}})


def create(session: Session, group: Resource) -> State:
    row = store.new_resource(session, project=group.project, collection=STATE, scope=group.scope, name=group.name,
                             kind="gstack#instanceGroupManagerState", body={}, region=group.region)
    st = State(row)
    st.save()
    return st


def load(session: Session, group: Resource) -> State:
    """The group's state, row-locked (the caller holds the group's lock)."""
    row = session.scalar(_BY_GROUP.with_for_update(), _where(group))
    if row is None:  # made with the group: only a bug could lose it, and that must not crash the job
        return create(session, group)
    return _parse(row)


def load_readonly(session: Session, group: Resource) -> State:
    row = session.scalar(_BY_GROUP, _where(group))
    return State(Resource()) if row is None else _parse(row)


def text_readonly(session: Session, group: Resource) -> str:
    """The state's stored text ('' when there is none): a caller may test it for a name before it
    pays for parsing every member."""
    return session.scalar(_TEXT_BY_GROUP, _where(group)) or ""


_OF_GROUP = (Resource.project == bindparam("project"), Resource.collection == STATE,
             Resource.scope == bindparam("scope"), Resource.name == bindparam("name"))
_BY_GROUP = select(Resource).where(*_OF_GROUP)
_TEXT_BY_GROUP = select(Resource.body).where(*_OF_GROUP)


def _where(group: Resource) -> dict[str, str]:
    return {"project": group.project, "scope": group.scope, "name": group.name}


def _parse(row: Resource) -> State:
    d = store.body_of(row)
    zone = row.scope.split("/", 1)[1] if row.scope.startswith("zones/") else ""
    return State(row, [Member.load(m, zone) for m in d.get("members", [])], d.get("errors", []),
                 d.get("deleting", False), d.get("exhausted", {}), d.get("rolling", False))


def drop(session: Session, st: State) -> None:
    session.delete(st.row)


def new_name(base: str, taken: set[str]) -> str:
    """``base-xxxx``, four random lowercase alphanumerics, as GCE names managed instances."""
    while True:
        name = f"{base}-{''.join(secrets.choice(_ALPHABET) for _ in range(4))}"
        if name not in taken:
            return name


def render(group: Resource, st: State) -> None:
    """The group's body with ``currentActions`` and ``status`` as the state says."""
    body = store.body_of(group)
    counts: dict[str, int] = dict.fromkeys(_ACTIONS, 0)
    for m in st.members:
        counts[_COUNTED.get(m.action, "none")] += 1
    body["currentActions"] = counts
    busy = st.rolling or any(m.retiring or m.update is not None for m in st.members)
    stable = counts["none"] == len(st.members) == body["targetSize"] and not st.deleting and not busy
    reached = sorted((m.template, m.version) for m in st.members if m.action != DELETING and not m.retiring) == sorted(
        intended(body))
    body["status"] = {**body.get("status", {}), "isStable": stable, "versionTarget": {"isReached": reached}}
    store.save(group, body)


def stable(group: Resource) -> bool:
    return bool(store.body_of(group).get("status", {}).get("isStable"))



def calculated(value: Body | None, target: int, rounding: str) -> int:
    """A FixedOrPercent as a number of instances: the fixed number, or the percent of ``target``
    rounded ``up`` (maxSurge, a version's targetSize) or ``down`` (maxUnavailable), as GCE rounds."""
    if not value:
        return 0
    if value.get("percent") is not None:
        share = int(value["percent"]) * target
        return -(-share // 100) if rounding == "up" else share // 100
    return int(value.get("fixed") or 0)


def version_counts(body: Body) -> list[tuple[str, str, int]]:
    """(template, name, instances) of each version: those with a ``targetSize`` get it (a fixed one
    at most the group's), the one without gets the rest."""
    target = body["targetSize"]
    versions = body.get("versions") or [{"instanceTemplate": body["instanceTemplate"]}]
    counts = [min(target, calculated(v["targetSize"], target, "up")) if v.get("targetSize") else -1 for v in versions]
    rest = max(0, target - sum(c for c in counts if c >= 0))
    return [(v["instanceTemplate"], v.get("name", ""), rest if c < 0 else c) for v, c in zip(versions, counts, strict=True)]


def intended(body: Body) -> list[tuple[str, str]]:
    """The (template, version name) every member should have, one entry per member."""
    return [(t, n) for t, n, count in version_counts(body) for _ in range(count)]
