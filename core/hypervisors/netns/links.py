"""What the netns driver makes in the host's kernel, and the names it gives it.

Every name is derived from what it serves, so a repeated call finds what an earlier one made:
a VM's namespace ``gstack-vm-<uid>``, its host-side veth ``gsv<uid in base 36>`` and a network's
bridge ``gsb<hash>`` (interface names hold 15 bytes, IFNAMSIZ - 1). The bridges carry no address,
so the host routes nothing to them and nothing from them reaches its uplink; their traffic is
kept from the host's own iptables (``nf_call_iptables 0`` on each bridge, a setting of the bridge,
not of the host).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import signal
import subprocess
from contextlib import suppress

from core.hypervisors.base import DriverError

NAMESPACE_PREFIX = "gstack-vm-"
VETH_PREFIX = "gsv"
BRIDGE_PREFIX = "gsb"
IFNAMSIZ = 15
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def namespace(vm_uid: int) -> str:
    return f"{NAMESPACE_PREFIX}{vm_uid}"


def _base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = DIGITS[r] + out
        if n == 0:
            return out


def veth(vm_uid: int, index: int) -> str:
    """The host side of the VM's ``index``-th NIC: unique per uid (62-bit uids fit in 12 base-36
    digits); a second NIC gets ``x<index>`` folded in by hash, staying within IFNAMSIZ."""
    name = VETH_PREFIX + _base36(vm_uid)
    if index:
        name = VETH_PREFIX + hashlib.sha256(f"{vm_uid}/{index}".encode()).hexdigest()[:IFNAMSIZ - len(VETH_PREFIX)]
    return name[:IFNAMSIZ]


def bridge(scope: str, network: str) -> str:
    """A network's bridge on one host of one installation (``scope`` names both)."""
    digest = hashlib.sha256(f"{scope}/{network}".encode()).hexdigest()
    return BRIDGE_PREFIX + digest[:IFNAMSIZ - len(BRIDGE_PREFIX)]


@functools.cache
def missing_tools() -> str | None:
    """Why this machine cannot run netns VMs, or None when it can (asked once per process: root, the
    tools, and a kernel that lets this process make namespaces, which an unprivileged container's
    root may not)."""
    if os.geteuid() != 0:
        return "the netns driver needs root (network namespaces, bridges and veth pairs)"
    for tool in ("ip", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"the netns driver needs '{tool}' (iproute2, util-linux)"
    probe = subprocess.run(["unshare", "--net", "--uts", "--mount", "true"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        return f"the netns driver cannot make namespaces here: {probe.stderr.strip()}"
    return None


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS``; a failure becomes a DriverError (the host refused)."""
    out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise DriverError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def namespace_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def ensure_bridge(name: str) -> None:
    """The bridge, up, without an address; a repeat leaves it as it is."""
    if not link_exists(name):
        ip("link", "add", name, "type", "bridge", check=False)  # a racing process may have made it
        if not link_exists(name):
            raise DriverError(f"cannot create bridge {name}")
        ip("link", "set", name, "type", "bridge", "nf_call_iptables", "0", "nf_call_ip6tables", "0", check=False)
        _no_ipv6(name)
    ip("link", "set", name, "up")


def _no_ipv6(name: str) -> None:
    """No link-local address (and no router solicitations from the host) on a link of ours."""
    with suppress(OSError), open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
        f.write("1")


def remove_bridge_if_unused(name: str) -> bool:
    """Delete the bridge when no port is left on it; whether it is gone."""
    if not link_exists(name):
        return True
    if os.listdir(f"/sys/class/net/{name}/brif"):
        return False
    ip("link", "del", name, check=False)
    return not link_exists(name)


def ensure_namespace(ns: str) -> None:
    if not namespace_exists(ns):
        ip("netns", "add", ns, check=False)
        if not namespace_exists(ns):
            raise DriverError(f"cannot create network namespace {ns}")


def plug(ns: str, host_side: str, guest_side: str, mac: str, bridge_name: str) -> None:
    """A veth pair from the bridge into the namespace, the guest side named ``guest_side`` with the
    NIC's MAC; a repeat leaves a complete pair alone and remakes a half-made one."""
    if link_exists(host_side) and guest_side in ip("-n", ns, "-o", "link", "show"):
        return
    ip("link", "del", host_side, check=False)
    ip("link", "add", host_side, "type", "veth", "peer", "name", guest_side, "address", mac, "netns", ns)
    _no_ipv6(host_side)
    ip("link", "set", host_side, "master", bridge_name)
    ip("link", "set", host_side, "up")


def pids(ns: str) -> list[int]:
    """The processes whose network namespace is ``ns``."""
    if not namespace_exists(ns):
        return []
    return [int(p) for p in ip("netns", "pids", ns, check=False).split()]


def signal_all(ns: str, sig: signal.Signals) -> None:
    for pid in pids(ns):
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


def remove_namespace(ns: str, host_sides: list[str]) -> None:
    """Kill what runs in the namespace and delete it with its veths; a repeat is a no-op."""
    signal_all(ns, signal.SIGKILL)
    for name in host_sides:
        if link_exists(name):
            ip("link", "del", name, check=False)
    if namespace_exists(ns):
        ip("netns", "del", ns, check=False)
