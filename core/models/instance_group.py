"""Members of unmanaged instance groups: which instances a group holds.

GCE's InstanceGroup has no member list (``listInstances`` is how one reads it), so the members
cannot live in the stored body GET returns. One row per (group, instance): an instance may be in
several groups, its deletion finds its groups by index, and ``listInstances`` joins the instances'
rows for their status.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base


class InstanceGroupMember(Base):
    __tablename__ = "instance_group_members"
    __table_args__ = (UniqueConstraint("group_uid", "instance_uid", name="uq_instance_group_member"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_uid: Mapped[int] = mapped_column(BigInteger, index=True)
    instance_uid: Mapped[int] = mapped_column(BigInteger, index=True)
    added: Mapped[float] = mapped_column(Float)
