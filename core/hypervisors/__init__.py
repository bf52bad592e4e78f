"""Hypervisor drivers, selected by the cluster's ``hypervisor`` name (libcloud style)."""

from core.hypervisors.base import DiskSpec, DriverError, HypervisorDriver, NicSpec, VmSpec
from core.hypervisors.registry import DriverRegistry

__all__ = ["DiskSpec", "DriverError", "DriverRegistry", "HypervisorDriver", "NicSpec", "VmSpec"]
