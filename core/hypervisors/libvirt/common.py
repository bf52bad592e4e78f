"""What every part of the libvirt driver shares: libvirt-python (imported on first use), the names
gstack gives to what it keeps on a host, and the host's settings.

libvirt-python ships no type information: its objects are typed here by what they are
(:data:`Conn`, :data:`Domain`, ...), all ``Any`` to the type checker.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from core.hypervisors.base import DriverError

XMLNS = "https://gstack.dev/xmlns/libvirt/1"
ET.register_namespace("gstack", XMLNS)
DOMAIN_PREFIX = "gstack-"
VOLUME_PREFIX = "gstack-disk-"
MAX_CONSOLE = 1024 * 1024  # GCE keeps the last 1 MB of serial output
GIB = 1024**3

DEFAULTS: dict[str, Any] = {
    "pool": "gstack-disks",
    "pool_path": "/var/lib/gstack/disks",
    "image_pool": "gstack-images",
    "image_pool_path": "/var/lib/gstack/images",
    "image_copy": False,
    "networks": {"*": "network:default"},
    "shutdown_timeout": 60.0,
}

# libvirt-python's objects (virConnect, virDomain, virStoragePool, virStorageVol): untyped.
Conn = Any
Domain = Any
Pool = Any
Volume = Any
# A host's settings: DEFAULTS overlaid with the host's ``options`` (JSON).
Options = dict[str, Any]

_MODULE: ModuleType | None = None


def lv() -> Any:
    """libvirt-python, imported when a libvirt host is first used (the simulator needs none)."""
    global _MODULE
    if _MODULE is None:
        try:
            import libvirt
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise DriverError("libvirt-python is not installed (pip install 'gstack[libvirt]')",
                              retry_elsewhere=False) from exc
        # Failures arrive as exceptions; libvirt's default handler would print each one to stderr too.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _MODULE = libvirt
    return _MODULE


def domain_name(vm_uid: int) -> str:
    return f"{DOMAIN_PREFIX}{vm_uid}"


def domain_uuid(vm_uid: int) -> str:
    """The same UUID whenever the domain is (re)defined: libvirt refuses a new one for a known name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{XMLNS}#{vm_uid}"))


def volume_name(disk_uid: int) -> str:
    return f"{VOLUME_PREFIX}{disk_uid}.qcow2"


def uid_of(name: str, prefix: str) -> int | None:
    """The gstack uid in a domain or volume name made by :func:`domain_name` or :func:`volume_name`."""
    rest = name[len(prefix):].removesuffix(".qcow2") if name.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


def is_test_uri(uri: str) -> bool:
    return uri.startswith("test:")


def is_remote_uri(uri: str) -> bool:
    hostname = urlsplit(uri).hostname
    return bool(hostname) and hostname not in ("localhost", "127.0.0.1", "::1")


def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """A child element; a trailing ``_`` in an attribute name is dropped (``type_`` -> ``type``)."""
    el = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def lookup(conn: Conn, vm_uid: int) -> Domain | None:
    """The VM's domain on the host, None when it has none."""
    try:
        return conn.lookupByName(domain_name(vm_uid))
    except lv().libvirtError as exc:
        if exc.get_error_code() == lv().VIR_ERR_NO_DOMAIN:
            return None
        raise


def running(conn: Conn, vm_uid: int, host_name: str) -> Domain:
    """The VM's domain when it is running; else a :class:`DriverError` that another host would not
    cure (a reset, a typed console line or a config push needs the guest up where it is)."""
    dom = lookup(conn, vm_uid)
    if dom is None or not dom.isActive():
        raise DriverError(f"{domain_name(vm_uid)} is not running on host {host_name}", retry_elsewhere=False)
    return dom
