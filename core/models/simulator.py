"""The simulator hypervisor's domains. Kept in the database so every process sees one truth."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base


class SimDomain(Base):
    __tablename__ = "sim_domains"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_uid: Mapped[int] = mapped_column(BigInteger, unique=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))  # running | shutoff | paused
    # The newest serial output (under the simulator's CONSOLE_CHUNK bytes); what came before it is
    # in SimConsoleChunk rows, so an append rewrites this short text, never the whole console.
    console: Mapped[str] = mapped_column(Text, default="")
    # Bytes of serial output dropped from the front (only the last 1 MB is kept, as on GCE).
    console_dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    boots: Mapped[int] = mapped_column(Integer, default=0)


class SimConsoleChunk(Base):
    """A full piece of a domain's serial output, older than its ``console``: the pieces in ``seq``
    order, then ``console``, are the output kept (see ``core.hypervisors.simulator``). Keyed by the
    instance, so a domain's pieces are one range of the primary key."""

    __tablename__ = "sim_console_chunks"
    instance_uid: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)  # bytes of ``data`` in UTF-8


class SimServing(Base):
    """An instance the operator made fail its health checks (``gstack admin health set``): the
    simulated guest stops answering probes while it keeps RUNNING. No row: it answers."""

    __tablename__ = "sim_serving"
    instance_uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    serving: Mapped[bool] = mapped_column(Boolean, default=True)


class SimCpuLoad(Base):
    """The simulated CPU load of a VM (``gstack admin simulator set-cpu``): ``busy`` vCPUs since
    ``since``, on top of the ``used`` CPU seconds counted before. A row of its own (not a column of
    :class:`SimDomain`) so that setting a load survives the domain's restart and an admin process
    can set it while the server runs."""

    __tablename__ = "sim_cpu_loads"
    vm_uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    busy: Mapped[float] = mapped_column(Float, default=0.0)
    since: Mapped[float] = mapped_column(Float)
    used: Mapped[float] = mapped_column(Float, default=0.0)
