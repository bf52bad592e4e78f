"""The libvirt driver: real VMs on KVM/QEMU hosts (and libvirt's ``test://`` driver in CI).

A host is a libvirt connection URI (``qemu:///system``, ``qemu+ssh://root@kvm1/system``,
``test:///default``). The driver keeps one open connection per URI per process: libvirt
connections are thread-safe, and a ``test://`` host's state lives in the connection.

What gstack keeps on a host:

* a domain ``gstack-<instance uid>`` per VM, its domain XML rendered from the machine type, the
  disks, the NICs and a serial console whose output is logged to a file (what
  ``getSerialPortOutput`` reads); the gstack ids are in ``<metadata>``;
* a volume ``gstack-disk-<disk uid>.qcow2`` per disk in the disk pool (``gstack-disks``), made
  when a VM first uses the disk: from the image (a qcow2 overlay on the image volume, or a copy
  with ``image_copy``) or empty;
* the images, as volumes of the image pool (``gstack-images``) named after the image or its
  family: ``debian-12-bookworm-v20241009.qcow2`` or ``debian-12.qcow2``.

Per-host settings are the host's ``options`` (JSON, ``gstack admin host add --option k=v``):
``pool``, ``pool_path``, ``image_pool``, ``image_pool_path``, ``image_copy``, ``networks``
(gstack network -> ``network:NAME`` or ``bridge:NAME``, key ``*`` for the rest), ``console_dir``,
``shutdown_timeout``.

Where the test driver lacks a call, the driver degrades and says so in the serial log: live
attach/detach becomes a change of the persistent definition, and a ``test://`` host (which runs
no guest) gets its console lines written by gstack itself; what is typed on its interactive
serial console (which the test driver cannot open) is answered in the log by the simulator's
guest (a getty, then a small shell). Suspend is a managed save (the
VM's memory goes to disk and the host's memory is freed); a driver without managed save pauses.

The package: :mod:`.common` (names, settings, libvirt-python), :mod:`.domainxml` (the domain XML),
:mod:`.storage` (pools and volumes), :mod:`.console` (the serial log and console), :mod:`.driver`
(the driver class). The names below are its public ones.
"""

from core.hypervisors.libvirt.common import (
    DEFAULTS,
    DOMAIN_PREFIX,
    MAX_CONSOLE,
    VOLUME_PREFIX,
    XMLNS,
    domain_name,
    domain_uuid,
    is_remote_uri,
    is_test_uri,
    volume_name,
)
from core.hypervisors.libvirt.driver import LibvirtDriver

__all__ = ["DEFAULTS", "DOMAIN_PREFIX", "MAX_CONSOLE", "VOLUME_PREFIX", "XMLNS", "LibvirtDriver", "domain_name",
           "domain_uuid", "is_remote_uri", "is_test_uri", "volume_name"]
