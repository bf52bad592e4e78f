"""Who may call what on which project (core.identity.access), decided on real databases: a member's
role, a public project, a stranger, an unknown project, a cloud administrator, and a project named
by its number."""

from __future__ import annotations

import shutil
import tempfile

import pytest
from sqlalchemy.orm import sessionmaker

from core import identity, migrations
from core.db import make_engine
from core.identity import access
from core.identity.access import NO_ACCESS, ProjectAccess
from tests.conftest import create_pg_database, drop_pg_database, pg_available


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def session(request):
    cleanup = []
    if request.param == "postgresql":
        if not pg_available():
            pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432")
        name, url = create_pg_database()
        cleanup.append(lambda: drop_pg_database(name))
    else:
        data_dir = tempfile.mkdtemp(prefix="gstack-access-")
        url = f"sqlite:///{data_dir}/gstack.sqlite3"
        cleanup.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    engine = make_engine(url)
    migrations.prepare(engine)
    with sessionmaker(bind=engine, expire_on_commit=False)() as s:
        yield s
    engine.dispose()
    for step in cleanup:
        step()


@pytest.fixture(scope="module")
def cloud(session):
    """Two projects (one public, numbered) and four people: an owner, an editor, a viewer, a stranger."""
    private = identity.create_project(session, "private-project", number=123456789012)
    public = identity.create_project(session, "images-project", public=True)
    people = {}
    for who in ("owner", "editor", "viewer", "stranger"):
        people[who] = identity.create_user(session, f"{who}@example.com", "long enough password")
        if who != "stranger":
            identity.grant(session, private, people[who], f"roles/{who}")
    session.commit()
    return {"private": private, "public": public, **people}


def test_a_members_access_is_its_role(session, cloud):
    for who in ("owner", "editor", "viewer"):
        found = access.project_access(session, cloud[who].id, "private-project")
        assert found == ProjectAccess(f"roles/{who}", False)


def test_a_stranger_has_no_role_and_an_unknown_project_gives_no_access(session, cloud):
    assert access.project_access(session, cloud["stranger"].id, "private-project") == NO_ACCESS
    assert access.project_access(session, cloud["owner"].id, "no-such-project") == NO_ACCESS


def test_a_public_project_is_public_to_everyone(session, cloud):
    assert access.project_access(session, cloud["stranger"].id, "images-project") == ProjectAccess(None, True)


@pytest.mark.parametrize("role, reads, writes", [
    ("roles/owner", True, True),
    ("roles/editor", True, True),
    ("roles/viewer", True, False),
    (None, False, False),
])
def test_what_a_role_allows(session, cloud, role, reads, writes):
    standing = ProjectAccess(role, False)
    assert standing.allows(read_only=True) is reads
    assert standing.allows(read_only=False) is writes


def test_everyone_reads_a_public_project_and_only_writers_change_it(session, cloud):
    stranger = access.project_access(session, cloud["stranger"].id, "images-project")
    assert stranger.allows(read_only=True)
    assert not stranger.allows(read_only=False)


def test_an_administrator_reaches_every_project(session, cloud):
    assert access.may_call(True, NO_ACCESS, read_only=False)
    assert not access.may_call(False, NO_ACCESS, read_only=True)
    viewer = access.project_access(session, cloud["viewer"].id, "private-project")
    assert access.may_call(False, viewer, read_only=True)
    assert not access.may_call(False, viewer, read_only=False)


def test_a_role_changes_what_the_next_lookup_answers(session, cloud):
    identity.grant(session, cloud["private"], cloud["viewer"], "roles/editor")
    try:
        assert access.project_access(session, cloud["viewer"].id, "private-project").allows(read_only=False)
    finally:
        session.rollback()
    assert not access.project_access(session, cloud["viewer"].id, "private-project").allows(read_only=False)


def test_a_project_number_names_the_project(session, cloud):
    assert access.project_name(session, "123456789012") == "private-project"
    assert access.project_name(session, "private-project") == "private-project"
    assert access.project_name(session, "999999999999") == "999999999999"  # no such number: taken as a name
    too_long = str(2**63)
    assert access.project_name(session, too_long) == too_long


@pytest.mark.parametrize("resource, method, expected", [
    ("instances", "insert", "compute.instances.create"),
    ("disks", "aggregatedList", "compute.disks.list"),
    ("instances", "stop", "compute.instances.stop"),
])
def test_the_permission_a_refusal_names(resource, method, expected):
    assert access.permission(resource, method) == expected
