"""Address allocation: lowest free address of a pool, guarded by a unique constraint."""

from __future__ import annotations

import ipaddress

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import flushed_connection, interleaving_savepoint
from core.errors import BadRequest
from core.models import IpAllocation

# The range ephemeral external addresses come from (RFC 2544 benchmark space: never routed).
EXTERNAL_RANGE = "198.18.0.0/15"


def allocate(session: Session, pool: str, cidr: str, owner_uid: int, reserved_head: int = 2) -> str:
    """The next free address of the pool. Concurrent transactions (PostgreSQL) may pick the same
    one: the unique constraint refuses all but one, and the others try again past it."""
    for _ in range(50):
        try:
            with interleaving_savepoint(session):
                return _allocate_once(session, pool, cidr, owner_uid, reserved_head)
        except IntegrityError:
            continue
    raise BadRequest(f"Could not allocate an address of {cidr}: too many concurrent allocations.")


_HIGHEST = select(func.max(IpAllocation.address)).where(IpAllocation.pool == bindparam("pool"))
_TAKE = insert(IpAllocation).values(pool=bindparam("pool"), address=bindparam("address"),
                                    owner_uid=bindparam("owner_uid"))


def _allocate_once(session: Session, pool: str, cidr: str, owner_uid: int, reserved_head: int) -> str:
    """Take the next free host address of ``cidr`` (skipping network, gateway and broadcast).

    Addresses go up from the highest one handed out, so a released address is not reused while
    the range has room (a DHCP-like rule that keeps stale ARP and DNS entries harmless).
    """
    net = ipaddress.ip_network(cidr)
    first = int(net.network_address) + reserved_head
    last = int(net.broadcast_address) - 2  # GCE keeps the second-to-last address too
    conn = flushed_connection(session)
    highest = conn.execute(_HIGHEST, {"pool": pool}).scalar()
    if highest is None or first <= highest < last:
        candidate = first if highest is None else highest + 1
        conn.execute(_TAKE, {"pool": pool, "address": candidate, "owner_uid": owner_uid})
        return str(ipaddress.ip_address(candidate))
    # The top of the range is taken: fill the lowest gap left by released addresses.
    used = set(session.scalars(select(IpAllocation.address).where(IpAllocation.pool == pool)))
    for candidate in range(first, last + 1):
        if candidate not in used:
            session.add(IpAllocation(pool=pool, address=candidate, owner_uid=owner_uid))
            session.flush()
            return str(ipaddress.ip_address(candidate))
    raise BadRequest(f"The IP range {cidr} has no free address left.")


def reserve(session: Session, pool: str, address: str, owner_uid: int) -> bool:
    """Take one given address; False if it is taken (also by a concurrent transaction)."""
    value = int(ipaddress.ip_address(address))
    if session.scalar(select(IpAllocation.id).where(IpAllocation.pool == pool, IpAllocation.address == value)):
        return False
    try:
        with session.begin_nested():
            session.add(IpAllocation(pool=pool, address=value, owner_uid=owner_uid))
    except IntegrityError:
        return False
    return True


def release_owner(session: Session, owner_uid: int) -> None:
    session.execute(delete(IpAllocation).where(IpAllocation.owner_uid == owner_uid))


def mac_for(address: str) -> str:
    """GCE's MAC scheme: 42:01 followed by the four octets of the internal address."""
    octets = ipaddress.ip_address(address).packed
    return "42:01:" + ":".join(f"{b:02x}" for b in octets)
