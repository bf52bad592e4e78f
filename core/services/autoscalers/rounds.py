"""The autoscaler's rounds: every ``interval`` seconds each autoscaler samples its group's CPU, decides
(:mod:`.decide`) and, when its mode allows, resizes the group through the managed group's own path
(:func:`core.services.instance_group_managers.autoscaling.set_target_size`, whose reconcile job is
durable).

The signal is the hypervisor's: each running member's cumulative CPU time
(:meth:`~core.hypervisors.base.HypervisorDriver.cpu_times`), read outside any transaction; a
member's utilisation is the growth of its CPU time since the last round over the wall time between
and its vCPUs. Everything a decision needs across rounds (the last reading of each member, when it
was first seen, the recent recommendations) is in the autoscaler's state row, so a restarted or
another process goes on where the last round stopped. Several processes may run rounds on one
database: a round decides under the autoscaler's row lock and skips an autoscaler decided less than
half an interval ago, so two processes do not both take a step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import write_session
from core.hypervisors.base import DriverError
from core.hypervisors.registry import DriverRegistry
from core.links import parse_ref
from core.models import Cluster, Host, Resource
from core.periodic import PeriodicRounds
from core.resources import store
from core.resources.store import Body
from core.services.autoscalers import decide, policy
from core.services.autoscalers.configs import COLLECTION, GROUPS
from core.services.hosts import host_ref
from core.services.instance_group_managers import autoscaling

log = logging.getLogger("gstack.autoscalers")

Reading = tuple[float, float]  # (CPU seconds, when read)
_ALL = select(Resource.uid).where(Resource.collection == COLLECTION).order_by(Resource.uid)
_MESSAGES = {
    "MODE_OFF": "Autoscaling is turned off. The number of instances in the group won't change automatically. "
                "The autoscaling configuration is preserved.",
    "MODE_ONLY_SCALE_OUT": "Autoscaling is in the \"Autoscale only out\" mode. The autoscaler can add instances "
                           "but not remove any.",
    "MODE_ONLY_UP": "Autoscaling is in the \"Autoscale only out\" mode. The autoscaler can add instances but not "
                    "remove any.",
    "MIN_EQUALS_MAX": "The minNumReplicas is equal to maxNumReplicas. This means the autoscaler cannot add or "
                      "remove instances from the instance group.",
    "CAPPED_AT_MAX_NUM_REPLICAS": "The autoscaler recommends a size greater than maxNumReplicas: the group is "
                                  "capped at maxNumReplicas.",
    "SCALING_TARGET_DOES_NOT_EXIST": "The target to be scaled does not exist.",
}


@dataclass(frozen=True)
class _Member:
    uid: int
    vcpus: int
    host_id: int | None


class AutoscalerRounds(PeriodicRounds):
    thread_name = "autoscaler"

    def __init__(self, factory: sessionmaker[Session], drivers: DriverRegistry, *, interval: float = 10.0,
                 stabilization: float = policy.STABILIZATION_DEFAULT) -> None:
        super().__init__(interval)
        self.factory = factory
        self.drivers = drivers
        self.stabilization = stabilization

    def run_once(self) -> int:
        """One round over every autoscaler; how many resized their group."""
        with self.factory() as session:
            uids = list(session.scalars(_ALL))
        resized = 0
        for uid in uids:
            try:
                resized += self.scale(uid)
            except Exception:  # one autoscaler's failure must not hold the others
                log.exception("autoscaler %s: round failed", uid)
        return resized

    def scale(self, uid: int) -> bool:
        """Sample, decide and act for one autoscaler; whether it resized its group."""
        members = self._members(uid)
        readings = self._read(members or [])
        now = time.time()
        with write_session(self.factory) as session:
            res = session.scalar(select(Resource).where(Resource.uid == uid).with_for_update())
            if res is None:
                return False
            body = store.body_of(res)
            group, row = self._target(session, res, body)
            if group is None or row is None or members is None:
                _render(res, body, "ERROR", ["SCALING_TARGET_DOES_NOT_EXIST"], body.get("recommendedSize"))
                return False
            state = store.body_of(row)
            if now - state.get("decided", 0.0) < self.interval / 2:
                return False
            pol = policy.read(body["autoscalingPolicy"], self.stabilization)
            utilisations, samples = _utilisations(pol, members, readings, state.get("samples", {}))
            current = store.body_of(group)["targetSize"]
            history = [(t, a, m) for t, a, m in state.get("history", [])]
            decision = decide.decide(pol, current, utilisations, history, now)
            resized = decision.resize_to is not None and autoscaling.set_target_size(
                session, group.uid, decision.resize_to, state.get("user", ""))
            store.save(row, {**state, "samples": samples, "history": decision.history, "decided": now})
            _render(res, body, "ACTIVE", _details(pol, decision), decision.recommended, current)
        if resized:
            log.info("autoscaler %s: %s resized from %s to %s", uid, group.name, current, decision.resize_to)
        return bool(resized)

    def _target(self, session: Session, res: Resource, body: Body) -> tuple[Resource | None, Resource | None]:
        ref = parse_ref(str(body.get("target", "")), project=res.project, scope=res.scope)
        if ref is None:
            return None, None
        group = store.find_optional(session, ref.project, GROUPS, ref.scope, ref.name)
        row = autoscaling.state_row(session, ref.project, ref.scope, ref.name)
        return group, row

    def _members(self, uid: int) -> list[_Member] | None:
        """The running members of the autoscaler's group (None: no such group)."""
        with self.factory() as session:
            res = session.scalar(select(Resource).where(Resource.uid == uid))
            if res is None:
                return None
            ref = parse_ref(str(store.body_of(res).get("target", "")), project=res.project, scope=res.scope)
            group = ref and store.find_optional(session, ref.project, GROUPS, ref.scope, ref.name)
            if not group:
                return None
            return [_Member(i.uid, max(1, i.vcpus), i.host_id) for i in autoscaling.running_members(session, group)]

    def _read(self, members: list[_Member]) -> dict[int, Reading]:
        """Each member's CPU time as its host's driver reports it; members of hosts that cannot be
        asked are left out (no signal is no reason to scale)."""
        by_host: dict[int, list[int]] = {}
        for m in members:
            if m.host_id is not None:
                by_host.setdefault(m.host_id, []).append(m.uid)
        if not by_host:
            return {}
        with self.factory() as session:
            hosts = list(session.execute(select(Host, Cluster.hypervisor).join(Cluster, Host.cluster_id == Cluster.id)
                                         .where(Host.id.in_(list(by_host)))))
        out: dict[int, Reading] = {}
        for host, hypervisor in hosts:
            if host.status != "Up" or hypervisor not in self.drivers:
                continue
            try:
                times = self.drivers.get(hypervisor).cpu_times(host_ref(host), by_host[host.id])
            except DriverError as exc:
                log.warning("autoscaler: CPU times of host %s: %s", host.name, exc)
                continue
            at = time.time()
            out.update({uid: (seconds, at) for uid, seconds in times.items()})
        return out


def _utilisations(pol: policy.Policy, members: list[_Member], readings: dict[int, Reading],
                  samples: dict[str, list[float]]) -> tuple[list[float], dict[str, list[float]]]:
    """The utilisation of each member out of its initialisation period, and the new samples
    (``uid -> [CPU seconds, when read, when first seen]``)."""
    out: list[float] = []
    kept: dict[str, list[float]] = {}
    for m in members:
        if m.uid not in readings:
            continue
        seconds, at = readings[m.uid]
        last = samples.get(str(m.uid))
        if last is None or seconds < last[0]:  # first seen, or started again
            kept[str(m.uid)] = [seconds, at, at]
            continue
        kept[str(m.uid)] = [seconds, at, last[2]]
        if at > last[1] and at - last[2] >= pol.cool_down:
            out.append(min(1.0, max(0.0, (seconds - last[0]) / ((at - last[1]) * m.vcpus))))
    return out, kept


def _details(pol: policy.Policy, decision: decide.Decision) -> list[str]:
    out = []
    if pol.mode == "OFF":
        out.append("MODE_OFF")
    elif pol.mode in policy.SCALE_OUT_ONLY:
        out.append("MODE_ONLY_UP" if pol.mode == "ONLY_UP" else "MODE_ONLY_SCALE_OUT")
    if pol.min == pol.max:
        out.append("MIN_EQUALS_MAX")
    if decision.capped:
        out.append("CAPPED_AT_MAX_NUM_REPLICAS")
    return out


def _render(res: Resource, body: Body, status: str, details: list[str], recommended: int | None,
            size: int | None = None) -> None:
    """The autoscaler's status, statusDetails and recommendedSize (written only when they change)."""
    new = {k: v for k, v in body.items() if k not in ("status", "statusDetails", "recommendedSize")}
    if recommended is not None:
        new["recommendedSize"] = recommended
    new["status"] = status
    if details:
        new["statusDetails"] = [{"message": _MESSAGES[t], "type": t} for t in details]
    limit = (new["autoscalingPolicy"].get("scaleInControl") or {}).get("maxScaledInReplicas") or {}
    if "percent" in limit and size is not None:
        limit["calculated"] = round(limit["percent"] * size / 100)
    if new != body:
        store.save(res, new)
        res.status = status


def start_autoscaler(factory: sessionmaker[Session], drivers: DriverRegistry, interval: float,
                     stabilization: float = policy.STABILIZATION_DEFAULT) -> AutoscalerRounds:
    return AutoscalerRounds(factory, drivers, interval=interval, stabilization=stabilization).start()
