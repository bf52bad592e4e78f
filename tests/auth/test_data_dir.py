"""The data directory is private: 0700, and the database files in it (with SQLite's -wal and -shm) 0600,
from the first start on; looser modes left by an older release are narrowed at start, with a log line."""

from __future__ import annotations

import os
import stat

from tests.conftest import running_server


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def database_files(data_dir: str) -> list[str]:
    return [os.path.join(data_dir, n) for n in sorted(os.listdir(data_dir)) if n.startswith("gstack.sqlite3")]


def test_data_directory_is_private():
    with running_server("sqlite") as srv:
        files = database_files(srv.data_dir)
        assert {os.path.basename(f) for f in files} >= {"gstack.sqlite3", "gstack.sqlite3-wal", "gstack.sqlite3-shm"}
        assert mode(srv.data_dir) == 0o700
        assert {f: mode(f) for f in files} == {f: 0o600 for f in files}
        assert mode(srv.key_path) == 0o600
        srv.stop()
        # what an older release left: a world-readable directory and database
        os.chmod(srv.data_dir, 0o755)
        for f in database_files(srv.data_dir):
            os.chmod(f, 0o644)
        srv.start()
        assert mode(srv.data_dir) == 0o700
        files = database_files(srv.data_dir)
        assert {f: mode(f) for f in files} == {f: 0o600 for f in files}
        log = srv.log_tail(200)
        assert f"{srv.data_dir} was mode 0755, readable by others; now 0700" in log
        assert f"{os.path.join(srv.data_dir, 'gstack.sqlite3')} was mode 0644, readable by others; now 0600" in log
