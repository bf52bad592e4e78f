"""The pages an instances.insert writes on SQLite, by table and index: what its commits cost.

A commit in WAL mode appends one frame (a whole 4 KB page) to the WAL for every page the
transaction changed, and a checkpoint later copies each of them into the database file. On this
machine's disk, commits of 20 to 40 pages of a plain table cost about 8 µs of CPU per page, their
checkpoints included, so the pages of an insert, more than its statements' count, are what its
commits cost: an index whose rows of one insert land on several leaf pages costs several frames.

The script runs gstack in this process (:mod:`bench.inprocess`, SQLite), inserts ``N`` instances
one request at a time and reads, after each request's commit, the frames it appended to the WAL
(the WAL is emptied by a ``TRUNCATE`` checkpoint before each, so its frames are that commit's);
then, for the jobs of the same ``N`` instances run in one go to RUNNING with the router syncs they
ask for (the batches a stream of inserts gets), the frames of all their commits. Each frame's page
is named by the b-tree it belongs to (SQLite's ``dbstat``): the table's own, or one of its
indexes (``sqlite_autoindex_*`` are those of primary keys and unique constraints that are not the
rowid). Pages per insert, by b-tree, go to ``bench/results/insert_pages.json``.

``GROW`` instances are first written by the documented bulk path (:func:`bench.scale.grow_store`,
two zones of demo-project), so the pages can be compared at another size of the cloud: the count
of pages a commit writes stays the same from 1,000 to 100,000 instances (55-59 per request, jobs
not run, over 600 inserts; the bulk path packs its index pages full, so the first inserts among
them split more). What grows is how scattered they are: a checkpoint copies each page once
however many commits changed it, and at 100,000 instances the commits of a checkpoint share fewer
pages (``request_distinct_pages_per_insert`` of 200 requests: 6.9 distinct pages per insert over
20 requests at 1,000 instances, 10.0 at 100,000; over 100 requests 3.0 and 5.8).

Usage: ``python3 -m bench.insert_pages [N [GROW]]`` (default 20 and 0; the seeded zone holds 256
e2-micro).
"""

from __future__ import annotations

import collections
import os
import sqlite3
import struct
import sys

from bench.harness import write_result
from bench.profile_insert import inserting
from bench.scale import grow_store

WAL_HEADER, FRAME_HEADER, WARM_UP = 32, 24, 10


def _frames(path: str) -> list[int]:
    """The page numbers of the WAL's frames, in order (an empty WAL: none)."""
    wal = path + "-wal"
    if not os.path.exists(wal):
        return []
    with open(wal, "rb") as f:
        data = f.read()
    if len(data) < WAL_HEADER:
        return []
    page_size = struct.unpack(">I", data[8:12])[0]
    return [struct.unpack(">I", data[at:at + 4])[0]
            for at in range(WAL_HEADER, len(data) - FRAME_HEADER - page_size + 1, FRAME_HEADER + page_size)]


def _truncate(path: str) -> None:
    with sqlite3.connect(path) as db:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert not busy, "a reader held the WAL: nothing else may use the database while the script measures"


def _btrees(path: str) -> dict[int, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT pageno, name FROM dbstat"))


def _by_btree(pages: list[int], names: dict[int, str], count: int) -> dict[str, float]:
    tally = collections.Counter(names.get(page, "(free list)") for page in pages)
    return {name: round(n / count, 2) for name, n in tally.most_common()}


def _distinct_per_insert(commits: list[list[int]], window: int) -> float | None:
    """The distinct pages per insert of ``window`` consecutive commits, averaged over the whole
    windows: what a checkpoint after that many commits copies into the database file."""
    windows = [commits[at:at + window] for at in range(0, len(commits) - window + 1, window)]
    if not windows:
        return None
    return round(sum(len({page for commit in w for page in commit}) for w in windows) / (len(windows) * window), 1)


def main(n: int = 20, grow: int = 0) -> None:
    runtime, _client, _headers, insert = inserting()
    path = runtime.settings.database_url.removeprefix("sqlite:///")
    if grow:
        grow_store(runtime.settings.database_url, 0, grow)
    for i in range(WARM_UP):
        insert(i)
    runtime.engine.run_until_idle()
    commits: list[list[int]] = []
    for i in range(WARM_UP, WARM_UP + n):
        _truncate(path)
        insert(i)
        commits.append(_frames(path))
    request_pages = [page for commit in commits for page in commit]
    requests = _by_btree(request_pages, _btrees(path), n)
    _truncate(path)
    runtime.engine.run_until_idle(timeout=600)
    job_pages = _frames(path)
    jobs = _by_btree(job_pages, _btrees(path), n)
    result = {"instances": n, "grown_by_bulk_path": grow, "request_pages_per_insert": round(len(request_pages) / n, 1),
              "job_pages_per_insert": round(len(job_pages) / n, 1),
              # SQLite checkpoints every 1,000 WAL pages by default: about 20 requests' commits.
              "request_distinct_pages_per_insert": {str(w): _distinct_per_insert(commits, w) for w in (20, 100)},
              "request_by_btree": requests, "jobs_by_btree": jobs}
    write_result("insert_pages", result)
    print(f"per insert: its request's commit {result['request_pages_per_insert']} pages (distinct over 20 and 100 "
          f"requests: {result['request_distinct_pages_per_insert']}), its jobs' commits "
          f"{result['job_pages_per_insert']} (jobs of {n} run together)")
    for title, tally in (("request", requests), ("jobs", jobs)):
        print(f"{title}:")
        for name, pages in tally.items():
            print(f"  {pages:6.2f}  {name}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
