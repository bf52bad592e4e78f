"""The autohealing monitor: a background round (in ``gstack serve`` and ``gstack worker``) that
queues a reconcile of every group with a failing member (:mod:`.autoheal`). A group converging
already heals in its own runs; a stable one has no run until this monitor queues one."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import write_session
from core.models import Resource
from core.periodic import PeriodicRounds
from core.services import topology
from core.services.instance_group_managers import autoheal, reconcile, state


class AutohealMonitor(PeriodicRounds):
    thread_name = "autoheal"

    def __init__(self, factory: sessionmaker[Session], interval: float, kick: Callable[[], None] | None = None):
        super().__init__(interval)
        self.factory = factory
        self.kick = kick

    def run_once(self) -> list[str]:
        """One round: the names of the groups a reconcile was queued for."""
        now = time.time()
        with self.factory() as session:
            groups = session.scalars(select(Resource).where(Resource.collection == state.COLLECTION)).all()
            seen: autoheal.Stopped = {}
            due = [g.uid for g in groups if autoheal.due(session, g, _zones(session, g), now, seen)]
        queued = []
        for uid in due:
            with write_session(self.factory) as session:
                group = session.scalar(select(Resource).where(Resource.uid == uid).with_for_update())
                if group is None or state.load(session, group).deleting:
                    continue
                reconcile.enqueue(session, group, "system")
                queued.append(group.name)
        if queued and self.kick is not None:
            self.kick()
        return queued


def _zones(session: Session, group: Resource) -> list[str]:
    """Where the group's instances may be: its zone, or every zone of its region."""
    where, name = group.scope.split("/", 1)
    return [name] if where == "zones" else [z.name for z in topology.region_zones(session, name)]


def start_autoheal_monitor(factory: sessionmaker[Session], interval: float,
                           kick: Callable[[], None] | None = None) -> AutohealMonitor:
    return AutohealMonitor(factory, interval, kick).start()
