"""SQLAlchemy 2.0 models of the core. flask-sqlalchemy reuses ``Base`` as its model class."""

from core.models.base import Base
from core.models.guest_attribute import GuestAttribute
from core.models.identity import (
    AccessToken,
    Membership,
    Principal,
    Project,
    RefreshToken,
    ServiceAccountKey,
    SigningKey,
    UsedAssertion,
)
from core.models.instance_group import InstanceGroupMember
from core.models.operation import Operation
from core.models.resource import CapacityUsage, IpAllocation, Resource, ResourceTerm, ResourceUsage
from core.models.revision import ResourceRevision
from core.models.simulator import SimConsoleChunk, SimCpuLoad, SimDomain, SimServing
from core.models.systemvm import ConsoleTicketUse, SecondaryObject, SimVmFile, SystemSetting, SystemVm
from core.models.topology import Cluster, Host, Pod, Region, StoragePool, Zone

__all__ = [
    "AccessToken",
    "CapacityUsage",
    "Base",
    "Cluster",
    "ConsoleTicketUse",
    "GuestAttribute",
    "Host",
    "InstanceGroupMember",
    "IpAllocation",
    "Membership",
    "Operation",
    "Pod",
    "Principal",
    "Project",
    "RefreshToken",
    "Region",
    "Resource",
    "ResourceRevision",
    "ResourceTerm",
    "ResourceUsage",
    "SecondaryObject",
    "ServiceAccountKey",
    "SigningKey",
    "SimConsoleChunk",
    "SimCpuLoad",
    "SimDomain",
    "SimServing",
    "SimVmFile",
    "StoragePool",
    "SystemSetting",
    "SystemVm",
    "UsedAssertion",
    "Zone",
]
