"""System VMs (CloudStack's virtual routers, console proxies and secondary storage VMs) and what they keep.

The capacity a system VM holds sits on a ``resources`` row of the hidden project ``gstack-system``
(collection ``systemvms``, same uid), so the planner counts it without knowing system VMs exist;
this table holds what only system VMs have: their role, template and configuration versions.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base


class SystemVm(Base):
    __tablename__ = "system_vms"
    __table_args__ = (Index("ix_system_vm_network", "network_uid"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The uid of its ``resources`` row and of its hypervisor domain.
    uid: Mapped[int] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(24))  # router | console_proxy | secondary_storage
    # One router per network and region, one proxy and one storage VM per zone: the unique key says so,
    # so two processes deploying at once cannot both succeed.
    role_key: Mapped[str] = mapped_column(String(200), unique=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), index=True)
    region: Mapped[str] = mapped_column(String(63))
    # Routers: the network they serve (its project may differ from the instances' on a shared VPC).
    network_uid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    network_url: Mapped[str | None] = mapped_column(String(400), nullable=True)
    project: Mapped[str | None] = mapped_column(String(100), nullable=True)
    arch: Mapped[str] = mapped_column(String(16))  # the system VM template's: x86_64 | i386
    # Starting | Running | Error (CloudStack's VM states, as far as system VMs go through them)
    state: Mapped[str] = mapped_column(String(16), default="Starting")
    public_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    # Routers: the connection tracking table's size the template allows (32-bit kernels cap it).
    conntrack_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Routers: the configuration rendered from the database (path -> sha256) and what the VM has.
    config_version: Mapped[int] = mapped_column(Integer, default=0)
    config_checksums: Mapped[str] = mapped_column(Text, default="{}")
    pushed_version: Mapped[int] = mapped_column(Integer, default=0)
    pushed_checksums: Mapped[str] = mapped_column(Text, default="{}")
    pushed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(400), nullable=True)
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)


class SystemSetting(Base):
    """Installation-wide values of the system VMs: the console proxy's ticket secret, the watchdog's heartbeat."""

    __tablename__ = "system_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ConsoleTicketUse(Base):
    """Digests of console tickets already redeemed, kept until they expire: a ticket opens one session."""

    __tablename__ = "console_ticket_uses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    expires: Mapped[float] = mapped_column(Float, index=True)


class SecondaryObject(Base):
    """An image or snapshot held by a zone's secondary storage (copied there by its storage VM)."""

    __tablename__ = "secondary_objects"
    __table_args__ = (UniqueConstraint("zone_id", "owner_uid", name="uq_secondary_object"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # image | snapshot
    # The image or snapshot resource it stores.
    owner_uid: Mapped[int] = mapped_column(BigInteger, index=True)
    source: Mapped[str] = mapped_column(String(400))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str] = mapped_column(String(64))  # sha256, hex
    copied_by: Mapped[str] = mapped_column(String(63))  # the storage VM's name
    created: Mapped[float] = mapped_column(Float)


class SimVmFile(Base):
    """A file the simulator keeps inside a system VM (what ``push_config`` wrote there)."""

    __tablename__ = "sim_vm_files"
    __table_args__ = (UniqueConstraint("vm_uid", "path", name="uq_sim_vm_file"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vm_uid: Mapped[int] = mapped_column(BigInteger, index=True)
    host_id: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    writes: Mapped[int] = mapped_column(Integer, default=0)
    written: Mapped[float] = mapped_column(Float)


class RouterGuest(Base):
    """What a router was last given for one instance: its fragment files' checksum and its DNS domain.

    A router's per-instance configuration (DHCP host, DNS record, NAT and firewall set entries) lives
    in one file per instance, so one instance's change renders and pushes that file alone; these rows
    say which instances a router holds files for (so a deleted instance's are emptied) and which DNS
    domains its guests are in, read by the router without scanning instances.
    """

    __tablename__ = "router_guests"
    __table_args__ = (UniqueConstraint("vm_uid", "instance_uid", name="uq_router_guest"),
                      Index("ix_router_guest_domain", "vm_uid", "domain"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vm_uid: Mapped[int] = mapped_column(BigInteger)
    instance_uid: Mapped[int] = mapped_column(BigInteger)
    domain: Mapped[str] = mapped_column(String(200))  # "ZONE PROJECT" of its NICs on the network
    checksum: Mapped[str] = mapped_column(String(64))  # "D1:D2:D3", short digests of its files as rendered (and pushed, unless stale)


class RouterSyncState(Base):
    """When a router's configuration was last rendered in full, and from which network context:
    the per-instance files depend on the network's firewall rules, subnetworks and NATs, so a change
    to those (a different context digest) renders every instance again."""

    __tablename__ = "router_sync_states"
    vm_uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    context: Mapped[str] = mapped_column(String(64))
    full_at: Mapped[float] = mapped_column(Float)
