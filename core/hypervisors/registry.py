"""Which driver serves which host: by the host's cluster hypervisor name."""

from __future__ import annotations

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


def default_registry(factory, sim_latency: dict | float = 0.0) -> DriverRegistry:
    """Every driver this installation can use, by hypervisor name (what clusters refer to)."""
    from core.hypervisors.simulator import SimulatorDriver

    return DriverRegistry({"simulator": SimulatorDriver(factory, sim_latency)})
