"""The whole instance and disk lifecycle through the libvirt driver, on libvirt's test driver.

Driven over HTTP with google-api-python-client; the assertions read both what the API shows and
the domain XML libvirt stores (vCPUs, memory, disks, NIC MAC, serial console, gstack metadata).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from core.hypervisors.base import HostRef
from core.hypervisors.libvirt import XMLNS, domain_name, storage, volume_name
from core.ipam import mac_for
from tests.conftest import PROJECT
from tests.helpers.libvirt import ZONE, body, host_of, run, state
from tests.hypervisors.conftest import NODE_XML

pytestmark = pytest.mark.xdist_group("libvirt")


def domain(cloud, uid: int | str, inactive: bool = False) -> ET.Element | None:
    xml = cloud.driver.domain_xml_of(host_of(cloud), int(uid), inactive=inactive)
    return ET.fromstring(xml) if xml is not None else None


def volumes(cloud) -> set[str]:
    conn = cloud.driver.connection(cloud.uri)
    return set(conn.storagePoolLookupByName("gstack-disks").listVolumes())


def test_instance_lifecycle_on_libvirt(cloud):
    gce = cloud.gce()
    inst_api = gce.instances()
    run(gce, inst_api.insert(project=PROJECT, zone=ZONE, body=body("lv1")))
    inst = inst_api.get(project=PROJECT, zone=ZONE, instance="lv1").execute()
    assert inst["status"] == "RUNNING"
    uid = inst["id"]

    dom = domain(cloud, uid)
    assert dom.get("type") == "test"
    assert dom.findtext("name") == domain_name(int(uid))
    assert dom.findtext("title") == "lv1"
    assert dom.findtext("vcpu") == "2"  # e2-small: 2 vCPUs, 2 GiB
    assert int(dom.findtext("memory")) == 2048 * 1024 and dom.find("memory").get("unit") == "KiB"
    meta = dom.find(f"metadata/{{{XMLNS}}}instance")
    assert meta.findtext(f"{{{XMLNS}}}uid") == uid
    assert meta.findtext(f"{{{XMLNS}}}project") == PROJECT
    assert meta.findtext(f"{{{XMLNS}}}zone") == ZONE
    disks = dom.findall("devices/disk")
    boot_disk = gce.disks().get(project=PROJECT, zone=ZONE, disk="lv1").execute()
    assert [d.find("source").get("volume") for d in disks] == [volume_name(int(boot_disk["id"]))]
    assert disks[0].find("target").get("dev") == "sda" and disks[0].find("boot").get("order") == "1"
    assert disks[0].findtext("serial") == "lv1"
    nic = dom.find("devices/interface")
    assert nic.get("type") == "network" and nic.find("source").get("network") == "default"
    assert nic.find("mac").get("address") == mac_for(inst["networkInterfaces"][0]["networkIP"])
    serial = dom.find("devices/serial")
    assert serial.get("type") == "pty" and serial.find("log").get("file").endswith(f"{domain_name(int(uid))}-serial.log")
    assert state(cloud, uid) == "running"

    # the boot volume: a 20 GiB qcow2 in the disk pool
    conn = cloud.driver.connection(cloud.uri)
    vol = conn.storagePoolLookupByName("gstack-disks").storageVolLookupByName(volume_name(int(boot_disk["id"])))
    assert vol.info()[1] == 20 * 1024**3

    out = inst_api.getSerialPortOutput(project=PROJECT, zone=ZONE, instance="lv1").execute()
    assert "started on kvm1-host1: 2 vCPUs, 2048 MiB" in out["contents"]
    assert int(out["next"]) == len(out["contents"].encode())

    run(gce, inst_api.stop(project=PROJECT, zone=ZONE, instance="lv1"))
    assert inst_api.get(project=PROJECT, zone=ZONE, instance="lv1").execute()["status"] == "TERMINATED"
    assert state(cloud, uid) == "shutoff"

    # a machine type change while stopped reaches the domain at the next start
    run(gce, inst_api.setMachineType(project=PROJECT, zone=ZONE, instance="lv1",
                                     body={"machineType": f"zones/{ZONE}/machineTypes/e2-medium"}))
    run(gce, inst_api.start(project=PROJECT, zone=ZONE, instance="lv1"))
    assert inst_api.get(project=PROJECT, zone=ZONE, instance="lv1").execute()["status"] == "RUNNING"
    dom = domain(cloud, uid)
    assert dom.findtext("vcpu") == "2" and int(dom.findtext("memory")) == 4096 * 1024
    assert state(cloud, uid) == "running"

    run(gce, inst_api.reset(project=PROJECT, zone=ZONE, instance="lv1"))
    assert state(cloud, uid) == "running"

    run(gce, inst_api.suspend(project=PROJECT, zone=ZONE, instance="lv1"))
    assert inst_api.get(project=PROJECT, zone=ZONE, instance="lv1").execute()["status"] == "SUSPENDED"
    conn = cloud.driver.connection(cloud.uri)
    assert conn.lookupByName(domain_name(int(uid))).hasManagedSaveImage(0) == 1
    run(gce, inst_api.resume(project=PROJECT, zone=ZONE, instance="lv1"))
    assert inst_api.get(project=PROJECT, zone=ZONE, instance="lv1").execute()["status"] == "RUNNING"
    assert state(cloud, uid) == "running"
    assert conn.lookupByName(domain_name(int(uid))).hasManagedSaveImage(0) == 0

    contents = inst_api.getSerialPortOutput(project=PROJECT, zone=ZONE, instance="lv1").execute()["contents"]
    for line in ("powered off", "reset", "suspended: saved to disk (managed save)", "restored from its saved state"):
        assert line in contents
    tail = inst_api.getSerialPortOutput(project=PROJECT, zone=ZONE, instance="lv1", start=-20).execute()
    assert len(tail["contents"].encode()) == 20

    run(gce, inst_api.delete(project=PROJECT, zone=ZONE, instance="lv1"))
    assert domain(cloud, uid) is None
    assert volume_name(int(boot_disk["id"])) not in volumes(cloud)  # autoDelete: the volume went with it


def test_disk_attach_detach_on_libvirt(cloud):
    gce = cloud.gce()
    inst_api = gce.instances()
    run(gce, inst_api.insert(project=PROJECT, zone=ZONE, body=body("lv2", "e2-micro")))
    uid = int(inst_api.get(project=PROJECT, zone=ZONE, instance="lv2").execute()["id"])
    run(gce, gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": "lv2-data", "sizeGb": "10"}))
    data = gce.disks().get(project=PROJECT, zone=ZONE, disk="lv2-data").execute()
    data_vol = volume_name(int(data["id"]))

    run(gce, inst_api.attachDisk(project=PROJECT, zone=ZONE, instance="lv2",
                                 body={"source": f"zones/{ZONE}/disks/lv2-data", "deviceName": "data"}))
    disks = domain(cloud, uid, inactive=True).findall("devices/disk")
    assert [d.find("source").get("volume") for d in disks][1] == data_vol
    assert disks[1].find("target").get("dev") == "sdb" and disks[1].findtext("serial") == "data"
    assert data_vol in volumes(cloud)

    run(gce, inst_api.detachDisk(project=PROJECT, zone=ZONE, instance="lv2", deviceName="data"))
    disks = domain(cloud, uid, inactive=True).findall("devices/disk")
    assert [d.find("source").get("volume") for d in disks] == [volume_name(int(
        gce.disks().get(project=PROJECT, zone=ZONE, disk="lv2").execute()["id"]))]
    assert data_vol in volumes(cloud)  # a detached disk keeps its data

    run(gce, gce.disks().delete(project=PROJECT, zone=ZONE, disk="lv2-data"))
    garbage = cloud.driver.collect_garbage(host_of(cloud))
    assert garbage == [data_vol] and data_vol not in volumes(cloud)

    run(gce, inst_api.delete(project=PROJECT, zone=ZONE, instance="lv2"))
    assert domain(cloud, uid) is None


def fresh_node(cloud, tmp_path):
    """The driver's connection to a test-driver node of its own (no pool yet); its URI."""
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML)
    uri = f"test://{node}"
    return cloud.driver.connection(uri), uri


def test_a_pool_not_started_has_no_garbage_and_is_no_failure(cloud, tmp_path):
    """A host's first VM defines its disk pool and then starts it, on a job's thread: the host
    monitor's sweep between the two found the pool inactive, failed to list it and reported the
    host unreachable (the monitor's HA test saw it). An inactive pool has nothing to collect."""
    conn, uri = fresh_node(cloud, tmp_path)
    spare = HostRef(host_of(cloud).id, "spare", uri)  # host1's options, a node of its own
    pool = conn.storagePoolDefineXML(
        f"<pool type='dir'><name>gstack-disks</name><target><path>{tmp_path}</path></target></pool>", 0)
    assert not pool.isActive()
    assert cloud.driver.collect_garbage(spare) == []
    pool.create(0)
    pool.createXML(f"<volume><name>{volume_name(987654321)}</name><capacity>1024</capacity></volume>", 0)
    assert cloud.driver.collect_garbage(spare) == [volume_name(987654321)]  # started, it is swept


def test_two_jobs_making_a_hosts_pool_at_once_both_get_it(cloud, tmp_path):
    """A job that loses the race to define (and start) a host's disk pool to another process's
    job gets the pool the other made, not libvirt's "already exists"."""
    import libvirt

    conn, _ = fresh_node(cloud, tmp_path)
    path = str(tmp_path / "disks")

    class Racing:
        """The real connection, whose first define comes just after another process's job
        defined, built and started the pool (after this job looked the pool up and missed)."""

        raced = False

        def __getattr__(self, name):
            return getattr(conn, name)

        def storagePoolDefineXML(self, xml, flags):
            if not self.raced:
                self.raced = True
                other = conn.storagePoolDefineXML(xml, flags)
                other.build(0)
                other.create(0)
            return conn.storagePoolDefineXML(xml, flags)

    mine = storage.pool(Racing(), "gstack-disks", path)
    assert mine.isActive() and conn.listStoragePools() == ["gstack-disks"]
    with pytest.raises(libvirt.libvirtError):  # a define that fails for its own reason still fails
        storage.pool(conn, "bad/name", path)
