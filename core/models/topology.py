"""CloudStack's topology: region > zone > pod > cluster > host, plus primary storage pools."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.models.base import Base


class Region(Base):
    __tablename__ = "regions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[int] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="UP")
    zones: Mapped[list[Zone]] = relationship(back_populates="region", order_by="Zone.name")


class Zone(Base):
    __tablename__ = "zones"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[int] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    status: Mapped[str] = mapped_column(String(16), default="UP")
    # Architecture of the system VM template (x86_64 or i386): a zone setting, as in CloudStack.
    systemvm_arch: Mapped[str] = mapped_column(String(16), default="x86_64")
    region: Mapped[Region] = relationship(back_populates="zones")


class Pod(Base):
    __tablename__ = "pods"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    name: Mapped[str] = mapped_column(String(63))
    cidr: Mapped[str] = mapped_column(String(43), default="")


class Cluster(Base):
    __tablename__ = "clusters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pod_id: Mapped[int] = mapped_column(ForeignKey("pods.id"))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    hypervisor: Mapped[str] = mapped_column(String(32), default="simulator")
    cpu_overprovisioning: Mapped[float] = mapped_column(Float, default=4.0)
    memory_overprovisioning: Mapped[float] = mapped_column(Float, default=1.0)


class Host(Base):
    """A hypervisor. Its free capacity is derived from the VMs placed on it, never stored."""

    __tablename__ = "hosts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"), index=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    uri: Mapped[str] = mapped_column(String(255), default="simulator://")
    cpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    cpu_platform: Mapped[str] = mapped_column(String(64), default="Intel Broadwell")
    # Up | Down | Maintenance (CloudStack's resource states, simplified)
    status: Mapped[str] = mapped_column(String(16), default="Up")
    # Simulator fault injection: the next N spawns on this host fail.
    fail_next_spawns: Mapped[int] = mapped_column(Integer, default=0)
    # Driver settings as JSON (libvirt: storage pools, network mapping, console directory).
    options: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The host monitor (core.services.host_monitor): which process checks the host until when, and what
    # it saw.
    monitor_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    monitor_expiry: Mapped[float | None] = mapped_column(Float, nullable=True)
    failures: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    cluster: Mapped[Cluster] = relationship()


class StoragePool(Base):
    """Primary storage. Zone-wide when ``cluster_id`` is NULL (CloudStack's zone-wide primary storage)."""

    __tablename__ = "storage_pools"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), index=True)
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    capacity_gb: Mapped[int] = mapped_column(BigInteger)
    overprovisioning: Mapped[float] = mapped_column(Float, default=2.0)
    status: Mapped[str] = mapped_column(String(16), default="Up")
