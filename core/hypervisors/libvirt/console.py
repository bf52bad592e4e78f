"""Serial port 1: the log file libvirt writes (what ``getSerialPortOutput`` reads) and the
interactive console (what the console proxy types on).

A ``test://`` host runs no guest: gstack writes the log lines of what happened itself, and what is
typed on its console is answered in the log by the simulator's guest (core.hypervisors.simguest).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from contextlib import suppress
from urllib.parse import urlsplit

from core.hypervisors.base import DriverError, HostRef
from core.hypervisors.libvirt.common import (
    MAX_CONSOLE,
    Conn,
    Domain,
    Options,
    domain_name,
    is_remote_uri,
    is_test_uri,
    lv,
)
from core.hypervisors.simguest import answer


def log_path(state_dir: str, host: HostRef, opts: Options, vm_uid: int) -> str:
    """Where the VM's serial log is on its host: the host's ``console_dir``, else libvirt's log
    directory (the state directory's for ``test://`` hosts, which have none)."""
    directory = opts.get("console_dir")
    if not directory:
        if is_test_uri(host.uri):
            directory = os.path.join(state_dir, "console")
        elif urlsplit(host.uri).path == "/session":
            directory = os.path.join(os.path.expanduser("~"), ".cache", "libvirt", "qemu", "log")
        else:
            directory = "/var/log/libvirt/qemu"
    return os.path.join(str(directory), f"{domain_name(vm_uid)}-serial.log")


def note(host: HostRef, path: str, text: str) -> None:
    """A console line of what happened, on a ``test://`` host (a real guest prints its own)."""
    if not is_test_uri(host.uri):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\r\n")


def read_tail(host: HostRef, path: str) -> tuple[int, bytes]:
    """(file size, its last MAX_CONSOLE bytes): locally, or over ssh for a remote host."""
    if not is_remote_uri(host.uri):
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - MAX_CONSOLE))
                return size, f.read()
        except FileNotFoundError:
            return 0, b""
    parts = urlsplit(host.uri)
    target = f"{parts.username}@{parts.hostname}" if parts.username else str(parts.hostname)
    port = ["-p", str(parts.port)] if parts.port else []
    quoted = shlex.quote(path)
    script = f"if [ -f {quoted} ]; then wc -c < {quoted}; tail -c {MAX_CONSOLE} {quoted}; else echo 0; fi"
    try:
        out = subprocess.run(["ssh", "-o", "BatchMode=yes", *port, target, script], capture_output=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise DriverError(f"cannot read the serial log of host {host.name}: {exc}") from exc
    first, _, rest = out.partition(b"\n")
    return int(first.strip() or 0), rest


def window(size: int, data: bytes, start: int) -> tuple[str, int, int]:
    """(contents, start, next) of a log of ``size`` bytes whose last ``data`` is kept, from ``start``
    (negative: from the end) clamped to the oldest byte kept."""
    oldest = size - len(data)
    if start < 0:
        start = size + start
    start = min(max(start, oldest), size)
    return data[start - oldest:].decode(errors="replace"), start, size


def answer_as_guest(host: HostRef, path: str, name: str, data: str, lock: threading.Lock) -> None:
    """The simulated guest's answer (a getty, then a small shell) to what was typed, appended to the
    serial log, as on the simulator. ``lock``: one typist at a time, each answer following the log."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with lock:
        _size, tail = read_tail(host, path)
        reply = answer(tail[-4096:].decode(errors="replace"), name, data)
        if reply:
            with open(path, "a", encoding="utf-8", newline="") as f:
                f.write(reply)


def type_on(conn: Conn, dom: Domain, data: str) -> None:
    """Send ``data`` to the domain's serial console (virDomainOpenConsole)."""
    libvirt = lv()
    stream = conn.newStream(0)
    dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
    payload, sent = data.encode(), 0
    try:
        while sent < len(payload):
            sent += stream.send(payload[sent:])
        stream.finish()
    except libvirt.libvirtError:
        with suppress(libvirt.libvirtError):
            stream.abort()
        raise
