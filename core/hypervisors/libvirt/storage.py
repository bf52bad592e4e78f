"""Disks as libvirt volumes: the disk pool, the image pool, and which volumes outlive their VM.

A disk's volume is made the first time a VM uses the disk (from its image: a qcow2 overlay on the
image volume, or a copy with ``image_copy``; else empty) and deleted with the last VM that uses it
when the disk goes too, or by :func:`sweep` once its disk no longer exists.
"""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from contextlib import suppress

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.hypervisors.base import DiskSpec, DriverError, HostRef
from core.hypervisors.libvirt.common import (
    GIB,
    VOLUME_PREFIX,
    Conn,
    Options,
    Pool,
    Volume,
    is_test_uri,
    lv,
    sub,
    uid_of,
    volume_name,
)
from core.models import Resource

IMAGE_SUFFIXES = (".qcow2", ".img", ".raw", "")
_MAKING = threading.Lock()  # one thread of the process defines and starts a pool at a time


def pool(conn: Conn, name: str, path: str) -> Pool:
    """The storage pool ``name``, defined as a directory pool at ``path`` and started if need be.

    Two jobs may place a host's first VMs at once. Threads of this process take turns; a job of
    another process that loses the race to define or to start the pool finds it defined or
    started by the other, which is what it wanted, and not an error."""
    libvirt = lv()
    with suppress(libvirt.libvirtError):
        found = conn.storagePoolLookupByName(name)
        if found.isActive():
            return found
    with _MAKING:
        return _make_pool(conn, name, path)


def _make_pool(conn: Conn, name: str, path: str) -> Pool:
    libvirt = lv()
    try:
        found = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        xml = ET.Element("pool", type="dir")
        sub(xml, "name", name)
        sub(sub(xml, "target"), "path", path)
        try:
            found = conn.storagePoolDefineXML(ET.tostring(xml, encoding="unicode"), 0)
        except libvirt.libvirtError as exc:
            try:
                found = conn.storagePoolLookupByName(name)  # defined (and built) meanwhile
            except libvirt.libvirtError:
                raise exc from None  # not defined: the define's own error
        else:
            found.build(0)  # the directory (one that exists is kept)
            with suppress(libvirt.libvirtError):
                found.setAutostart(1)
    if not found.isActive():
        try:
            found.create(0)
        except libvirt.libvirtError:
            if not found.isActive():  # not started by another meanwhile: a real failure
                raise
    return found


def image_volume(factory: sessionmaker[Session], conn: Conn, opts: Options, image_url: str) -> Volume | None:
    """The image pool's volume for ``image_url``: named after the image, else after its family."""
    image = image_url.rstrip("/").rsplit("/", 1)[-1]
    names = [image]
    with factory() as session:
        parts = image_url.split("/projects/", 1)[-1].split("/")
        row = session.scalar(select(Resource).where(Resource.collection == "images", Resource.project == parts[0],
                                                    Resource.name == image))
        if row is not None and json.loads(row.body).get("family"):
            names.append(json.loads(row.body)["family"])
    images = pool(conn, opts["image_pool"], opts["image_pool_path"])
    for attempt in range(2):
        for name in names:
            for suffix in IMAGE_SUFFIXES:
                with suppress(lv().libvirtError):
                    return images.storageVolLookupByName(name + suffix)
        if attempt == 0:
            images.refresh(0)  # the operator may have dropped the file in since the pool was read
    return None


def _existing(disks: Pool, name: str) -> Volume | None:
    try:
        return disks.storageVolLookupByName(name)
    except lv().libvirtError:
        disks.refresh(0)  # another host sharing the pool may have made it
    try:
        return disks.storageVolLookupByName(name)
    except lv().libvirtError:
        return None


def ensure_volume(factory: sessionmaker[Session], conn: Conn, host: HostRef, opts: Options, disk: DiskSpec,
                  note: Callable[[str], None]) -> Volume:
    """The disk's volume, made on first use: from its image when it has one, else empty. A volume
    smaller than its disk (resized while the VM was stopped) grows."""
    disks = pool(conn, opts["pool"], opts["pool_path"])
    vol = _existing(disks, volume_name(disk.uid))
    if vol is not None:
        if vol.info()[1] < disk.size_gb * GIB:
            vol.resize(disk.size_gb * GIB, 0)
        return vol
    source = disk.source_image or disk_image(factory, disk.uid)
    image = image_volume(factory, conn, opts, source) if source else None
    if source and image is None:
        if not is_test_uri(host.uri):
            raise DriverError(
                f"image {source.rsplit('/', 1)[-1]} is not in storage pool {opts['image_pool']} on host "
                f"{host.name}: add it there as <image name>.qcow2 or <image family>.qcow2",
                retry_elsewhere=False)
        note(f"gstack: image {source.rsplit('/', 1)[-1]} is not on this test host; disk {disk.name} is empty")
    xml = ET.Element("volume")
    sub(xml, "name", volume_name(disk.uid))
    sub(xml, "capacity", str(disk.size_gb), unit="G")
    sub(sub(xml, "target"), "format", type="qcow2")
    if image is None:
        return disks.createXML(ET.tostring(xml, encoding="unicode"), 0)
    image_format = ET.fromstring(image.XMLDesc(0)).find("target/format")
    fmt = (image_format.get("type") if image_format is not None else None) or "raw"
    if opts.get("image_copy"):
        vol = disks.createXMLFrom(ET.tostring(xml, encoding="unicode"), image, 0)
        if vol.info()[1] < disk.size_gb * GIB:
            vol.resize(disk.size_gb * GIB, 0)
        return vol
    backing = sub(xml, "backingStore")
    sub(backing, "path", image.path())
    sub(backing, "format", type=fmt)
    return disks.createXML(ET.tostring(xml, encoding="unicode"), 0)


def disk_image(factory: sessionmaker[Session], disk_uid: int) -> str | None:
    """The image a disk was made from (its ``sourceImage``), None for a blank or unknown disk."""
    with factory() as session:
        row = session.scalar(select(Resource).where(Resource.uid == disk_uid, Resource.collection == "disks"))
    image = json.loads(row.body).get("sourceImage") if row is not None else None
    return str(image) if image else None


def disks_going_with(factory: sessionmaker[Session], res: Resource | None) -> set[int]:
    """Disk uids that go with the instance: autoDelete and used by it alone."""
    if res is None:
        return set()
    body = json.loads(res.body)
    url = body.get("selfLink", "")
    doomed = set()
    with factory() as session:
        for d in body.get("disks", []):
            if not d.get("autoDelete"):
                continue
            src = d["source"].split("/projects/", 1)[-1].split("/")
            row = session.scalar(select(Resource).where(
                Resource.project == src[0], Resource.collection == "disks",
                Resource.scope == "/".join(src[1:3]), Resource.name == src[-1]))
            if row is not None and set(json.loads(row.body).get("users", [])) <= {url}:
                doomed.add(row.uid)
    return doomed


def disk_exists(factory: sessionmaker[Session], disk_uid: int) -> bool:
    with factory() as session:
        return session.scalar(select(Resource.pk).where(Resource.uid == disk_uid,
                                                       Resource.collection == "disks")) is not None


def delete_volumes(factory: sessionmaker[Session], conn: Conn, opts: Options, names: Iterable[str],
                   doomed: set[int]) -> None:
    """Delete the volumes ``names`` (those a removed domain used, and those of ``doomed`` disks)
    whose disks go (``doomed``) or are gone already; a volume already missing is no error."""
    libvirt = lv()
    try:
        disks = conn.storagePoolLookupByName(opts["pool"])
    except libvirt.libvirtError:
        return
    for name in set(names) | {volume_name(uid) for uid in doomed}:
        uid = uid_of(name, VOLUME_PREFIX)
        if uid is not None and (uid in doomed or not disk_exists(factory, uid)):
            with suppress(libvirt.libvirtError):
                disks.storageVolLookupByName(name).delete(0)


def sweep(factory: sessionmaker[Session], conn: Conn, opts: Options) -> list[str]:
    """Delete the pool's gstack volumes whose disks no longer exist; their names. Volumes are listed
    before the database is read: a volume is made only for a disk already committed."""
    libvirt = lv()
    try:
        disks = conn.storagePoolLookupByName(opts["pool"])
        if not disks.isActive():
            # Not started yet (a job on another thread is between :func:`pool`'s define and its
            # start, on a host's first VM) or stopped by the operator: its volumes cannot be listed
            # and none of them is in use, so there is nothing to collect; that is no host failure.
            return []
    except libvirt.libvirtError:
        return []
    disks.refresh(0)
    found = {uid: name for name in disks.listVolumes() if (uid := uid_of(name, VOLUME_PREFIX)) is not None}
    if not found:
        return []
    with factory() as session:
        # A system VM's root volume is named after the system VM (it has no disk row).
        # By uid alone, told apart after: with the collections in the WHERE, SQLite walks their
        # index for more than a few uids (see core.systemvms.sync).
        live = {uid for uid, collection in session.execute(select(Resource.uid, Resource.collection).where(
            Resource.uid.in_(list(found)))) if collection in ("disks", "systemvms")}
    gone = []
    for uid, name in sorted(found.items()):
        if uid not in live:
            with suppress(libvirt.libvirtError):
                disks.storageVolLookupByName(name).delete(0)
                gone.append(name)
    return gone
