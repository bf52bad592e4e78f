"""Guest attributes: what a guest writes about itself under ``instance/guest-attributes/`` of its
metadata server (host keys, agent status), and what instances.getGuestAttributes shows of it.

A guest names a value ``NAMESPACE/KEY``; GCE limits the names to letters, digits, ``-`` and ``_``
and a value to 256 KiB. Writes are refused unless the instance or its project sets the metadata
key ``enable-guest-attributes`` to TRUE, as on GCE.
"""

from __future__ import annotations

import re
import time

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.models import GuestAttribute

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
MAX_VALUE = 256 * 1024
ENABLE_KEY = "enable-guest-attributes"


class GuestAttributeError(ValueError):
    """A guest's write named a bad namespace or key, or carried too large a value."""


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def enabled(instance_items: dict[str, str], project_items: dict[str, str]) -> bool:
    """Whether the guest may write: the instance's key wins over the project's (GCE's precedence)."""
    value = instance_items.get(ENABLE_KEY, project_items.get(ENABLE_KEY, ""))
    return value.strip().upper() == "TRUE"


def put(session: Session, instance_uid: int, namespace: str, key: str, value: str) -> None:
    """Write one value (replacing the one before) in the caller's write transaction."""
    if not valid_name(namespace) or not valid_name(key):
        raise GuestAttributeError("namespace and key must be 1-64 letters, digits, '-' or '_'")
    if len(value.encode()) > MAX_VALUE:
        raise GuestAttributeError(f"a guest attribute value is at most {MAX_VALUE} bytes")
    row = session.scalar(select(GuestAttribute).where(GuestAttribute.instance_uid == instance_uid,
                                                      GuestAttribute.namespace == namespace,
                                                      GuestAttribute.key == key))
    if row is None:
        session.add(GuestAttribute(instance_uid=instance_uid, namespace=namespace, key=key, value=value,
                                   updated=time.time()))
    else:
        row.value, row.updated = value, time.time()
    session.flush()


def remove(session: Session, instance_uid: int, namespace: str, key: str | None = None) -> None:
    """Delete one value, or a whole namespace (``key`` None)."""
    q = delete(GuestAttribute).where(GuestAttribute.instance_uid == instance_uid,
                                     GuestAttribute.namespace == namespace)
    session.execute(q if key is None else q.where(GuestAttribute.key == key))


def forget_instance(session: Session, instance_uid: int) -> None:
    """Everything a deleted instance's guest wrote."""
    session.execute(delete(GuestAttribute).where(GuestAttribute.instance_uid == instance_uid))


def values(session: Session, instance_uid: int, namespace: str | None = None) -> list[tuple[str, str, str]]:
    """(namespace, key, value) of the instance, by namespace and key; one namespace's only when named."""
    q = select(GuestAttribute.namespace, GuestAttribute.key, GuestAttribute.value).where(
        GuestAttribute.instance_uid == instance_uid)
    if namespace is not None:
        q = q.where(GuestAttribute.namespace == namespace)
    return [(ns, key, value) for ns, key, value in session.execute(q.order_by(GuestAttribute.namespace,
                                                                             GuestAttribute.key))]
