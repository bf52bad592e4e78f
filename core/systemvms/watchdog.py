"""The watchdog: the core keeps its system VMs running without anyone asking.

Every ``interval`` seconds it looks at every system VM:

* placed on a host that is Down (``hosts.status``, set by the host monitor or by an operator), in
  Maintenance or gone, or Running in the database while its hypervisor no longer runs it: it is
  redeployed on another host (a system Operation ``systemvms.redeploy``), and a router gets its whole
  configuration pushed again;
* left in Error or unplaced (no host had room) for ``retry_after`` seconds: it is tried again;

and, with ``zone_vms``, gives every zone with a host Up its console proxy and storage VM (as
CloudStack does when a zone is enabled).

Several processes may run a watchdog on one database: a redeploy is queued under the VM's row
lock and only when no lifecycle job on it is unfinished, so the second one finds the first's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import write_session
from core.hypervisors.base import DriverError, HostRef
from core.hypervisors.registry import DriverRegistry
from core.models import Cluster, Host, Resource, SystemSetting, SystemVm, Zone
from core.periodic import PeriodicRounds
from core.systemvms import jobs, vms

log = logging.getLogger("gstack.systemvms")

HEARTBEAT = "watchdog.heartbeat"

# A system VM as a round saw it: (state, host id); a redeploy goes ahead only if it is unchanged.
Seen = tuple[str, int | None]


class Watchdog(PeriodicRounds):
    thread_name = "systemvm-watchdog"
    first_round_at_start = True  # system VMs lost while the process was down come back at once

    def __init__(self, factory: sessionmaker[Session], drivers: DriverRegistry, *, interval: float = 10.0, zone_vms: bool = False,
                 retry_after: float = 60.0, kick: Callable[[], None] | None = None) -> None:
        super().__init__(interval)
        self.factory = factory
        self.drivers = drivers
        self.zone_vms = zone_vms
        self.retry_after = retry_after
        self.kick = kick

    def run_once(self) -> list[str]:
        """One round; what it did, one line per action."""
        deployed = self.ensure_zone_vms() if self.zone_vms else []
        for line in deployed:
            log.info("%s", line)
        redeployed: list[str] = []
        for uid, seen, reason in self.failed_vms():
            redeployed += self._redeploy(uid, seen, reason)
        for line in redeployed:
            log.warning("%s", line)
        actions = deployed + redeployed
        with write_session(self.factory) as session:
            row = session.get(SystemSetting, HEARTBEAT)
            if row is None:
                session.add(SystemSetting(key=HEARTBEAT, value=str(time.time())))
            else:
                row.value = str(time.time())
        if actions and self.kick is not None:
            self.kick()
        return actions

    def ensure_zone_vms(self) -> list[str]:
        actions: list[str] = []
        with write_session(self.factory) as session:
            up = set(session.scalars(select(Host.zone_id).where(Host.status == "Up")))
            for zone in session.scalars(select(Zone).where(Zone.status == "UP").order_by(Zone.name)):
                if zone.id not in up:
                    continue
                for kind in (vms.CONSOLE_PROXY, vms.SECONDARY_STORAGE):
                    if vms.zone_vm(session, kind, zone) is None:
                        vm = jobs.ensure_zone_vm(session, kind, zone)
                        actions.append(f"{vm.name}: deploying the {kind.replace('_', ' ')} of {zone.name}")
        return actions

    def failed_vms(self) -> list[tuple[int, Seen, str]]:
        """(uid, (state, host) as seen, why) of every system VM to deploy again."""
        now = time.time()
        with self.factory() as session:
            rows = list(session.execute(select(SystemVm, Resource).join(Resource, Resource.uid == SystemVm.uid)))
            hosts = {h.id: (h, c) for h, c in session.execute(
                select(Host, Cluster).join(Cluster, Host.cluster_id == Cluster.id))}
        out: list[tuple[int, Seen, str]] = []
        running: dict[int, dict[int, str] | None] = {}
        for vm, res in rows:
            seen = (vm.state, res.host_id)
            if res.host_id is None:
                if vm.state in (vms.ERROR, vms.STARTING) and now - vm.updated >= self.retry_after:
                    why = vm.last_error or vm.state
                    out.append((vm.uid, seen, f"{vm.name} was not placed ({why}); trying again"))
                continue
            placed = hosts.get(res.host_id)
            if placed is None:
                out.append((vm.uid, seen, f"{vm.name}: its host no longer exists"))
                continue
            host, cluster = placed
            if host.status in ("Down", "Maintenance"):
                out.append((vm.uid, seen, f"{vm.name}: host {host.name} is {host.status}; redeploying it elsewhere"))
                continue
            if vm.state != vms.RUNNING or host.status != "Up" or cluster.hypervisor not in self.drivers:
                continue
            if host.id not in running:
                running[host.id] = self._domains(cluster.hypervisor, host)
            domains = running[host.id]
            if domains is not None and domains.get(vm.uid) != "running":
                state = domains.get(vm.uid, "gone")
                out.append((vm.uid, seen, f"{vm.name}: {state} on {host.name}; starting it again"))
        return out

    def _domains(self, hypervisor: str, host: Host) -> dict[int, str] | None:
        driver = self.drivers.get(hypervisor)
        ref = HostRef(host.id, host.name, host.uri)
        if not driver.shares_state(ref):
            return None
        try:
            return driver.list_instances(ref)
        except DriverError:
            return None  # unreachable: the host monitor decides whether it is Down

    def _redeploy(self, uid: int, seen: Seen, reason: str) -> list[str]:
        with write_session(self.factory) as session:
            vm, res = vms.load(session, uid)
            if vm is None or res is None or (vm.state, res.host_id) != seen:
                return []  # something changed it since it was seen: judge it next round
            op = jobs.redeploy(session, vm, res, reason)
        return [f"{reason} ({op.name})"] if op is not None else []


def start_watchdog(factory: sessionmaker[Session], drivers: DriverRegistry, interval: float = 10.0, *, zone_vms: bool = False,
                   kick: Callable[[], None] | None = None) -> Watchdog:
    """Start the watchdog thread (``gstack serve`` and ``gstack worker``); ``kick`` wakes the job
    workers of this process when it queued a job."""
    return Watchdog(factory, drivers, interval=interval, zone_vms=zone_vms, kick=kick).start()
