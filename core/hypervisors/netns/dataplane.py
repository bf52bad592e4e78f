"""The live data plane of netns hosts: virtual routers that run, a zone public network, and a
simulated internet.

A virtual router placed on a netns host is a netns VM like any other (its namespace, its agent),
plugged into its network's bridge (the subnets' gateway addresses) and into the host's public
bridge. Its agent lays an overlay over ``/etc`` in the router's mount namespace (the changes land
in the VM's ``etc/`` folder, the host's ``/etc`` stays as it was), so the rendered files sit at the
paths they name each other by, as in a system VM. What makes it a router is :func:`apply`: the
files ``core.systemvms.router`` rendered are written through that overlay (``/proc/PID/root``)
and the real daemons, run in the router's mount and network namespaces, read them (dnsmasq
restarted when its main file changes, else sent SIGHUP to re-read its host files; ``nft -f``;
HAProxy reloaded with ``-sf``; ``sysctl -p``; ``ip -batch``).

Beside what is rendered, the driver adds the platform's own plumbing, as Neutron's L3 agent adds
its metadata proxy beside the firewall:

* the metadata proxy: 169.254.169.254 on the router's loopback and a second HAProxy listening on
  port 80 there, which forwards each request over a Unix socket to gstack's metadata server with
  the guest's source address as the router sees it (``X-Gstack-Source-Ip``) and the router's
  network (``X-Gstack-Network``), both set by the proxy over whatever the guest sent;
* the addresses the router answers for on its public side: every destination address its
  ruleset NATs or accepts there (external IPs, forwarding rules), as /32s on ``eth0``.

The public side: one bridge per host (``bridge_of(host, "public")``) joining the routers'
``eth0`` (an address of 100.64.0.0/10, derived from the VM's id) and the simulated internet, a
namespace ``gstack-inet-<hash>`` at 100.64.0.1 that routes every destination onto that bridge.
Nothing of it touches the host's own addresses, routes or firewall.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from core.hypervisors.base import DriverError
from core.hypervisors.netns import links

PUBLIC = "public"
TRANSIT = ipaddress.IPv4Network("100.64.0.0/10")
INTERNET_ADDRESS = str(TRANSIT.network_address + 1)
METADATA_ADDRESS = "169.254.169.254"
MAX_PROXY_CONNECTIONS = 4096
INET_PREFIX = "gstack-inet-"
INET_VETH = "gsi"
DNSMASQ, NFTABLES, HAPROXY = "/etc/dnsmasq.d/gstack.conf", "/etc/nftables.conf", "/etc/haproxy/haproxy.cfg"
SYSCTL, ROUTES = "/etc/sysctl.d/90-gstack.conf", "/etc/gstack/routes.batch"


def transit_address(vm_uid: int) -> str:
    """A router's address on the public bridge: unique per VM id within 100.64.0.0/10."""
    return str(TRANSIT.network_address + 2 + vm_uid % (TRANSIT.num_addresses - 4))


def run(pid: int, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``cmd`` in the mount and network namespaces of the router whose agent is ``pid``."""
    out = subprocess.run(["nsenter", "-t", str(pid), "-m", "-n", "--", *cmd], capture_output=True, text=True,
                         check=False)
    if check and out.returncode != 0:
        raise DriverError(f"{cmd[0]} in the router (agent {pid}): {(out.stderr or out.stdout).strip()[-400:]}")
    return out


# -- the simulated internet ---------------------------------------------------------------------------


def internet_names(scope: str) -> tuple[str, str]:
    """The internet namespace of one host of one installation and the host side of its veth."""
    digest = links.bridge(scope, "internet")[len(links.BRIDGE_PREFIX):]
    return INET_PREFIX + digest, INET_VETH + digest


def ensure_internet(scope: str, public_bridge: str) -> str:
    """The simulated internet on ``public_bridge``: it reaches any address the routers answer for."""
    ns, host_side = internet_names(scope)
    links.ensure_namespace(ns)
    links.plug(ns, host_side, "eth0", "42:00:64:40:00:01", public_bridge)
    links.ip("-n", ns, "link", "set", "lo", "up")
    links.ip("-n", ns, "link", "set", "eth0", "up")
    links.ip("-n", ns, "addr", "replace", f"{INTERNET_ADDRESS}/{TRANSIT.prefixlen}", "dev", "eth0")
    links.ip("-n", ns, "route", "replace", "default", "dev", "eth0", "scope", "link")
    return ns


def remove_internet(scope: str) -> None:
    ns, host_side = internet_names(scope)
    links.remove_namespace(ns, [host_side])


# -- a router's configuration --------------------------------------------------------------------------


def write_files(pid: int, files: Mapping[str, str | None]) -> None:
    """Each file at its path in the router whose agent is ``pid`` (under its ``/etc`` overlay); one
    given None removed."""
    root = f"/proc/{pid}/root/etc"
    for path, content in files.items():
        target = os.path.normpath(os.path.join(root, os.path.relpath(path, "/etc")))
        if not path.startswith("/etc/") or not target.startswith(root + os.sep):
            raise DriverError(f"refusing to write {path}: a router's files are under /etc")
        if content is None:
            with suppress(FileNotFoundError):
                os.remove(target)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target + ".tmp", "w") as f:
            f.write(content)
        os.replace(target + ".tmp", target)


def _pid(path: str, agent: int) -> int | None:
    """The daemon whose pid ``path`` holds, when it runs in the router of ``agent`` (a pid file a
    reboot left behind may name a process of the host's now)."""
    try:
        with open(path) as f:
            pid = int(f.read().split()[0])
        return pid if os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/proc/{agent}/ns/net").st_ino else None
    except (OSError, ValueError, IndexError):
        return None


def _signal(path: str, agent: int, sig: signal.Signals) -> None:
    pid = _pid(path, agent)
    if pid is not None:
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


def _stop(path: str, agent: int) -> None:
    _signal(path, agent, signal.SIGTERM)
    deadline = time.monotonic() + 2
    while _pid(path, agent) is not None and time.monotonic() < deadline:
        time.sleep(0.01)


def apply(pid: int, folder: str, network: str, socket_path: str, changed: list[str]) -> None:
    """Load what changed into the router whose agent is ``pid`` (``folder``: the VM's files).

    Which daemon reads a file is told by its path: nftables' main file and the ``.nft`` files it
    includes, HAProxy's folder, sysctl's and the routes' files; every other file is dnsmasq's
    (its host files and directories)."""
    _metadata_proxy(pid, folder, network, socket_path)
    nft = [p for p in changed if p == NFTABLES or p.endswith(".nft")]
    haproxy = [p for p in changed if p.startswith("/etc/haproxy/")]
    others = set(changed) - set(nft) - set(haproxy) - {SYSCTL, ROUTES}
    if SYSCTL in changed:
        run(pid, "sysctl", "-q", "-p", SYSCTL, check=False)  # conntrack_max is the host's, read-only here
    if ROUTES in changed:
        run(pid, "ip", "-force", "-batch", ROUTES, check=False)
    if nft:
        run(pid, "nft", "-f", NFTABLES)
        _metadata_rules(pid)
        _public_addresses(pid)
    if DNSMASQ in changed or (others and _pid(os.path.join(folder, "dnsmasq.pid"), pid) is None):
        _dnsmasq(pid, folder)
    elif others:
        _signal(os.path.join(folder, "dnsmasq.pid"), pid, signal.SIGHUP)
    if haproxy:
        _haproxy(pid, os.path.join(folder, "haproxy.pid"))


def _dnsmasq(pid: int, folder: str) -> None:
    """dnsmasq reads its main file only when it starts: it is started again."""
    pid_file = os.path.join(folder, "dnsmasq.pid")
    _stop(pid_file, pid)
    run(pid, "dnsmasq", f"--conf-file={DNSMASQ}", f"--pid-file={pid_file}", "--user=root",
        f"--dhcp-leasefile={os.path.join(folder, 'dnsmasq.leases')}", f"--log-facility={os.path.join(folder, 'dnsmasq.log')}")


def _haproxy(pid: int, pid_file: str) -> None:
    """Started, or reloaded with ``-sf`` (the old process finishes its connections). Its connection
    limit is capped to what this machine's file descriptor limit allows (the template's maxconn is
    the system VM's, sized for its own kernel)."""
    old = _pid(pid_file, pid)
    cmd = ["haproxy", "-D", "-f", HAPROXY, "-p", pid_file, "-n", str(MAX_PROXY_CONNECTIONS)]
    run(pid, *(cmd + ["-sf", str(old)] if old else cmd))


def _metadata_rules(pid: int) -> None:
    """The router's input chain admits the metadata proxy (the rendered ruleset drops what it does not name)."""
    run(pid, "nft", "insert", "rule", "ip", "gstack_filter", "input", "ip", "daddr", METADATA_ADDRESS, "tcp", "dport",
        "80", "accept", "comment", '"gstack metadata proxy"', check=False)


def _metadata_proxy(pid: int, folder: str, network: str, socket_path: str) -> None:
    """A HAProxy of its own on 169.254.169.254:80 that tells the metadata server who asks."""
    pid_file = os.path.join(folder, "metadata-proxy.pid")
    if _pid(pid_file, pid) is not None:
        return
    run(pid, "ip", "link", "set", "lo", "up")
    run(pid, "ip", "addr", "replace", f"{METADATA_ADDRESS}/32", "dev", "lo")
    config = os.path.join(folder, "metadata-proxy.cfg")
    with open(config, "w") as f:
        f.write(f"""global
    maxconn 1024
defaults
    mode http
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend metadata
    bind {METADATA_ADDRESS}:80
    http-request set-header X-Gstack-Source-Ip %[src]
    http-request set-header X-Gstack-Network {json.dumps(network)}
    default_backend metadata
backend metadata
    server metadata unix@{socket_path}
""")
    run(pid, "haproxy", "-D", "-f", config, "-p", pid_file)


def _destinations(ruleset: dict[str, Any]) -> set[str]:
    """The single IPv4 destination addresses the router's NAT prerouting and input rules match."""
    found = set()
    for item in ruleset.get("nftables", []):
        rule = item.get("rule")
        if not rule or (rule.get("table"), rule.get("chain")) not in (("gstack_nat", "prerouting"),
                                                                       ("gstack_filter", "input")):
            continue
        for expr in rule.get("expr", []):
            match = expr.get("match", {})
            left = match.get("left", {}).get("payload", {})
            if left.get("protocol") == "ip" and left.get("field") == "daddr" and isinstance(match.get("right"), str):
                found.add(match["right"])
    found.discard(METADATA_ADDRESS)
    return found


def _public_addresses(pid: int) -> None:
    """The router's ``eth0`` answers for every external address its ruleset serves, and no other."""
    out = run(pid, "nft", "-j", "list", "ruleset")
    wanted = _destinations(json.loads(out.stdout or "{}"))
    have = set()
    for line in run(pid, "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout.splitlines():
        address, _, prefix = line.split()[3].partition("/")
        if prefix == "32":
            have.add(address)
    for address in wanted - have:
        run(pid, "ip", "addr", "replace", f"{address}/32", "dev", "eth0")
    for address in have - wanted:
        run(pid, "ip", "addr", "del", f"{address}/32", "dev", "eth0", check=False)
