"""What a simulated guest answers on its serial console: a getty, then a tiny shell.

The simulator driver keeps no terminal state: the guest's state is read from the end of what it
printed (a login prompt, a password prompt, a shell prompt), so every process answers alike.
Any password is accepted; the shell knows a handful of commands.
"""

from __future__ import annotations

import re

_LOGIN = re.compile(r"(?P<host>\S+) login: (?P<typed>.*)\Z")
_SHELL = re.compile(r"(?P<user>[a-z_][a-z0-9_-]{0,31})@(?P<host>[^:\s]+):~[#$] (?P<typed>.*)\Z")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}\Z")
_ERASE = "\b \b"


def _last_line(text: str) -> str:
    line = text.rsplit("\n", 1)[-1].lstrip("\r")
    while _ERASE in line:  # what the terminal shows after erasures
        i = line.index(_ERASE)
        line = line[:max(i - 1, 0)] + line[i + len(_ERASE):]
    return line


def _login_prompt(name: str) -> str:
    return f"\r\nDebian GNU/Linux 12 {name} ttyS0\r\n\r\n{name} login: "


def _prompt(user: str, name: str) -> str:
    return f"{user}@{name}:~{'#' if user == 'root' else '$'} "


def _run(command: str, user: str, name: str) -> str | None:
    """The command's output lines; None to log out."""
    words = command.split()
    if not words:
        return ""
    cmd, args = words[0], words[1:]
    if cmd in ("exit", "logout"):
        return None
    if cmd == "hostname":
        return name + "\r\n"
    if cmd == "whoami":
        return user + "\r\n"
    if cmd == "uname":
        kernel = "6.1.0-28-cloud-amd64"
        return (f"Linux {name} {kernel} #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64 GNU/Linux\r\n"
                if "-a" in args else "Linux\r\n")
    if cmd == "echo":
        return " ".join(args) + "\r\n"
    return f"-bash: {cmd}: command not found\r\n"


def _enter(text: str, name: str) -> str:
    line = _last_line(text)
    if m := _LOGIN.match(line):
        user = m.group("typed").strip()
        if not _USER.match(user):
            return "\r\n" + f"{name} login: "
        return "\r\nPassword: "
    if line.startswith("Password: "):
        previous = _last_line(text.rsplit("\n", 1)[0]) if "\n" in text else ""
        m = _LOGIN.match(previous)
        user = m.group("typed").strip() if m else "root"
        return (f"\r\nLinux {name} 6.1.0-28-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 x86_64\r\n\r\n"
                + _prompt(user, name))
    if m := _SHELL.match(line):
        out = _run(m.group("typed"), m.group("user"), name)
        if out is None:
            return "\r\nlogout\r\n" + _login_prompt(name)
        return "\r\n" + out + _prompt(m.group("user"), name)
    return _login_prompt(name)  # Enter on a quiet console: the getty prints its prompt again


def _key(text: str, name: str, ch: str) -> str:
    line = _last_line(text)
    login, shell = _LOGIN.match(line), _SHELL.match(line)
    typed = login.group("typed") if login else shell.group("typed") if shell else None
    if ch in ("\x7f", "\b"):
        return _ERASE if typed else ""
    if ch == "\x03":  # Ctrl-C
        if shell:
            return "^C\r\n" + _prompt(shell.group("user"), name)
        return "^C" + _login_prompt(name) if login or line.startswith("Password: ") else ""
    if ch == "\x04":  # Ctrl-D on an empty shell line logs out
        return "logout\r\n" + _login_prompt(name) if shell and not typed else ""
    if typed is None or not ch.isprintable():
        return ""  # nothing echoes at a password prompt, or before the getty runs
    return ch


def answer(console: str, name: str, data: str) -> str:
    """What the guest named ``name`` prints after ``console`` when ``data`` is typed on it."""
    out = []
    text = console
    previous = ""
    for ch in data:
        if ch == "\n" and previous == "\r":
            previous = ch
            continue
        reply = _enter(text, name) if ch in ("\r", "\n") else _key(text, name, ch)
        out.append(reply)
        text += reply
        previous = ch
    return "".join(out)
