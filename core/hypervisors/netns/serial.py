"""A netns VM's serial port 1: ``serial.log`` in its folder, kept to its last bytes as GCE keeps them.

The guest agent and what it runs append to the file (its stdout, opened ``O_APPEND``), and so do
the driver's "firmware" lines; nothing else ever shortened it, so a guest whose startup script
logs without end filled the disk. GCE keeps the last :data:`MAX_CONSOLE` bytes of a VM's serial
output and numbers every byte from the VM's start: ``getSerialPortOutput``'s ``start`` and
``next`` go on growing while older output is dropped. Here, once the file holds :data:`TRIM_AT`
bytes, :func:`trim` cuts its head down to about :data:`MAX_CONSOLE` with ``fallocate``'s
``FALLOC_FL_COLLAPSE_RANGE``, which the kernel does in place under the file's own lock, so an
append racing the cut is neither lost nor reordered (whole file system blocks only: ext4 and XFS
have it; where the file system lacks it the file is left whole). ``serial.dropped`` holds the
count of bytes cut so far: a byte's number is its place in the file plus that count.
:func:`read` and :func:`trim` take turns on ``serial.lock`` (``flock``), so a reader never pairs a
cut file with the count from before the cut.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
from collections.abc import Iterator

log = logging.getLogger("gstack.core")

MAX_CONSOLE = 1024 * 1024  # GCE keeps the last 1 MB of serial output
TRIM_AT = 2 * MAX_CONSOLE  # the file is cut back to about MAX_CONSOLE once it holds this much
LOG, DROPPED, LOCK = "serial.log", "serial.dropped", "serial.lock"
_COLLAPSE_RANGE = 0x08  # FALLOC_FL_COLLAPSE_RANGE (linux/falloc.h)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)


@contextlib.contextmanager
def _locked(folder: str, exclusive: bool) -> Iterator[None]:
    with open(os.path.join(folder, LOCK), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield  # (closing the file releases the lock)


def _dropped(folder: str) -> int:
    try:
        with open(os.path.join(folder, DROPPED)) as f:
            return int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def note(folder: str, text: str) -> None:
    """A line of the "firmware" (the driver) on the serial port."""
    with open(os.path.join(folder, LOG), "a") as f:
        f.write(text + "\r\n")


def read(folder: str, start: int) -> tuple[str, int, int]:
    """The output from byte ``start`` (negative: that many from the end; before the oldest kept:
    from the oldest) to the end: (text, its first byte's number, the next byte's number)."""
    try:
        with _locked(folder, exclusive=False), open(os.path.join(folder, LOG), "rb") as f:
            dropped = _dropped(folder)
            end = dropped + os.fstat(f.fileno()).st_size
            oldest = max(dropped, end - MAX_CONSOLE)
            if start < 0:
                start = end + start
            start = min(max(start, oldest), end)
            f.seek(start - dropped)
            data = f.read(end - start)
    except FileNotFoundError:
        return "", 0, 0
    return data.decode(errors="replace"), start, end


def trim(folder: str) -> int:
    """Cut the file's head once it holds :data:`TRIM_AT` bytes, keeping at least the last
    :data:`MAX_CONSOLE`: the bytes cut (0 when it is short, gone, or its file system cannot)."""
    path = os.path.join(folder, LOG)
    try:
        if os.stat(path).st_size < TRIM_AT:
            return 0
        with _locked(folder, exclusive=True), open(path, "r+b") as f:
            stat = os.fstat(f.fileno())
            size = stat.st_size
            cut = (size - MAX_CONSOLE) // stat.st_blksize * stat.st_blksize
            if size < TRIM_AT or cut <= 0:
                return 0
            if _libc.fallocate(f.fileno(), _COLLAPSE_RANGE, 0, cut) != 0:
                log.warning("serial log %s not trimmed: %s", path, os.strerror(ctypes.get_errno()))
                return 0
            with open(os.path.join(folder, DROPPED + ".tmp"), "w") as out:
                out.write(str(_dropped(folder) + cut))
            os.replace(os.path.join(folder, DROPPED + ".tmp"), os.path.join(folder, DROPPED))
            return cut
    except FileNotFoundError:
        return 0
