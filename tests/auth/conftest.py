"""People and clients for the OAuth tests, created with the admin CLI on the session's server."""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass

import pytest

from tests.conftest import PROJECT, Server


def admin(server: Server, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``gstack admin ...`` on the server's database, optionally with standard input."""
    proc = subprocess.run([sys.executable, "-m", "gstack.cli", "admin", *args, "--data-dir", server.data_dir],
                          env=server.env(), input=stdin, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"gstack admin {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def cli(server: Server, *args: str, stdin: str | None = None):
    """``gstack admin ...`` run in this process (:meth:`tests.conftest.Server.cli`): click's Result."""
    return server.cli(*args, stdin=stdin)


@dataclass(frozen=True)
class Person:
    email: str
    password: str


def make_user(server: Server, prefix: str, *memberships: tuple[str, str]) -> Person:
    """A user with roles, written straight to the server's database (the admin CLI has its own tests;
    a CLI run costs a second, this a quarter of one)."""
    from sqlalchemy.orm import Session

    from core import identity
    from core.db import write_session

    person = Person(f"{prefix}-{uuid.uuid4().hex[:6]}@example.com", "pw-" + uuid.uuid4().hex)
    engine = server.engine()
    try:
        with write_session(lambda: Session(engine)) as session:  # BEGIN IMMEDIATE on SQLite: waits its turn
            user = identity.create_user(session, person.email, person.password)
            for project, role in memberships:
                identity.grant(session, identity.find_project(session, project), user, "roles/" + role)
    finally:
        engine.dispose()
    return person


def make_project(server: Server, name: str, owner: Person) -> str:
    """A project (with its default network, as ``gstack admin project create`` makes it) owned by ``owner``."""
    from sqlalchemy.orm import Session

    from core import identity
    from core.db import write_session
    from core.services.seed import ensure_project

    engine = server.engine()
    try:
        with write_session(lambda: Session(engine)) as session:
            project = ensure_project(session, name)
            identity.grant(session, project, identity.require_principal(session, owner.email), "roles/owner")
    finally:
        engine.dispose()
    return name


@pytest.fixture(scope="session")
def editor(server) -> Person:
    """A user who edits demo-project."""
    return make_user(server, "alice", (PROJECT, "editor"))


@pytest.fixture(scope="session")
def viewer(server) -> Person:
    """A user who may only read demo-project."""
    return make_user(server, "vic", (PROJECT, "viewer"))


def execute(server: Server, statement: str, **params) -> None:
    """One SQL statement on the server's database (to age a code or skip a polling interval)."""
    from sqlalchemy import text

    engine = server.engine()
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()
