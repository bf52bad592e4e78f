"""Which driver serves which host: by the host's cluster hypervisor name."""

from __future__ import annotations

import os

from sqlalchemy.orm import Session, sessionmaker

from core.hypervisors.base import HypervisorDriver


class DriverRegistry:
    def __init__(self, drivers: dict[str, HypervisorDriver]):
        self._drivers = drivers

    def get(self, hypervisor: str) -> HypervisorDriver:
        try:
            return self._drivers[hypervisor]
        except KeyError:
            raise LookupError(f"no driver for hypervisor '{hypervisor}'") from None

    def __contains__(self, hypervisor: str) -> bool:
        return hypervisor in self._drivers

    def shutdown(self) -> None:
        """The serving process stops: each driver removes what must not outlive it."""
        for driver in self._drivers.values():
            driver.shutdown()


def default_registry(factory: sessionmaker[Session], sim_latency: dict[str, float] | float = 0.0, data_dir: str | None = None) -> DriverRegistry:
    """Every driver this installation can use, by hypervisor name (what clusters refer to).

    The libvirt driver imports libvirt-python only when a libvirt host is used, so an installation
    without it (the simulator-only default) works; ``data_dir`` holds the console logs of
    ``test://`` hosts.
    """
    from core.hypervisors.libvirt import LibvirtDriver
    from core.hypervisors.netns import NetnsDriver
    from core.hypervisors.simulator import SimulatorDriver

    state_dir = os.path.join(data_dir, "libvirt") if data_dir else None
    netns = NetnsDriver(factory, os.path.join(data_dir, "netns") if data_dir else None)
    return DriverRegistry({"simulator": SimulatorDriver(factory, sim_latency),
                           "libvirt": LibvirtDriver(factory, state_dir, routers=netns),  # routers beside its hosts
                           "netns": netns})


HYPERVISORS = ("simulator", "libvirt", "netns")
