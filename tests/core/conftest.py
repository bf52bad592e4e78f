"""A real database for the core's unit tests: a fresh schema with the demo cloud seeded, on SQLite
in a temporary directory and on PostgreSQL (a database of its own per test module).

Each test gets a session that is rolled back at its end, so every test starts from the seeded
cloud whatever it changed, and nothing is committed but the seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.db import create_schema, make_engine, write_session
from core.services.seed import seed
from tests.conftest import BACKENDS, PG_ADMIN_DSN, create_pg_database, drop_pg_database, pg_available


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    pg_name = None
    if request.param == "postgresql":
        if not pg_available():
            pytest.fail("PostgreSQL is not reachable at " + PG_ADMIN_DSN + " (.ci/run starts it)")
        pg_name, url = create_pg_database()
    else:
        url = "sqlite:///" + str(tmp_path_factory.mktemp("core") / "gstack.sqlite3")
    eng = make_engine(url)
    try:
        create_schema(eng)
        with write_session(sessionmaker(bind=eng, expire_on_commit=False)) as session:
            seed(session)
        yield eng
    finally:
        eng.dispose()
        if pg_name:
            drop_pg_database(pg_name)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the seeded cloud whose changes are rolled back when the test ends."""
    with Session(engine, expire_on_commit=False) as s:
        try:
            yield s
        finally:
            s.rollback()
