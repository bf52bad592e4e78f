"""The domain XML of a gstack VM, and the changes of its disk devices.

Rendering is pure: the driver reads what it needs (the host's capabilities and settings, the
instance's row) and passes it in, so the XML follows from its arguments alone.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from core.hypervisors.base import DiskSpec, DriverError, NicSpec, VmSpec
from core.hypervisors.libvirt.common import (
    XMLNS,
    Domain,
    Options,
    domain_name,
    domain_uuid,
    lv,
    sub,
    volume_name,
)
from core.models import Resource

# (domain type, arch, emulator) of the guests a host offers
Guest = tuple[str, str, str]


def device_letter(n: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa: the suffix of sdX names."""
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(97 + r) + out
    return out


def best_guest(capabilities: str, uri: str) -> Guest:
    """The hvm guest of a host's capabilities XML: kvm before qemu before the test driver's own,
    the host's architecture before others."""
    caps = ET.fromstring(capabilities)
    host_arch = caps.findtext("host/cpu/arch") or "x86_64"
    best: tuple[int, str, str, str] | None = None
    for guest in caps.findall("guest"):
        arch = guest.find("arch")
        if guest.findtext("os_type") != "hvm" or arch is None:
            continue
        for dom in arch.findall("domain"):
            kind = dom.get("type") or ""
            rank = {"kvm": 0, "qemu": 1, "test": 2}.get(kind, 3) * 2 + (arch.get("name") != host_arch)
            if best is None or rank < best[0]:
                emulator = dom.findtext("emulator") or arch.findtext("emulator") or ""
                best = (rank, kind, arch.get("name") or host_arch, emulator)
    if best is None:
        raise DriverError(f"{uri} offers no hvm guests")
    return best[1:]


def network_source(opts: Options, nic: NicSpec) -> tuple[str, str]:
    """('network' | 'bridge', name) the NIC plugs into, from the host's ``networks`` map; ('user', '')
    is QEMU's user-mode network (``qemu:///session`` hosts have no other)."""
    mapping = opts.get("networks") or {}
    target = str(mapping.get(nic.network) or mapping.get("*") or "network:default")
    kind, _, name = target.partition(":")
    if not (kind in ("network", "bridge") and name or kind == "user" and not name):
        raise DriverError(f"bad network mapping '{target}' for network {nic.network}", retry_elsewhere=False)
    return kind, name


def disk_element(opts: Options, disk: DiskSpec, target: str) -> ET.Element:
    el = ET.Element("disk", type="volume", device="disk")
    sub(el, "driver", name="qemu", type="qcow2", discard="unmap")
    sub(el, "source", pool=opts["pool"], volume=volume_name(disk.uid))
    sub(el, "target", dev=target, bus="scsi")
    if disk.device_name:  # the guest finds it as /dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_<name>
        sub(el, "serial", disk.device_name[:36])
    if disk.boot:
        sub(el, "boot", order="1")
    return el


def render(guest: Guest, vm: VmSpec, res: Resource | None, opts: Options, console_log: str) -> str:
    """The domain XML of ``vm`` (its instance row ``res`` names it in the description and the gstack
    metadata), its serial console logged to ``console_log``."""
    kind, arch, emulator = guest
    dom = ET.Element("domain", type=kind)
    sub(dom, "name", domain_name(vm.uid))
    sub(dom, "uuid", domain_uuid(vm.uid))
    sub(dom, "title", vm.name)
    if res is not None:
        sub(dom, "description", f"gstack instance projects/{res.project}/{res.scope}/instances/{res.name}")
    meta = ET.SubElement(sub(dom, "metadata"), f"{{{XMLNS}}}instance")
    for key, value in (("uid", str(vm.uid)), ("name", vm.name), ("hostname", vm.hostname),
                       ("project", res.project if res else ""), ("zone", res.scope.split("/")[-1] if res else "")):
        ET.SubElement(meta, f"{{{XMLNS}}}{key}").text = value
    sub(dom, "memory", str(vm.memory_mb), unit="MiB")
    sub(dom, "vcpu", str(vm.vcpus), placement="static")
    os_el = sub(dom, "os")
    sub(os_el, "type", "hvm", arch=arch)
    features = sub(dom, "features")
    sub(features, "acpi")  # stop is an ACPI power button press first
    sub(features, "apic")
    if kind == "kvm":
        sub(dom, "cpu", mode="host-passthrough")
    sub(dom, "clock", offset="utc")
    sub(dom, "on_poweroff", "destroy")
    sub(dom, "on_reboot", "restart")
    sub(dom, "on_crash", "destroy")
    _devices(sub(dom, "devices"), kind, emulator, vm, opts, console_log)
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def _devices(devices: ET.Element, kind: str, emulator: str, vm: VmSpec, opts: Options, console_log: str) -> None:
    if emulator and kind != "test":
        sub(devices, "emulator", emulator)
    sub(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    for i, disk in enumerate(vm.disks):
        devices.append(disk_element(opts, disk, f"sd{device_letter(i)}"))
    for nic in vm.nics:
        kind_, name = network_source(opts, nic)
        iface = sub(devices, "interface", type=kind_)
        sub(iface, "mac", address=nic.mac)
        if name:
            sub(iface, "source", **{kind_: name})
        sub(iface, "model", type="virtio")
    serial = sub(devices, "serial", type="pty")
    sub(serial, "log", file=console_log, append="on")
    sub(serial, "target", port="0")
    console = sub(devices, "console", type="pty")
    sub(console, "target", type="serial", port="0")
    rng = sub(devices, "rng", model="virtio")
    sub(rng, "backend", "/dev/urandom", model="random")
    sub(devices, "memballoon", model="virtio")


def defined_xml(dom: Domain) -> ET.Element:
    """The domain's persistent definition (what it gets at its next start)."""
    return ET.fromstring(dom.XMLDesc(lv().VIR_DOMAIN_XML_INACTIVE))


def disk_of(defined: ET.Element, disk_uid: int) -> ET.Element | None:
    """The ``<disk>`` of ``defined`` whose source is the disk's volume."""
    for el in defined.findall("devices/disk"):
        source = el.find("source")
        if source is not None and source.get("volume") == volume_name(disk_uid):
            return el
    return None


def free_target(defined: ET.Element) -> str:
    """The first sdX name no disk of ``defined`` uses."""
    used = {t.get("dev") for t in defined.findall("devices/disk/target")}
    return next(f"sd{device_letter(i)}" for i in range(len(used) + 1) if f"sd{device_letter(i)}" not in used)


def change_device(dom: Domain, defined: ET.Element, element: ET.Element, attach: bool) -> None:
    """Hot-plug (live and persistent); a driver without hot-plug gets the persistent change only,
    which the VM sees at its next start."""
    libvirt = lv()
    xml = ET.tostring(element, encoding="unicode")
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
    try:
        if attach:
            dom.attachDeviceFlags(xml, flags)
        else:
            dom.detachDeviceFlags(xml, flags)
        return
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            raise
    devices = defined.find("devices")
    assert devices is not None  # every domain libvirt defines has <devices>
    if attach:
        devices.append(element)
    else:
        devices.remove(element)
    dom.connect().defineXML(ET.tostring(defined, encoding="unicode"))
