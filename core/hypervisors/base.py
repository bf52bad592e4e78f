"""The driver interface every hypervisor implements (after Nova's ``virt/driver.py``).

Every call is idempotent: a job resumed after a crash repeats the call it was in, so each method
says what is true on the host once it returns and what a repeated call does (the same post-state,
never an error the first call would not have raised). ``tests/hypervisors/test_conformance.py``
holds every driver to this contract.

Errors: a driver raises only :class:`DriverError`. ``retry_elsewhere=True`` means the host failed
(unreachable, out of resources, a transient refusal) and another host may succeed: the planner
places a VM being started elsewhere. ``retry_elsewhere=False`` means no host would do better (the
VM is not where the call needs it, the request is impossible): the job fails with the error.

Where drivers differ, they say so in :attr:`HypervisorDriver.capabilities` (libcloud's
``features``) and callers check them instead of guessing from the driver's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.errors import OperationFailure
from core.hypervisors.summary import DomainSummary

# Capabilities (HypervisorDriver.capabilities)
SUSPEND = "suspend"  # suspend keeps the VM's memory and resume restores it (else resume is a fresh boot)
LIVE_ATTACH = "live-attach"  # attach_volume / detach_volume on a running VM
SERIAL_CONSOLE = "serial-console"  # serial_write: an interactive serial console
PUSH_CONFIG = "push-config"  # push_config: files written into a running system VM
RECONCILE = "reconcile"  # forget / collect_garbage act: a VM or a volume can outlive its host's view


class DriverError(Exception):
    """The hypervisor refused or failed. ``retry_elsewhere`` tells the planner to try another host."""

    def __init__(self, message: str, retry_elsewhere: bool = True):
        super().__init__(message)
        self.retry_elsewhere = retry_elsewhere

    def as_failure(self) -> OperationFailure:
        """The error a job's Operation ends with when the hypervisor failed for good: GCE reports a
        host-side failure as INTERNAL_ERROR (500) with the reason. The one place a driver's
        error becomes an Operation's; jobs ``raise exc.as_failure() from exc``."""
        return OperationFailure("INTERNAL_ERROR", str(self), 500)


@dataclass(frozen=True)
class HostRef:
    """A host as a driver sees it: its row's id (settings are read by it), name (for messages) and
    connection URI."""

    id: int
    name: str
    uri: str


@dataclass(frozen=True)
class DiskSpec:
    """A disk as attached to a VM: ``uid`` names its storage on the host; ``source_image`` (an image
    URL) fills it the first time a host makes it."""

    uid: int
    name: str
    size_gb: int
    boot: bool = False
    device_name: str = ""
    source_image: str | None = None


@dataclass(frozen=True)
class NicSpec:
    name: str
    mac: str
    network: str
    ip: str | None = None


@dataclass(frozen=True)
class VmSpec:
    """What a VM is made of; ``uid`` (the instance's or system VM's) names it on every host."""

    uid: int
    name: str
    hostname: str
    vcpus: int
    memory_mb: int
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HostStats:
    """What a host has, as its hypervisor reports it (the host monitor records it)."""

    cpus: int
    memory_mb: int
    free_memory_mb: int
    running_vms: int
    # The host's disk storage pool, where the driver has one (libvirt); 0 when it has none.
    storage_gb: int = 0
    storage_free_gb: int = 0
    hostname: str = ""


class HypervisorDriver(ABC):
    """One hypervisor kind; one instance serves every host of that kind (a host is named by the
    :class:`HostRef` of each call). Methods may be called from several threads and processes at once.

    VM states, as :meth:`list_instances` reports them: ``running``, ``shutoff`` (defined, not
    running, no saved state) and ``paused`` (suspended: its state kept in memory or on disk).
    """

    name: str = "base"
    capabilities: frozenset[str] = frozenset()

    @abstractmethod
    def host_stats(self, host: HostRef) -> HostStats:
        """What ``host`` has (CPUs, memory, running gstack VMs, disk storage). Read-only, so
        repeating it is harmless.

        Raises DriverError(retry_elsewhere=True) when the host cannot be reached: the host monitor
        marks a host Down on that."""

    @abstractmethod
    def spawn(self, host: HostRef, vm: VmSpec) -> None:
        """Define the VM on ``host`` (its disks made on first use) and start it: afterwards
        :meth:`list_instances` shows it ``running`` there. Also the start of a stopped VM: the
        definition follows ``vm`` (a changed machine type or disk set), a saved state is discarded.

        Idempotent: a VM already running on ``host`` is left as it is; a paused one runs again.

        Raises DriverError(retry_elsewhere=True) when the host failed to start it, leaving no new VM
        behind (the job places it elsewhere); retry_elsewhere=False when no host could (an image
        missing from the host's pool, a bad network mapping)."""

    def spawn_many(self, vms: list[tuple[HostRef, VmSpec]]) -> list[DriverError | None]:
        """:meth:`spawn` for several VMs (a burst of inserts), each one's error in its place: the
        post-condition and idempotency of :meth:`spawn` hold for every VM whose entry is None.
        Raises nothing itself. Drivers whose spawns share a cost (one transaction, one connection)
        override it."""
        errors: list[DriverError | None] = []
        for host, vm in vms:
            try:
                self.spawn(host, vm)
                errors.append(None)
            except DriverError as exc:
                errors.append(exc)
        return errors

    @abstractmethod
    def power_off(self, host: HostRef, vm_uid: int) -> None:
        """Stop the VM (a clean shutdown first where the driver can): afterwards it is ``shutoff``
        on ``host``, its disks kept, any saved state discarded.

        Idempotent: a VM already off, or one the host does not have, is left alone.

        Raises DriverError(retry_elsewhere=True) when the host cannot be reached; callers treat that
        as stopped (a VM on an unreachable host runs nowhere they can see)."""

    @abstractmethod
    def reboot(self, host: HostRef, vm_uid: int) -> None:
        """Hard-reset a running VM (GCE's ``reset``): afterwards it is ``running`` on ``host``, booted
        anew.

        Not idempotent in effect (a repeat resets again) but in post-state: the VM runs.

        Raises DriverError(retry_elsewhere=False) when the host does not have the VM or it is shut
        off; retry_elsewhere=True when the host cannot be reached."""

    @abstractmethod
    def suspend(self, host: HostRef, vm_uid: int) -> None:
        """Suspend a running VM: afterwards it is ``paused`` on ``host``, its memory kept (on disk
        where the driver can, freeing the host's memory: see the ``suspend`` capability).

        Idempotent: a VM already paused, shut off or missing is left alone.

        Raises DriverError(retry_elsewhere=True) when the host cannot be reached."""

    @abstractmethod
    def resume(self, host: HostRef, vm: VmSpec) -> None:
        """Run a suspended VM again on ``host`` (which may differ from the host it was suspended on):
        afterwards it is ``running`` there, its saved state restored where the host has it, else
        started as :meth:`spawn` would.

        Idempotent: a VM already running on ``host`` is left alone.

        Raises as :meth:`spawn` does."""

    @abstractmethod
    def destroy(self, host: HostRef | None, vm_uid: int) -> None:
        """Remove the VM and its local state from ``host`` (None: the host the VM was last placed
        on, if any): afterwards the host does not list it. Storage of its disks that go with it
        (autoDelete, used by no other VM) or are deleted already goes too; other disks stay.

        Idempotent: destroying a missing VM is a no-op.

        Raises DriverError(retry_elsewhere=True) when the host cannot be reached (the simulator,
        whose VMs live in the database, destroys them all the same)."""

    @abstractmethod
    def attach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None:
        """Attach ``disk`` (its storage made on first use) to the VM on ``host``: live where the VM
        runs (``live-attach``), else at its next start. The VM's power state is unchanged.

        Idempotent: a disk already attached is left alone.

        Raises DriverError(retry_elsewhere=False) when the host does not have the VM or refuses."""

    @abstractmethod
    def detach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None:
        """Detach ``disk`` from the VM on ``host``, keeping the disk's storage. The VM's power state
        is unchanged.

        Idempotent: a disk not attached, or a VM the host does not have, is left alone.

        Raises DriverError(retry_elsewhere=False) when the host refuses."""

    @abstractmethod
    def serial_output(self, vm_uid: int, start: int) -> tuple[str, int, int]:
        """(contents, start, next) of the VM's serial port 1 from byte ``start`` (negative: counted
        from the end), ``start`` clamped to the oldest byte kept (the last 1 MB); ``next`` is where
        the next read starts. Found by the VM's uid alone: it is read after the VM stopped and
        left its host. Read-only; a VM with no output (or unknown) gives ``("", 0, 0)``.

        Raises DriverError(retry_elsewhere=True) when the host holding the log cannot be reached."""

    @abstractmethod
    def list_instances(self, host: HostRef) -> dict[int, str]:
        """VM uid -> power state (running | shutoff | paused) of the gstack VMs ``host`` really
        has, whatever the database says (the host monitor reconciles the two). Read-only.

        Raises DriverError(retry_elsewhere=True) when the host cannot be reached (the simulator,
        whose VMs live in the database, answers for a host that is down: callers ask only of hosts
        that are up)."""

    @abstractmethod
    def cpu_times(self, host: HostRef, vm_uids: list[int]) -> dict[int, float]:
        """VM uid -> the CPU time (seconds, all its vCPUs together) each of ``vm_uids`` that runs on
        ``host`` has used since it last started; VMs the host does not run are left out. A cumulative
        counter: the caller's utilisation is the difference of two readings over the wall time
        between them and the VM's vCPUs (the autoscaler, :mod:`core.services.autoscalers`). It may
        start again from zero when the VM starts again (a reading lower than the last is a new
        start). Read-only.

        Raises DriverError(retry_elsewhere=True) when the host cannot be reached."""

    # -- optional: the host monitor's hooks (core.services.host_monitor); the defaults suit a driver
    # without them

    def shares_state(self, host: HostRef) -> bool:
        """Whether every process sees the same host. libvirt's ``test://`` hosts live in the memory of
        the process that opened them, so only that process may judge what they run."""
        return True

    def domain_summary(self, host: HostRef, aside: frozenset[int]) -> DomainSummary:
        """:meth:`list_instances` in a few numbers (:mod:`core.hypervisors.summary`), which the
        host monitor's routine round compares with the database's. This default digests the
        list; a driver that can count without listing (the simulator, in SQL) does so. Read-only.

        Raises DriverError(retry_elsewhere=True) when the host cannot be reached."""
        return DomainSummary.of(self.list_instances(host), aside)

    def forget(self, host: HostRef, vm_uid: int) -> None:
        """Remove a stale copy of a VM from ``host`` (it runs elsewhere now, or was deleted while the
        host was down), keeping its disks: afterwards the host does not list it. Idempotent. A
        driver whose VMs live in one place only has no copies (no ``reconcile`` capability)."""
        return None

    def collect_garbage(self, host: HostRef) -> list[str]:
        """Remove what the host keeps for disks that no longer exist; the names of what went (none
        on a repeat). Only drivers with the ``reconcile`` capability keep anything."""
        return []

    # -- optional: system VMs (core.systemvms); a driver without them cannot host routers or consoles

    def push_config(self, host: HostRef, vm_uid: int, files: Mapping[str, str | None]) -> None:
        """Write ``files`` (path in the VM -> content) into a running system VM and reload what reads
        them; a path given None is removed (a removed instance's files: emptied instead, they would
        pile up in the router, each read again at every reload); files not named are left as they
        are. Idempotent: the same files again give the same contents (and another reload).

        Raises DriverError(retry_elsewhere=False) when the VM is not running on ``host``, and always
        on a driver without the ``push-config`` capability."""
        raise DriverError(f"the {self.name} driver cannot push configuration into VMs", retry_elsewhere=False)

    def serial_write(self, host: HostRef, vm_uid: int, data: str) -> None:
        """Type ``data`` on the VM's serial port 1 (the interactive console); what the guest answers
        appears in :meth:`serial_output`. Not idempotent (a repeat types again): the console proxy
        calls it outside jobs.

        Raises DriverError(retry_elsewhere=False) when the VM is not running on ``host``, and always
        on a driver without the ``serial-console`` capability."""
        raise DriverError(f"the {self.name} driver has no interactive serial console", retry_elsewhere=False)

    # -- optional: leaving; the defaults suit a driver whose VMs outlive gstack (libvirt's domains)

    def release_host(self, host: HostRef) -> None:
        """``host`` leaves gstack (``gstack admin host remove``): remove whatever the driver made on
        it. Idempotent."""
        return None

    def shutdown(self) -> None:
        """``gstack serve`` stops: remove what must not outlive it (the netns driver's namespaces and
        bridges). Idempotent."""
        return None
