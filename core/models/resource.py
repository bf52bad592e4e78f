"""Every GCE resource a project owns, stored as its canonical JSON body.

The body is what GET returns (links on https://www.googleapis.com/compute/v1/, rewritten to the
caller's base URL when rendered), so reads pass text through without rebuilding objects. The
columns beside it are what the core queries: scope, status and the capacity the resource holds.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base


class Resource(Base):
    __tablename__ = "resources"
    __table_args__ = (
        # Also the index of lookups by name and of lists (project, collection, scope, name order).
        UniqueConstraint("project", "collection", "scope", "name", name="uq_resource_name"),
        # Covering indexes for summing what a host or pool holds without reading the table (whose
        # rows carry the JSON body before these columns). Placement reads the counters instead
        # (CapacityUsage), as quota checks read ResourceUsage.
        Index("ix_resource_host_usage", "host_id", "vcpus", "memory_mb"),
        Index("ix_resource_pool_usage", "pool_id", "size_gb"),
        # Lists in creationTimestamp order walk this instead of sorting the collection.
        Index("ix_resource_created", "project", "collection", "scope", "created", "pk"),
        # Reads of a collection across projects (a router's render: its network's subnetworks in the
        # region, the Cloud NAT routers on it) walk that collection instead of the whole table, whose
        # instances and disks grow with the cloud. On PostgreSQL it holds the name too: its planner
        # picked it over uq_resource_name for a lookup by name whenever its statistics lagged behind
        # a fast growth, and walked the zone's instances (migration 0019); with the name, one step to
        # the row (ix_resource_created may still be taken so: the operator's guide). SQLite keeps the two columns: it seeks a family's images through them
        # by rowid (the index's hidden last column), which a name between would prevent.
        Index("ix_resource_collection_scope", "collection", "scope").ddl_if(dialect="sqlite"),
        Index("ix_resource_collection_scope_name", "collection", "scope", "name").ddl_if(dialect="postgresql"),
        # The host monitor's look at a host: what it runs (host_id, above) and the stopped instances
        # it ran last, without walking every instance of the cloud for each host.
        Index("ix_resource_last_host", "last_host_id"),
    )
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[int] = mapped_column(BigInteger, unique=True)
    project: Mapped[str] = mapped_column(String(100))
    collection: Mapped[str] = mapped_column(String(40))
    # "zones/us-central1-a", "regions/us-central1" or "global"
    scope: Mapped[str] = mapped_column(String(80))
    region: Mapped[str | None] = mapped_column(String(63), nullable=True)
    name: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(24), default="")
    # The offering it uses: disk type for disks (quota metric), machine type for instances.
    subtype: Mapped[str] = mapped_column(String(64), default="")
    created: Mapped[float] = mapped_column(Float)
    body: Mapped[str] = mapped_column(Text)
    # Capacity held: a placed VM holds vcpus/memory on host_id; a disk holds size_gb on pool_id.
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"), nullable=True)
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("storage_pools.id"), nullable=True)
    # Where a VM last ran: its domain (and serial log) lives there while it is stopped.
    last_host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"), nullable=True)
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    size_gb: Mapped[int] = mapped_column(BigInteger, default=0)


class ResourceUsage(Base):
    """What a project's instances and disks hold in a region, per collection and subtype: the quota
    usage, read with one lookup instead of summing every resource on every insert.

    Database triggers keep it (:mod:`core.usage`), in the transaction that changes the resource
    row, whatever code path changes it; nothing in Python writes it.
    """

    __tablename__ = "resource_usage"
    project: Mapped[str] = mapped_column(String(100), primary_key=True)
    region: Mapped[str] = mapped_column(String(63), primary_key=True)
    collection: Mapped[str] = mapped_column(String(40), primary_key=True)
    subtype: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    cpus: Mapped[int] = mapped_column(Integer, default=0)  # of those not TERMINATED
    size_gb: Mapped[int] = mapped_column(BigInteger, default=0)


class CapacityUsage(Base):
    """What the resources placed on a host (``holder`` "host": vCPUs, memory) or a storage pool
    ("pool": GB) hold, and how many they are: placement reads one row per host or pool instead of
    summing every resource on it, a sum that grew with the zone (100,000 instances on one host
    made each placement read 100,000 index entries).

    Database triggers keep it (:mod:`core.usage`) in the transaction that moves the resource's
    ``host_id``/``pool_id`` or changes what it holds, so, as when the sum was taken, no code path
    and no crash can leak capacity; nothing in Python writes it.
    """

    __tablename__ = "capacity_usage"
    holder: Mapped[str] = mapped_column(String(8), primary_key=True)  # "host" or "pool"
    holder_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)  # the resources placed on it
    vcpus: Mapped[int] = mapped_column(BigInteger, default=0)
    memory_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    size_gb: Mapped[int] = mapped_column(BigInteger, default=0)


# Compared bytewise on PostgreSQL as on SQLite: a prefix is then a key range of the index whatever
# the database's locale (in most locales punctuation sorts at a lower level than letters).
_BYTEWISE = String().with_variant(String(collation="C"), "postgresql")


class ResourceTerm(Base):
    """One string value a resource's body holds in a field that list filters test: its status,
    zone, name, each label, each network interface's IP (:mod:`core.terms` says which).

    Database triggers keep the rows from the body, in the transaction that writes it. The scope
    and name beside the value let a filtered list walk one index range in page order: a page
    costs the same whatever the collection's size and whatever share of it the filter matches.
    """

    __tablename__ = "resource_terms"
    __table_args__ = (
        Index("ix_resource_term_list", "project", "collection", "scope", "field", "value", "name"),
    )
    resource_pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    field: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(_BYTEWISE, primary_key=True)
    project: Mapped[str] = mapped_column(String(100))
    collection: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(_BYTEWISE)  # the page order of narrowed lists, merged in Python


class IpAllocation(Base):
    """One address handed out from a pool (a subnet, or a region's external range). The unique
    constraint is what guarantees an address is never given twice, also across processes."""

    __tablename__ = "ip_allocations"
    __table_args__ = (UniqueConstraint("pool", "address", name="uq_ip_allocation"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool: Mapped[str] = mapped_column(String(120))
    address: Mapped[int] = mapped_column(BigInteger)
    owner_uid: Mapped[int] = mapped_column(BigInteger, index=True)
    # An ephemeral external address of an instance, forwarding rule or Cloud NAT: the project whose
    # IN_USE_ADDRESSES it counts in (triggers keep the count, see core.usage). None: any other.
    project: Mapped[str | None] = mapped_column(String(100), nullable=True)
