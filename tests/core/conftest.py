"""A real database for the core's unit tests: a fresh schema with the demo cloud seeded, on SQLite
in a temporary directory and on PostgreSQL (a database of its own per test module).

Each test gets a session that is rolled back at its end, so every test starts from the seeded
cloud whatever it changed, and nothing is committed but the seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.conftest import BACKENDS
from tests.helpers.databases import seeded_engine


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    with seeded_engine(request.param, "gstack-core-") as eng:
        yield eng


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the seeded cloud whose changes are rolled back when the test ends."""
    with Session(engine, expire_on_commit=False) as s:
        try:
            yield s
        finally:
            s.rollback()
