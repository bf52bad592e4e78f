"""A job's lease: who holds it (a process of a host) and until when, and its recovery after a crash.

A worker process names itself ``host:pid:nonce`` (:func:`local_owner_id`), so that a process that
starts on a host can tell which leases belong to processes of that host that died, and release
them at once (:func:`reclaim_dead_local`) instead of waiting for them to lapse.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import unflushed_commit, write_session
from core.jobs.handlers import LEASE_SECONDS
from core.models import Operation

log = logging.getLogger("gstack.jobs")


def local_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim_dead_local(factory: sessionmaker[Session]) -> int:
    """Release leases held by processes of this host that no longer exist (a crash)."""
    host = socket.gethostname()
    released = 0
    with write_session(factory) as session:
        rows = session.execute(
            select(Operation.pk, Operation.lease_owner).where(
                Operation.status != "DONE", Operation.lease_owner.is_not(None))
        ).all()
        for pk, owner in rows:
            parts = (owner or "").split(":")
            if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and not _pid_alive(int(parts[1])):
                session.execute(update(Operation).where(Operation.pk == pk)
                                .values(lease_owner=None, lease_expiry=None))
                released += 1
    if released:
        log.info("released %d job lease(s) of crashed processes", released)
    return released


def extend(factory: sessionmaker[Session], owner: str, pks: list[int]) -> None:
    """The heartbeat: ``owner``'s jobs ``pks`` are alive, their leases run ``LEASE_SECONDS`` more."""
    with write_session(factory) as session:
        unflushed_commit(session)  # the next beat, or a crash, makes it moot
        session.execute(update(Operation).where(Operation.pk.in_(pks), Operation.lease_owner == owner)
                        .values(lease_expiry=time.time() + LEASE_SECONDS))
