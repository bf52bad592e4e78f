"""The guest agent of a netns VM: what a GCE image's init and google-guest-agent do at boot, done
inside the VM's network namespace (and UTS namespace, and the mount namespace ``ip netns exec``
gives it).

The driver starts it as ``ip netns exec NS unshare --uts python3 agent.py GUEST.json`` with its
output going to the VM's serial log, and stops it with SIGTERM. It imports nothing of gstack (it
stands for software inside the guest), only the standard library. At boot it:

1. sets the hostname (its own UTS namespace: the host's stays as it was) and lays an overlay over
   /etc (its writes there land in its own folder, ``etc/``);
2. configures each NIC: by DHCP from the network's virtual router (its dnsmasq hands out IPAM's
   address by MAC) where the guest file says ``dhcp``, else the static address it gives (a
   virtual router's own): busybox's ``udhcpc`` keeps running on the NIC with a script of ours
   that sets the address, default route and a private ``/etc/resolv.conf`` (bind-mounted over the
   host's in this mount namespace); see :func:`configure_network` for a lease that is late;
3. reads its metadata from ``metadata_url`` (the metadata server, ``Metadata-Flavor: Google``,
   ``?recursive=true``) when one is configured, and follows it with ``wait_for_change`` hanging
   GETs (new ssh keys reach sshd without a reboot); else the metadata the driver wrote into the
   guest file (as a config drive would);
4. makes the users named in ``ssh-keys`` (instance and project keys, project keys dropped when
   ``block-project-ssh-keys`` is true, expired keys dropped) in a private copy of /etc/passwd
   bind-mounted over the host's inside this mount namespace only, with homes on a /home of its
   own (a tmpfs), and runs a real sshd on port 22 that asks for their keys as google-guest-agent's
   sshd does (an ``AuthorizedKeysCommand``, run as root);
5. writes ``ready`` into its directory (the driver's spawn waits for it) and runs
   ``startup-script`` as root, its output on the serial log as google_metadata_script_runner's;
6. keeps a getty on serial port 1: what the console proxy types arrives on the FIFO ``console.in``
   (the driver's ``serial_write``) and is answered on the serial log as a GCE image's
   serial-getty answers (see :class:`Getty`).

On SIGTERM (a stop) it runs ``shutdown-script``, stops sshd and exits; the driver kills whatever
is left in the namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

SHUTDOWN_SCRIPT_TIMEOUT = 30.0
METADATA_HOSTS_LINE = "169.254.169.254 metadata.google.internal metadata  # Added by gstack's guest agent"
BOOT_PATIENCE = 2.0  # seconds the boot waits for the metadata server before using the guest file
FIRST_UID = 2000


def log(program: str, message: str) -> None:
    """A syslog-style line on the serial port, as a GCE image prints its agents' messages."""
    stamp = datetime.now(UTC).strftime("%b %d %H:%M:%S")
    print(f"{stamp} {socket.gethostname()} {program}[{os.getpid()}]: {message}", flush=True)


def sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


# -- network -------------------------------------------------------------------------------------


DHCP_WAIT = 1.5
DHCP_SCRIPT = """#!/bin/sh
# udhcpc's events (busybox): the lease applied to the NIC, resolv.conf written to the guest's copy.
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr replace "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    { [ -n "$search" ] && echo "search $search" || { [ -n "$domain" ] && echo "search $domain"; }
      for d in $dns; do echo "nameserver $d"; done; } > @RESOLV@
    echo "$interface: $ip/$mask (lease $lease s)" ;;
esac
"""


def configure_network(nics: list[dict[str, Any]], state: str) -> None:
    """Each NIC up: by DHCP where the guest file says so, else with its static address. A NIC that
    has no lease after ``DHCP_WAIT`` seconds (its network's router is still starting, or there is
    none) gets IPAM's address from the guest file meanwhile; udhcpc keeps asking, and its lease
    (the same address) confirms it."""
    sh("ip", "link", "set", "lo", "up")
    waiting = []
    for nic in nics:
        sh("ip", "link", "set", nic["name"], "up")
        if nic.get("dhcp") and dhcp(nic["name"], state):
            waiting.append(nic)
        else:
            static(nic, nic is nics[0])
    deadline = time.monotonic() + DHCP_WAIT
    while waiting and time.monotonic() < deadline:
        time.sleep(0.05)
        waiting = [n for n in waiting if " inet " not in sh("ip", "-4", "-o", "addr", "show", "dev", n["name"]).stdout]
    for nic in waiting:
        log("google_guest_agent", f"{nic['name']}: no DHCP lease yet, IPAM's address meanwhile; udhcpc keeps asking")
        static(nic, nic is nics[0])


def static(nic: dict[str, Any], first: bool) -> None:
    if not nic.get("ip"):
        return
    name = nic["name"]
    sh("ip", "addr", "replace", f"{nic['ip']}/{nic['prefix']}", "dev", name)
    if first and nic.get("gateway"):
        sh("ip", "route", "replace", "default", "via", nic["gateway"], "dev", name)
    log("google_guest_agent", f"{name}: {nic['ip']}/{nic['prefix']} (MAC {nic['mac']})")


def dhcp(name: str, state: str) -> bool:
    """Start udhcpc on the NIC (it stays, renewing the lease, until the guest stops); whether it runs."""
    if shutil.which("udhcpc") is None:
        log("google_guest_agent", f"{name}: no address given and no DHCP client (udhcpc) installed")
        return False
    resolv = os.path.join(state, "resolv.conf")
    with open(resolv, "w"):
        pass
    sh("mount", "--bind", resolv, "/etc/resolv.conf")
    script = os.path.join(state, "udhcpc.sh")
    with open(script, "w") as f:
        f.write(DHCP_SCRIPT.replace("@RESOLV@", resolv))
    os.chmod(script, 0o755)
    subprocess.Popen(["udhcpc", "-f", "-i", name, "-s", script, "-O", "search", "-T", "1", "-A", "1", "-t", "5"],
                     stdin=subprocess.DEVNULL)
    return True


# -- metadata ------------------------------------------------------------------------------------


class Metadata:
    """What the guest knows of its metadata: instance and project attributes, and the ETag of the
    metadata server's answer they came from (None: from the guest file, no server)."""

    def __init__(self, guest: dict[str, Any]):
        self.url: str | None = guest.get("metadata_url")
        self.instance: dict[str, str] = dict(guest.get("metadata", {}))
        self.project: dict[str, str] = dict(guest.get("project_metadata", {}))
        self.etag: str | None = None

    def fetch(self, wait: bool = False, timeout_sec: int = 60, patience: float = 10) -> bool:
        """Read the tree from the metadata server (``wait``: a hanging GET until it differs from
        what was last read, or ``timeout_sec``); whether it changed. Raises OSError/ValueError
        when the server cannot be read."""
        assert self.url is not None
        query = "?recursive=true"
        if wait and self.etag:
            query += f"&wait_for_change=true&last_etag={self.etag}&timeout_sec={timeout_sec}"
        request = urllib.request.Request(self.url.rstrip("/") + "/computeMetadata/v1/" + query,
                                         headers={"Metadata-Flavor": "Google"})
        with urllib.request.urlopen(request, timeout=(timeout_sec if wait else 0) + patience) as answer:
            tree = json.load(answer)
            etag: str | None = answer.headers.get("ETag")
        changed = etag != self.etag
        self.etag = etag
        self.instance = dict(tree.get("instance", {}).get("attributes", {}))
        self.project = dict(tree.get("project", {}).get("attributes", {}))
        return changed

    def read_at_boot(self) -> None:
        """From the metadata server when one is configured, else (or when it cannot be read) what
        the driver wrote into the guest file."""
        if not self.url:
            return
        try:
            self.fetch(patience=BOOT_PATIENCE)
        except (OSError, ValueError) as exc:
            log("google_guest_agent", f"metadata server {self.url} unreachable ({exc}); using the metadata given at boot")

    def watch(self, on_change: Callable[[], None], stopping: threading.Event) -> None:
        """Follow the metadata server with hanging GETs as google-guest-agent does, calling
        ``on_change`` after each change (new ssh keys reach sshd so)."""
        while self.url and not stopping.is_set():
            try:
                if self.fetch(wait=True):
                    on_change()
            except (OSError, ValueError):
                stopping.wait(5)


def expired(key: str, now: datetime) -> bool:
    """A key written by gcloud with ``google-ssh {"userName": ..., "expireOn": ...}`` that has expired."""
    marker = " google-ssh "
    if marker not in key:
        return False
    try:
        expire_on = json.loads(key.split(marker, 1)[1])["expireOn"]
        return datetime.fromisoformat(expire_on.replace("Z", "+00:00")) <= now
    except (ValueError, KeyError, TypeError):
        return False


def ssh_keys(instance: dict[str, str], project: dict[str, str]) -> dict[str, list[str]]:
    """user -> authorized keys, as google-guest-agent reads them."""
    sources = [instance.get("ssh-keys", ""), instance.get("sshKeys", "")]
    if instance.get("block-project-ssh-keys", "").lower() != "true":
        sources += [project.get("ssh-keys", ""), project.get("sshKeys", "")]
    now = datetime.now(UTC)
    keys: dict[str, list[str]] = {}
    for line in "\n".join(sources).splitlines():
        user, sep, key = line.strip().partition(":")
        if not sep or not user or not key.strip() or expired(key, now):
            continue
        keys.setdefault(user, []).append(key.strip())
    return keys


# -- users and sshd ------------------------------------------------------------------------------


def overlay_etc(state: str) -> None:
    """A writable /etc of the guest's own: an overlay on the host's, its changes in ``STATE/etc``, in
    this mount namespace only (a startup script's writes to /etc stay in the guest; a virtual
    router's configuration is pushed there)."""
    upper, work = os.path.join(state, "etc"), os.path.join(state, "etc-work")
    os.makedirs(upper, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    out = sh("mount", "-t", "overlay", "gstack-etc", "-o", f"lowerdir=/etc,upperdir={upper},workdir={work}", "/etc")
    log("google_guest_agent", f"/etc overlay: {'mounted' if out.returncode == 0 else out.stderr.strip()}")
    if out.returncode == 0:  # as a GCE image's /etc/hosts: the metadata server by name without DNS
        with open("/etc/hosts", "a") as f:
            f.write(f"{METADATA_HOSTS_LINE}\n")


def private_accounts(state: str) -> None:
    """A /home of the guest's own (a tmpfs) and private copies of /etc/passwd and /etc/group,
    bind-mounted over the host's inside this mount namespace only (``ip netns exec`` made it, with
    no propagation back to the host); :func:`make_users` adds to the copies."""
    sh("mount", "-t", "tmpfs", "-o", "mode=0755", "gstack-home", "/home")
    for name in ("passwd", "group"):
        shutil.copyfile(f"/etc/{name}", os.path.join(state, name))
        sh("mount", "--bind", os.path.join(state, name), f"/etc/{name}")


def make_users(state: str, users: list[str]) -> None:
    """The users that do not exist yet, each with a home and a group of its own."""
    paths = {name: os.path.join(state, name) for name in ("passwd", "group")}
    with open(paths["passwd"]) as f:
        passwd = f.read().splitlines()
    with open(paths["group"]) as f:
        group = f.read().splitlines()
    known = {line.split(":")[0] for line in passwd}
    taken = {int(line.split(":")[2]) for line in passwd if line.count(":") >= 3 and line.split(":")[2].isdigit()}
    uid = FIRST_UID
    for user in users:
        if user in known:
            continue
        while uid in taken:
            uid += 1
        home = f"/home/{user}"
        os.makedirs(home, exist_ok=True)
        os.chown(home, uid, uid)
        passwd.append(f"{user}:x:{uid}:{uid}::{home}:/bin/sh")
        group.append(f"{user}:x:{uid}:")
        taken.add(uid)
        log("google_guest_agent", f"Created user: {user}")
    for name, lines in (("passwd", passwd), ("group", group)):
        with open(paths[name], "w") as f:  # the same file (inode) the bind mount shows
            f.write("\n".join(lines) + "\n")


def write_keys(state: str, keys: dict[str, list[str]]) -> None:
    folder = os.path.join(state, "keys")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name not in keys:
            os.remove(os.path.join(folder, name))
    for user, lines in keys.items():
        with open(os.path.join(folder, user), "w") as f:
            f.write("\n".join(lines) + "\n")


def start_sshd(state: str) -> subprocess.Popen[bytes] | None:
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd is None:
        log("google_guest_agent", "openssh-server is not installed: no ssh")
        return None
    host_key = os.path.join(state, "ssh_host_ed25519_key")
    if not os.path.exists(host_key):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key)
    config = os.path.join(state, "sshd_config")
    with open(config, "w") as f:
        f.write(f"""Port 22
ListenAddress 0.0.0.0
HostKey {host_key}
PidFile {os.path.join(state, 'sshd.pid')}
AuthorizedKeysFile none
AuthorizedKeysCommand /bin/cat {os.path.join(state, 'keys', '%u')}
AuthorizedKeysCommandUser root
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PrintMotd no
Subsystem sftp internal-sftp
""")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", config])
    for _ in range(100):  # up to 2 s until it listens
        if listening(22):
            break
        time.sleep(0.02)
    return proc


def listening(port: int) -> bool:
    """Whether a TCP socket of this namespace listens on ``port`` (read from /proc: a probe
    connection would show in sshd's log)."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return any(row[1].endswith(f":{port:04X}") and row[3] == "0A" for row in rows)


# -- scripts ---------------------------------------------------------------------------------------


def run_script(state: str, key: str, body: str, timeout: float | None = None) -> None:
    """Run a metadata script as root, each line of its output on the serial port."""
    path = os.path.join(state, key)
    with open(path, "w") as f:
        f.write(body)
    shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
    log("google_metadata_script_runner", f"Starting {key.replace('-script', '')} scripts.")
    proc = subprocess.Popen([shell, path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/")
    killer = threading.Timer(timeout, proc.kill) if timeout else None
    if killer:
        killer.start()
    assert proc.stdout is not None
    for raw in proc.stdout:
        log("google_metadata_script_runner", f"{key}: {raw.decode(errors='replace').rstrip()}")
    code = proc.wait()
    if killer:
        killer.cancel()
    log("google_metadata_script_runner", f"{key} exit status {code}")


# -- the serial console ------------------------------------------------------------------------------


CONSOLE_FIFO = "console.in"


class Getty:
    """serial-getty on ttyS0 of a GCE image: the tty echoes what is typed (not a password), asks for
    a login and a password, and refuses it: GCE's accounts have no passwords (google-guest-agent
    makes them for ssh keys), so logging in on the serial port needs one set by a user who logged in
    over ssh, which this guest does not model. What the console shows is thus the guest's: its boot
    log, its scripts' output and this prompt, the way a real image's console shows them."""

    def __init__(self, name: str, write: Callable[[str], None]):
        self.name, self.write = name, write
        self.line, self.asking_password = "", False

    def feed(self, data: str) -> None:
        for ch in data:
            if ch in "\r\n":
                self.enter()
            elif ch in "\x7f\b":
                if self.line:
                    self.line = self.line[:-1]
                    if not self.asking_password:
                        self.write("\b \b")
            elif ch == "\x03":  # ^C: a fresh prompt
                self.line, self.asking_password = "", False
                self.write(f"^C\r\n\r\n{self.name} login: ")
            elif ch.isprintable():
                self.line += ch
                if not self.asking_password:
                    self.write(ch)

    def enter(self) -> None:
        line, self.line = self.line, ""
        if self.asking_password:
            self.asking_password = False
            time.sleep(0.3)  # login's delay after a failure, shortened
            self.write(f"\r\nLogin incorrect\r\n{self.name} login: ")
        elif line.strip():
            self.asking_password = True
            self.write("\r\nPassword: ")
        else:
            self.write(f"\r\n\r\n{self.name} login: ")


def serve_console(state: str, name: str, stopping: threading.Event) -> None:
    """The getty reading the console FIFO (opened read-write: it never sees end-of-file when a
    writer closes) until the guest stops."""
    path = os.path.join(state, CONSOLE_FIFO)
    if not os.path.exists(path):
        os.mkfifo(path, 0o600)
    fd = os.open(path, os.O_RDWR)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    getty = Getty(name, write)
    while not stopping.is_set():
        data = os.read(fd, 4096)
        getty.feed(data.decode(errors="replace"))


def main(guest_file: str) -> None:
    with open(guest_file) as f:
        guest: dict[str, Any] = json.load(f)
    state = os.path.dirname(os.path.abspath(guest_file))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    socket.sethostname(guest["hostname"].split(".")[0])  # as a GCE image: hostname -f gives the FQDN
    overlay_etc(state)
    print(f"gstack netns guest {guest['name']}: booting", flush=True)
    configure_network(guest.get("nics", []), state)
    metadata = Metadata(guest)
    metadata.read_at_boot()

    def update_keys() -> None:
        keys = ssh_keys(metadata.instance, metadata.project)
        make_users(state, list(keys))
        write_keys(state, keys)

    private_accounts(state)
    update_keys()
    sshd = start_sshd(state)
    log("google_guest_agent", "GCE Agent Started.")
    threading.Thread(target=serve_console, args=(state, guest["name"], stopping), daemon=True).start()
    print(f"\r\n{guest['name']} login: ", flush=True)
    with open(os.path.join(state, "ready"), "w") as f:
        f.write(str(os.getpid()))
    if metadata.instance.get("startup-script"):
        threading.Thread(target=run_script, args=(state, "startup-script", metadata.instance["startup-script"]),
                         daemon=True).start()
    threading.Thread(target=metadata.watch, args=(update_keys, stopping), daemon=True).start()
    stopping.wait()
    if metadata.instance.get("shutdown-script"):
        run_script(state, "shutdown-script", metadata.instance["shutdown-script"], SHUTDOWN_SCRIPT_TIMEOUT)
    if sshd is not None:
        sshd.terminate()
        sshd.wait()
    print("[  OK  ] Reached target poweroff.target - System Power Off.\r\nreboot: Power down", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
