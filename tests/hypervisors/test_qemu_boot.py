"""Optional: a real VM under QEMU (``qemu:///session``, KVM when /dev/kvm is usable, else TCG).

The image is a 512-byte boot sector made here that prints a line on the first serial port and
halts; the test boots it through the API and reads the line back with getSerialPortOutput. It is
skipped, with the reason, where QEMU or libvirt's daemon is not installed
(``apt-get install qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import pytest

from core.hypervisors.base import HostRef
from core.models import Host
from tests.conftest import PROJECT, free_port, wait_op
from tests.hypervisors.conftest import InProcessServer

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")
pytestmark = pytest.mark.xdist_group("qemu")

ZONE = "us-central1-c"
URI = "qemu:///session"
BANNER = b"gstack-qemu-boot-ok"


def boot_sector() -> bytes:
    """Real-mode code: write BANNER to COM1 (port 0x3f8), then halt forever."""
    code = bytes([
        0xFA, 0xFC,              # cli; cld
        0x31, 0xC0, 0x8E, 0xD8,  # xor ax, ax; mov ds, ax
        0xBE, 0x17, 0x7C,        # mov si, 0x7c17 (the message)
        0xBA, 0xF8, 0x03,        # mov dx, 0x3f8
        0xAC,                    # next: lodsb
        0x84, 0xC0, 0x74, 0x03,  # test al, al; jz done
        0xEE, 0xEB, 0xF8,        # out dx, al; jmp next
        0xF4, 0xEB, 0xFD,        # done: hlt; jmp done
    ]) + BANNER + b"\r\n\0"
    return code.ljust(510, b"\0") + b"\x55\xaa"


def qemu_session_or_skip():
    if not (shutil.which("qemu-system-x86_64") or os.path.exists("/usr/libexec/qemu-kvm")):
        pytest.skip("QEMU is not installed (apt-get install qemu-system-x86)")
    if not shutil.which("libvirtd") and not os.path.exists("/usr/sbin/libvirtd"):
        pytest.skip("libvirt's daemon is not installed (apt-get install libvirt-daemon libvirt-daemon-driver-qemu)")
    try:
        conn = libvirt.open(URI)
    except libvirt.libvirtError as exc:
        pytest.skip(f"cannot open {URI}: {exc.get_error_message()}")
    caps = conn.getCapabilities()
    conn.close()
    if "<domain type='qemu'" not in caps and "<domain type='kvm'" not in caps:
        pytest.skip(f"{URI} offers no QEMU guests")


@pytest.fixture(scope="module")
def qemu_cloud():
    qemu_session_or_skip()
    data_dir = tempfile.mkdtemp(prefix="gstack-qemu-")
    os.chmod(data_dir, 0o755)  # as root, qemu:///session is the system daemon: QEMU runs as libvirt-qemu
    images = os.path.join(data_dir, "images")
    os.makedirs(images)
    with open(os.path.join(images, "debian-12.raw"), "wb") as f:  # found by the image's family
        f.write(boot_sector().ljust(1024 * 1024, b"\0"))
    server = InProcessServer("sqlite", data_dir, "sqlite:///" + os.path.join(data_dir, "gstack.sqlite3"),
                             port=free_port()).start()
    suffix = os.path.basename(data_dir)[-8:]
    options = {"pool": f"gstack-disks-{suffix}", "pool_path": os.path.join(data_dir, "disks"),
               "image_pool": f"gstack-images-{suffix}", "image_pool_path": images,
               "console_dir": os.path.join(data_dir, "console"), "networks": {"*": "user"},
               "shutdown_timeout": 2}
    server.admin("cluster", "add", "--zone", ZONE, "--name", "qemu", "--hypervisor", "libvirt")
    server.admin("host", "add", "--zone", ZONE, "--cluster", "qemu", "--name", "qemu-session", "--uri", URI,
                 *[x for k, v in options.items() for x in ("--option", f"{k}={json.dumps(v)}")])
    for i in range(1, 5):
        server.admin("host", "maintenance", f"sim-{ZONE}-0{i}", "on")
    yield server
    server.stop()
    conn = server.driver.connection(URI)
    for name in (options["pool"], options["image_pool"]):
        try:
            pool = conn.storagePoolLookupByName(name)
            if pool.isActive():
                pool.destroy()
            pool.undefine()
        except libvirt.libvirtError:
            pass
    server.driver.close()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_boot_a_real_vm_and_read_its_serial_console(qemu_cloud):
    gce = qemu_cloud.gce()
    body = {"name": "tiny", "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
                "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}
    op = wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body).execute())
    assert "error" not in op, op
    try:
        contents = ""
        deadline = time.time() + 60
        while BANNER.decode() not in contents and time.time() < deadline:
            time.sleep(0.5)
            contents = gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance="tiny").execute()[
                "contents"]
        assert BANNER.decode() in contents, contents
        uid = int(gce.instances().get(project=PROJECT, zone=ZONE, instance="tiny").execute()["id"])
        with qemu_cloud.runtime.factory() as session:  # the interactive console's input path
            host = session.query(Host).filter_by(name="qemu-session").one()
            qemu_cloud.driver.serial_write(HostRef(host.id, host.name, host.uri), uid, "hello\r")
        op = wait_op(gce, gce.instances().stop(project=PROJECT, zone=ZONE, instance="tiny").execute())
        assert "error" not in op, op  # the guest ignores ACPI: powered off after shutdown_timeout
        assert gce.instances().get(project=PROJECT, zone=ZONE, instance="tiny").execute()["status"] == "TERMINATED"
    finally:
        wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance="tiny").execute())
