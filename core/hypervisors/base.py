"""The driver interface every hypervisor implements (after Nova's ``virt/driver.py``).

Every call must be idempotent: a job resumed after a crash repeats the call it was in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


class DriverError(Exception):
    """The hypervisor refused or failed. ``retry_elsewhere`` tells the planner to try another host."""

    def __init__(self, message: str, retry_elsewhere: bool = True):
        super().__init__(message)
        self.retry_elsewhere = retry_elsewhere


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


class HypervisorDriver(ABC):
    name: str = "base"
    capabilities: frozenset[str] = frozenset()

    @abstractmethod
    def host_stats(self, host: HostRef) -> HostStats: ...

    @abstractmethod
    def spawn(self, host: HostRef, vm: VmSpec) -> None:
        """Define and start the VM. Spawning a VM that already runs there is a no-op."""

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
