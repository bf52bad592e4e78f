"""The data directory is private: it holds the database (password hashes, token digests, every
resource), the administrator's password and service-account keys.

At every start the directory is made 0700 and the SQLite files in it (the database and its
``-wal``, ``-shm`` and writer-lock companions, and anything else there) 0600; a mode that had to be
narrowed is logged. The database file is created 0600 before SQLite first opens it, so its WAL
and shared-memory files, which SQLite creates with the database file's mode, start private too.
"""

from __future__ import annotations

import logging
import os
import stat

from sqlalchemy.engine import make_url

log = logging.getLogger("gstack.datadir")

DIR_MODE = 0o700
FILE_MODE = 0o600


def _narrow(path: str, mode: int) -> None:
    current = stat.S_IMODE(os.lstat(path).st_mode)
    if current & ~mode:
        os.chmod(path, current & mode)
        log.warning("%s was mode %04o, readable by others; now %04o", path, current, current & mode)


def sqlite_path(database_url: str) -> str | None:
    """The database file of a SQLite URL; None for another database or an in-memory one."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    return os.path.abspath(url.database)


def secure(data_dir: str, database_url: str) -> None:
    """Create the data directory (0700) if missing and narrow what is in it; create the SQLite
    database file 0600 if it does not exist yet."""
    os.makedirs(data_dir, mode=DIR_MODE, exist_ok=True)
    db_file = sqlite_path(database_url)
    dirs = {os.path.abspath(data_dir)} | ({os.path.dirname(db_file)} if db_file else set())
    if db_file:
        os.makedirs(os.path.dirname(db_file), mode=DIR_MODE, exist_ok=True)
        os.close(os.open(db_file, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    for directory in sorted(dirs):
        _narrow(directory, DIR_MODE)
        for entry in os.scandir(directory):
            if entry.is_file(follow_symlinks=False):
                _narrow(entry.path, FILE_MODE)
