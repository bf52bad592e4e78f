"""Cached list pages (gstack/gce/listing_cache.py) are served only while their rows are unchanged:
after each kind of write (a label set, an insert, a delete, a stop run by the job engine) the
next page is the full path's bytes and shows the write, also when the page was cached by another
``gstack serve`` process on the same database, which was told nothing of the write."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import orjson
import pytest
import requests
from sqlalchemy import text

from core.db import write_connection
from tests.conftest import PROJECT, ZONE, Server, unique, wait_op

FAMILY = "projects/debian-cloud/global/images/family/debian-12"


def _insert(gce, name: str) -> None:
    wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body={
        "name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}],
    }).execute())


def _page(server: Server, token: str, **params: str) -> bytes:
    r = requests.get(f"{server.api}projects/{PROJECT}/zones/{ZONE}/instances",
                     headers={"Authorization": "Bearer " + token}, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.content


def _items(server: Server, token: str) -> dict[str, dict]:
    """The page twice from the lighter path (the second one served from its cache when nothing
    changed), the same bytes as the full path's (a query parameter it does not take); by name."""
    cached = [_page(server, token) for _ in range(2)]
    assert cached[0] == cached[1] == _page(server, token, quotaUser="x")
    return {i["name"]: i for i in requests.models.complexjson.loads(cached[1]).get("items", [])}


@pytest.fixture(scope="module")
def second(server) -> Iterator[Server]:
    """Another ``gstack serve`` on the shared server's database (it runs no jobs), with a data
    directory of its own: a server writes its key file there, naming its own token URL."""
    other = Server(server.backend, tempfile.mkdtemp(prefix="gstack-second-"), server.database_url,
                   env_extra={**server.env_extra, "GSTACK_RUN_JOBS": "0"})
    other.start()
    yield other
    other.stop()
    shutil.rmtree(other.data_dir, ignore_errors=True)


def test_a_cached_page_follows_every_write(server, gce):
    token = server.token()
    first, later = sorted(unique("lcache") for _ in range(2))
    _insert(gce, first)
    assert first in _items(server, token)
    wait_op(gce, gce.instances().setLabels(project=PROJECT, zone=ZONE, instance=first, body={
        "labels": {"cache": "followed"},
        "labelFingerprint": gce.instances().get(project=PROJECT, zone=ZONE, instance=first).execute()["labelFingerprint"],
    }).execute())
    assert _items(server, token)[first]["labels"] == {"cache": "followed"}
    _insert(gce, later)
    assert later in _items(server, token)
    wait_op(gce, gce.instances().stop(project=PROJECT, zone=ZONE, instance=later).execute())
    assert _items(server, token)[later]["status"] == "TERMINATED"
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=first).execute())
    assert first not in _items(server, token)


def test_a_page_cached_by_another_process_follows_writes_made_here(server, gce, second):
    token = server.token()
    name = unique("lcache")
    _insert(gce, name)
    assert "seen" not in _items(second, token)[name].get("labels", {})  # cached there
    wait_op(gce, gce.instances().setLabels(project=PROJECT, zone=ZONE, instance=name, body={
        "labels": {"seen": "elsewhere"},
        "labelFingerprint": gce.instances().get(project=PROJECT, zone=ZONE, instance=name).execute()["labelFingerprint"],
    }).execute())
    assert _items(second, token)[name]["labels"] == {"seen": "elsewhere"}
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=name).execute())
    assert name not in _items(second, token)


def test_a_write_in_flight_while_a_page_is_kept_is_seen_once_it_commits(server, gce):
    """A writer that has written an instance's row but not committed while the page is asked (on
    PostgreSQL it has taken its revision number then: the generation read names it): once it
    commits, the next page shows the write. Kept under that generation alone, the page would be
    served again unchanged, the sequence having no reason to move (core.resources.queries.generation_settled)."""
    token = server.token()
    name = unique("lcache")
    _insert(gce, name)
    assert _items(server, token)[name].get("description") != "in flight"
    engine = server.engine()
    try:
        # BEGIN IMMEDIATE on SQLite: a deferred transaction that reads first cannot take the write
        # lock once a server writer (the insert's router sync) commits after its read (SQLITE_BUSY_SNAPSHOT)
        with write_connection(engine) as conn:
            where = "WHERE project = :p AND collection = 'instances' AND name = :n"
            body = orjson.loads(conn.execute(text(f"SELECT body FROM resources {where}"), {"p": PROJECT, "n": name})
                                .scalar_one())
            conn.execute(text(f"UPDATE resources SET body = :b {where}"),
                         {"p": PROJECT, "n": name, "b": orjson.dumps({**body, "description": "in flight"}).decode()})
            assert _items(server, token)[name].get("description") != "in flight"  # not committed: not seen; kept
            conn.commit()
    finally:
        engine.dispose()
    assert _items(server, token)[name]["description"] == "in flight"
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=name).execute())
