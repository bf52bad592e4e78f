"""An Operation is a durable job: the API shows the first half, workers use the second."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base


class Operation(Base):
    __tablename__ = "operations"
    __table_args__ = (
        UniqueConstraint("project", "client_operation_id", name="uq_operation_request_id"),
        # A list's pages in either order GCE sorts by: a page reads a page of rows however long the
        # scope's history. By name (the default order), and newest first (creationTimestamp desc),
        # walked backwards.
        Index("ix_operation_scope", "project", "scope", "name"),
        Index("ix_operation_list", "project", "scope", "insert_time", "pk"),
        Index("ix_operation_claim", "status", "lease_expiry"),
        Index("ix_operation_target", "target_id", "status"),
        # the backpressure bound counts a project's unfinished Operations on every write
        Index("ix_operation_project_status", "project", "status"),
    )
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[int] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    project: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(80))
    operation_type: Mapped[str] = mapped_column(String(64))
    target_link: Mapped[str] = mapped_column(String(400))
    target_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    status_message: Mapped[str | None] = mapped_column(String(400), nullable=True)
    user: Mapped[str] = mapped_column(String(255), default="")
    client_operation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    insert_time: Mapped[float] = mapped_column(Float)
    start_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    http_error_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    http_error_message: Mapped[str | None] = mapped_column(String(64), nullable=True)
    warnings: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The job half: which handler runs it, with what, and who holds it.
    job: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text, default="{}")
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expiry: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
