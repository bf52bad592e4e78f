"""The driver interface every hypervisor implements (after Nova's ``virt/driver.py``).

Every call must be idempotent: a job resumed after a crash repeats the call it was in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from core.errors import OperationFailure


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
    id: int
    name: str
    uri: str


@dataclass(frozen=True)
class DiskSpec:
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
    uid: int
    name: str
    hostname: str
    vcpus: int
    memory_mb: int
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class HostStats:
    cpus: int
    memory_mb: int
    free_memory_mb: int
    running_vms: int
    # The host's disk storage pool, where the driver has one (libvirt); 0 when it has none.
    storage_gb: int = 0
    storage_free_gb: int = 0
    hostname: str = ""


class HypervisorDriver(ABC):
    name: str = "base"
    capabilities: frozenset[str] = frozenset()

    @abstractmethod
    def host_stats(self, host: HostRef) -> HostStats: ...

    @abstractmethod
    def spawn(self, host: HostRef, vm: VmSpec) -> None:
        """Define and start the VM. Spawning a VM that already runs there is a no-op."""

    def spawn_many(self, vms: list[tuple[HostRef, VmSpec]]) -> list[DriverError | None]:
        """:meth:`spawn` for several VMs (a burst of inserts), each one's error in its place.

        Drivers whose spawns share a cost (one transaction, one connection) override it."""
        errors: list[DriverError | None] = []
        for host, vm in vms:
            try:
                self.spawn(host, vm)
                errors.append(None)
            except DriverError as exc:
                errors.append(exc)
        return errors

    @abstractmethod
    def power_on(self, host: HostRef, vm: VmSpec) -> None: ...

    @abstractmethod
    def power_off(self, host: HostRef, vm_uid: int) -> None: ...

    @abstractmethod
    def reboot(self, host: HostRef, vm_uid: int) -> None: ...

    @abstractmethod
    def suspend(self, host: HostRef, vm_uid: int) -> None: ...

    @abstractmethod
    def resume(self, host: HostRef, vm: VmSpec) -> None: ...

    @abstractmethod
    def destroy(self, host: HostRef | None, vm_uid: int) -> None:
        """Remove the VM and its local state; destroying a missing VM is a no-op."""

    @abstractmethod
    def attach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None: ...

    @abstractmethod
    def detach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None: ...

    @abstractmethod
    def serial_output(self, vm_uid: int, start: int) -> tuple[str, int, int]:
        """(contents, start, next) of serial port 1, ``start`` clamped to the oldest byte kept."""

    @abstractmethod
    def list_instances(self, host: HostRef) -> dict[int, str]:
        """VM uid -> power state (running | shutoff | paused) of what the host really has."""

    # -- optional: the host monitor's hooks (core.services.hosts); the defaults suit a driver without them

    def shares_state(self, host: HostRef) -> bool:
        """Whether every process sees the same host. libvirt's ``test://`` hosts live in the memory of
        the process that opened them, so only that process may judge what they run."""
        return True

    def forget(self, host: HostRef, vm_uid: int) -> None:
        """Remove a stale copy of a VM from ``host`` (it runs elsewhere now, or was deleted while the
        host was down), keeping its disks. A driver whose VMs live in one place only has none."""
        return None

    def collect_garbage(self, host: HostRef) -> list[str]:
        """Remove what the host keeps for disks that no longer exist; the names of what went."""
        return []

    # -- optional: system VMs (core.systemvms); a driver without them cannot host routers or consoles

    def push_config(self, host: HostRef, vm_uid: int, files: dict[str, str]) -> None:
        """Write ``files`` (path in the VM -> content) into a running system VM and reload what reads
        them; files not named are left as they are."""
        raise DriverError(f"the {self.name} driver cannot push configuration into VMs", retry_elsewhere=False)

    def serial_write(self, host: HostRef, vm_uid: int, data: str) -> None:
        """Type ``data`` on the VM's serial port 1 (the interactive console); what the guest answers
        appears in :meth:`serial_output`. Drivers with the ``serial-console`` capability have it."""
        raise DriverError(f"the {self.name} driver has no interactive serial console", retry_elsewhere=False)
