"""core.jobs.retention on both databases: which finished Operations and expired access tokens a
round removes, over more rows than one page holds, and what it leaves."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from core import identity
from core.db import write_session
from core.jobs import retention
from core.models import AccessToken, Operation, RefreshToken
from tests.conftest import BACKENDS
from tests.helpers.databases import seeded_engine, sessions

CUTOFF = 1_000_000.0  # "now less the retention", in the tests' own clock


@pytest.fixture(params=BACKENDS)
def factory(request):
    with seeded_engine(request.param, "gstack-retention-") as engine:
        yield sessions(engine)


def operation(i: int, status: str, inserted: float, ended: float | None) -> Operation:
    return Operation(uid=10_000 + i, name=f"operation-ret-{i}", project="demo-project", scope="zones/us-central1-a",
                     operation_type="insert", target_link="projects/demo-project/zones/us-central1-a/disks/d",
                     status=status, user="t", insert_time=inserted, end_time=ended, job="none")


def kept_names(factory) -> set[str]:
    with factory() as s:
        return set(s.scalars(select(Operation.name).where(Operation.name.like("operation-ret-%"))))


def test_a_round_removes_what_finished_before_the_cutoff_page_after_page(factory):
    old = CUTOFF - 100
    rows = [operation(i, "DONE", old - 10, old) for i in range(2 * retention.PAGE_ROWS + 100)]
    rows[5] = operation(5, "RUNNING", old - 10, None)  # unfinished, however old: stays
    rows[7] = operation(7, "DONE", old - 10, CUTOFF + 5)  # ended after the cutoff: stays
    rows[9] = operation(9, "DONE", old - 10, None)  # finished with no end time: by its insert time
    young = [operation(5000 + i, "DONE", CUTOFF + 10, CUTOFF + 11) for i in range(30)]
    with write_session(factory) as s:
        s.add_all(rows + young)
    before = kept_names(factory)

    removed = retention.forget_operations(factory, CUTOFF)

    stay = {"operation-ret-5", "operation-ret-7"} | {op.name for op in young}
    assert removed == len(rows) - 2
    assert kept_names(factory) == stay and stay < before
    assert retention.forget_operations(factory, CUTOFF) == 0  # a second round finds nothing


def test_the_newest_operation_stays_whatever_its_age(factory):
    with write_session(factory) as s:
        s.add_all([operation(i, "DONE", CUTOFF - 50 + i, CUTOFF - 40 + i) for i in range(3)])
        newest = s.scalar(select(func.max(Operation.pk)))
    assert retention.forget_operations(factory, CUTOFF) >= 2
    with factory() as s:
        assert s.scalar(select(func.max(Operation.pk))) == newest  # SQLite would hand its key out again


def test_expired_access_tokens_go_a_while_after_they_expired(factory):
    now = time.time()
    with write_session(factory) as s:
        principal = identity.create_service_account(s, identity.find_project(s, "demo-project"), "retention-test").id
        for name, created, expires in (("long-expired", now - 5000, now - 1500), ("just-expired", now - 3700, now - 100),
                                       ("live", now - 10, now + 3590)):
            s.add(AccessToken(token_hash=name, principal_id=principal, scopes="x", created=created, expires=expires))
    assert retention.forget_tokens(factory, now - 1000) == 1
    with factory() as s:
        left = set(s.scalars(select(AccessToken.token_hash)))
    assert {"just-expired", "live"} <= left and "long-expired" not in left


def test_a_revoked_refresh_token_goes_once_no_access_token_names_it(factory):
    now = time.time()
    with write_session(factory) as s:
        principal = identity.create_service_account(s, identity.find_project(s, "demo-project"), "refresh-test").id
        tokens = {name: RefreshToken(token_hash=name, principal_id=principal, client_id="c", scopes="x",
                                     revoked=revoked, created=now)
                  for name, revoked in (("live", False), ("revoked", True), ("revoked-named", True))}
        s.add_all(tokens.values())
        s.flush()
        s.add(AccessToken(token_hash="from-revoked", principal_id=principal, scopes="x", created=now - 10,
                          expires=now - 5, revoked=True, refresh_token_id=tokens["revoked-named"].id))
    assert retention.forget_revoked_refresh_tokens(factory) == 1
    with factory() as s:
        assert set(s.scalars(select(RefreshToken.token_hash))) >= {"live", "revoked-named"}
        assert "revoked" not in set(s.scalars(select(RefreshToken.token_hash)))
    assert retention.forget_tokens(factory, now) == 1  # its access token expired: gone, and then the token
    assert retention.forget_revoked_refresh_tokens(factory) == 1
    with factory() as s:
        assert not {"revoked", "revoked-named"} & set(s.scalars(select(RefreshToken.token_hash)))
        assert "live" in set(s.scalars(select(RefreshToken.token_hash)))
    assert retention.forget_revoked_refresh_tokens(factory) == 0
