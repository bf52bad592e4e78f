"""Guest attributes: values a guest writes about itself through its metadata server
(``instance/guest-attributes/NAMESPACE/KEY``), read back by instances.getGuestAttributes.

They live beside the instance's body, not in it: a guest writes them often (host keys, agent
status) and a write must not change the instance's fingerprint, nor wake a guest that waits on
its attributes.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base


class GuestAttribute(Base):
    __tablename__ = "guest_attributes"
    __table_args__ = (UniqueConstraint("instance_uid", "namespace", "key", name="uq_guest_attribute"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_uid: Mapped[int] = mapped_column(BigInteger, index=True)
    namespace: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(Text)
    updated: Mapped[float] = mapped_column(Float)
