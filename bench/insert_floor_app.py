"""The floor of the insert cost benchmark: one HTTP round trip on the server class of ``gstack serve``
(:class:`gstack.serving.PooledWSGIServer`) and one SQLite commit of the row (WAL, synchronous=NORMAL,
as gstack configures SQLite). What an insert cannot cost less than on this machine.

Usage: ``python3 -m bench.insert_floor_app PORT DB_PATH``; under gunicorn (gstack's other server
class), ``BENCH_FLOOR_DB=DB_PATH gunicorn bench.insert_floor_app:app`` once :func:`make_table` made
the table."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading

import orjson
from flask import Flask, Response, request

from gstack.serving import PooledWSGIServer

app = Flask(__name__)
app.config["DB"] = os.environ.get("BENCH_FLOOR_DB")
_local = threading.local()


def _db() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = sqlite3.connect(app.config["DB"], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
    return conn


@app.post("/compute/v1/projects/<project>/zones/<zone>/instances")
def insert(project: str, zone: str) -> Response:
    body = request.get_json()
    commit_row(_db(), project, zone, body)
    return Response(orjson.dumps({"kind": "compute#operation", "status": "DONE", "targetLink": body["name"]}),
                    content_type="application/json; charset=UTF-8")


def commit_row(conn: sqlite3.Connection, project: str, zone: str, body: dict) -> None:
    """The floor's statements: one transaction committing the row of ``body``."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO rows (project, zone, name, body) VALUES (?, ?, ?, ?)",
                 (project, zone, body["name"], orjson.dumps(body).decode()))
    conn.execute("COMMIT")


@app.get("/ready")
def ready() -> Response:
    return Response(b"{}", content_type="application/json")


def make_table(path: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, project TEXT, zone TEXT, "
                     "name TEXT, body TEXT, UNIQUE (project, zone, name))")


def main(port: str, path: str) -> None:
    app.config["DB"] = path
    make_table(path)
    PooledWSGIServer("127.0.0.1", int(port), app).serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
