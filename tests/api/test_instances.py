"""instances: end to end against ``gstack serve`` (SQLite and PostgreSQL), driven by Google's clients.

Every test names its instances and disks uniquely: the server is shared by the whole session.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import requests
from googleapiclient.errors import HttpError

from tests.conftest import PROJECT, ZONE, error_of, unique, wait_op

REGION = "us-central1"
FAMILY = "projects/debian-cloud/global/images/family/debian-12"
NEWEST_DEBIAN_12 = "debian-12-bookworm-v20241009"
OLDER_DEBIAN_12 = "debian-12-bookworm-v20240709"
NAME_REGEX = "(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)"
SUBNET = ipaddress.ip_network("10.128.0.0/20")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[-+]\d\d:\d\d$")
CPU_PLATFORMS = {"Intel Cascade Lake", "AMD Milan"}
GCLOUD_TRACE = Path("/work/shared/clients/gcloud/instances-create-image-family.txt")


# -- helpers ---------------------------------------------------------------------------------------


def zone_path(collection: str = "", name: str = "") -> str:
    path = f"projects/{PROJECT}/zones/{ZONE}"
    if collection:
        path += f"/{collection}"
    if name:
        path += f"/{name}"
    return path


def body(name: str, *, machine_type: str = "e2-micro", image: str = FAMILY, nat: bool = False,
         auto_delete: bool = True, **extra) -> dict:
    nic: dict = {"network": "global/networks/default"}
    if nat:
        nic["accessConfigs"] = [{"name": "External NAT", "type": "ONE_TO_ONE_NAT"}]
    if "/" not in machine_type:
        machine_type = f"zones/{ZONE}/machineTypes/{machine_type}"
    return {
        "name": name, "machineType": machine_type,
        "disks": [{"boot": True, "autoDelete": auto_delete, "initializeParams": {"sourceImage": image}}],
        "networkInterfaces": [nic], **extra,
    }


def insert(gce, name: str, **kw) -> dict:
    return gce.instances().insert(project=PROJECT, zone=ZONE, body=body(name, **kw)).execute()


def create(gce, name: str, **kw) -> dict:
    """Insert, wait for the operation, check it succeeded, return the instance."""
    op = wait_op(gce, insert(gce, name, **kw))
    assert "error" not in op, op
    return get(gce, name)


def get(gce, name: str) -> dict:
    return gce.instances().get(project=PROJECT, zone=ZONE, instance=name).execute()


def get_disk(gce, name: str) -> dict:
    return gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()


def act(gce, method: str, name: str, **kw) -> dict:
    """Run an instance method (start, stop, setLabels ...) and wait for its operation."""
    target = {"resource" if method == "setDeletionProtection" else "instance": name}
    op = getattr(gce.instances(), method)(project=PROJECT, zone=ZONE, **target, **kw).execute()
    assert op["kind"] == "compute#operation"
    assert op["operationType"] == method
    done = wait_op(gce, op)
    assert done["status"] == "DONE"
    assert "error" not in done, done
    return done


def delete(gce, name: str) -> dict:
    return act(gce, "delete", name)


def fails(request, status: int, reason: str, message: str | None = None) -> dict:
    """Execute ``request``, which must fail with Google's envelope: status, reason (and message)."""
    with pytest.raises(HttpError) as info:
        request.execute()
    assert info.value.resp.status == status, info.value.content
    err = error_of(info.value)
    assert err["code"] == status
    assert err["errors"][0]["reason"] == reason, err
    assert err["errors"][0]["domain"] == "global"
    assert err["errors"][0]["message"] == err["message"]
    if message is not None:
        assert err["message"] == message
    return err


def missing(gce, name: str) -> None:
    fails(gce.instances().get(project=PROJECT, zone=ZONE, instance=name), 404, "notFound",
          f"The resource '{zone_path('instances', name)}' was not found")


def disk_missing(gce, name: str) -> None:
    fails(gce.disks().get(project=PROJECT, zone=ZONE, disk=name), 404, "notFound",
          f"The resource '{zone_path('disks', name)}' was not found")


def names(gce) -> set[str]:
    out, token = set(), None
    while True:
        page = gce.instances().list(project=PROJECT, zone=ZONE, pageToken=token).execute()
        out |= {i["name"] for i in page.get("items", [])}
        token = page.get("nextPageToken")
        if not token:
            return out


def disk_names(gce) -> set[str]:
    out, token = set(), None
    while True:
        page = gce.disks().list(project=PROJECT, zone=ZONE, pageToken=token).execute()
        out |= {i["name"] for i in page.get("items", [])}
        token = page.get("nextPageToken")
        if not token:
            return out


def stamp(value: str) -> datetime:
    assert RFC3339.match(value), value
    return datetime.fromisoformat(value)


def url(server, path: str) -> str:
    return server.api + path


@pytest.fixture
def nothing_created(gce):
    """Asserts after the test that no instance and no disk appeared in the zone."""
    before, disks_before = names(gce), disk_names(gce)
    yield
    assert names(gce) == before
    assert disk_names(gce) == disks_before


def refused(gce, payload: dict, status: int, reason: str, message: str | None = None, zone: str = ZONE,
            new_name: bool = True) -> dict:
    """An insert refused synchronously: the error, and no operation for the (new) name."""
    err = fails(gce.instances().insert(project=PROJECT, zone=zone, body=payload), status, reason, message)
    if new_name and isinstance(payload.get("name"), str):
        ops = gce.zoneOperations().list(project=PROJECT, zone=ZONE,
                                        filter=f"targetLink eq .*/instances/{re.escape(payload['name'])}").execute()
        assert not ops.get("items"), ops
    return err


@pytest.fixture(scope="module")
def vm(server, gce):
    """One running instance (with an external address) for tests that only read or set fields."""
    name = unique("shared")
    create(gce, name, nat=True)
    yield name
    with contextlib.suppress(HttpError):
        gce.instances().delete(project=PROJECT, zone=ZONE, instance=name).execute()


# -- insert ----------------------------------------------------------------------------------------


def test_insert_operation_then_running_instance(server, gce):
    name = unique("vm")
    op = insert(gce, name, nat=True, auto_delete=True)
    assert op["kind"] == "compute#operation"
    assert op["operationType"] == "insert"
    assert op["status"] in ("PENDING", "RUNNING")
    assert op["progress"] == 0
    assert "endTime" not in op and "error" not in op
    assert op["targetLink"] == url(server, zone_path("instances", name))
    assert op["zone"] == url(server, zone_path())
    assert op["selfLink"] == url(server, zone_path("operations", op["name"]))
    assert re.fullmatch(r"operation-\d{13}-[0-9a-f]{13}-[0-9a-f]{8}-[0-9a-f]{8}", op["name"])
    assert isinstance(op["id"], str) and op["id"].isdigit()
    assert isinstance(op["targetId"], str) and op["targetId"].isdigit()
    assert op["user"] == server.key()["client_email"]
    stamp(op["insertTime"])
    stamp(op["startTime"])
    assert "clientOperationId" not in op

    done = wait_op(gce, op)
    assert done["status"] == "DONE"
    assert done["progress"] == 100
    assert done["name"] == op["name"] and done["id"] == op["id"]
    assert "error" not in done and "httpErrorStatusCode" not in done
    assert stamp(done["endTime"]) >= stamp(done["startTime"])
    got = gce.zoneOperations().get(project=PROJECT, zone=ZONE, operation=op["name"]).execute()
    assert got["status"] == "DONE" and got["targetId"] == op["targetId"]

    inst = get(gce, name)
    assert inst["kind"] == "compute#instance"
    assert inst["name"] == name
    assert inst["id"] == op["targetId"]
    assert inst["status"] == "RUNNING"
    assert inst["selfLink"] == url(server, zone_path("instances", name))
    assert inst["zone"] == url(server, zone_path())
    assert inst["machineType"] == url(server, zone_path("machineTypes", "e2-micro"))
    assert inst["hostname"] == f"{name}.{ZONE}.c.{PROJECT}.internal"
    assert inst["cpuPlatform"] in CPU_PLATFORMS
    assert stamp(inst["lastStartTimestamp"]) >= stamp(inst["creationTimestamp"])
    assert inst["startRestricted"] is False
    assert inst["deletionProtection"] is False
    assert inst["canIpForward"] is False
    assert inst["labels"] == {} and inst["labelFingerprint"]
    assert inst["metadata"]["kind"] == "compute#metadata" and inst["metadata"]["fingerprint"]
    assert "items" not in inst["metadata"]
    assert inst["tags"]["fingerprint"] and "items" not in inst["tags"]
    assert inst["fingerprint"]
    assert inst["scheduling"]["automaticRestart"] is True
    assert inst["scheduling"]["onHostMaintenance"] == "MIGRATE"
    assert inst["scheduling"]["preemptible"] is False

    [nic] = inst["networkInterfaces"]
    assert nic["kind"] == "compute#networkInterface"
    assert nic["name"] == "nic0"
    assert nic["network"] == url(server, f"projects/{PROJECT}/global/networks/default")
    assert nic["subnetwork"] == url(server, f"projects/{PROJECT}/regions/{REGION}/subnetworks/default")
    ip = ipaddress.ip_address(nic["networkIP"])
    assert ip in SUBNET and ip not in (SUBNET.network_address, SUBNET.network_address + 1, SUBNET.broadcast_address)
    assert nic["stackType"] == "IPV4_ONLY"
    assert nic["fingerprint"]
    assert not {k for k in nic if "mac" in k.lower()}, nic
    [ac] = nic["accessConfigs"]
    assert ac == {"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": "External NAT",
                  "natIP": ac["natIP"], "networkTier": "PREMIUM"}
    nat = ipaddress.ip_address(ac["natIP"])
    assert not nat.is_private or nat in ipaddress.ip_network("198.18.0.0/15")
    assert nat not in SUBNET

    [boot] = inst["disks"]
    assert boot["kind"] == "compute#attachedDisk"
    assert boot["source"] == url(server, zone_path("disks", name))
    assert boot["boot"] is True and boot["autoDelete"] is True
    assert boot["index"] == 0
    assert boot["type"] == "PERSISTENT" and boot["mode"] == "READ_WRITE"
    assert boot["deviceName"] == name
    assert boot["diskSizeGb"] == "10"
    assert "initializeParams" not in boot

    disk = get_disk(gce, name)
    assert disk["status"] == "READY"
    assert disk["users"] == [inst["selfLink"]]
    assert disk["sizeGb"] == "10"
    assert disk["sourceImage"] == url(server, f"projects/debian-cloud/global/images/{NEWEST_DEBIAN_12}")
    assert disk["zone"] == url(server, zone_path())
    stamp(disk["lastAttachTimestamp"])
    delete(gce, name)


def test_insert_without_access_config_has_no_external_address(server, gce, vm):
    inst = get(gce, vm)
    other = create(gce, unique("noext"))
    try:
        assert "accessConfigs" not in other["networkInterfaces"][0]
        a = ipaddress.ip_address(inst["networkInterfaces"][0]["networkIP"])
        b = ipaddress.ip_address(other["networkInterfaces"][0]["networkIP"])
        assert a != b and a in SUBNET and b in SUBNET
    finally:
        delete(gce, other["name"])


@pytest.mark.parametrize("form", ["family", "family-view-url", "image-name", "image-url"])
def test_insert_image_reference_forms(server, gce, form):
    name = unique(f"img-{form}")
    image, expected = {
        "family": (FAMILY, NEWEST_DEBIAN_12),
        "family-view-url": (url(server, "projects/debian-cloud/zones/-/imageFamilyViews/debian-12"), NEWEST_DEBIAN_12),
        "image-name": (f"projects/debian-cloud/global/images/{OLDER_DEBIAN_12}", OLDER_DEBIAN_12),
        "image-url": (url(server, f"projects/debian-cloud/global/images/{OLDER_DEBIAN_12}"), OLDER_DEBIAN_12),
    }[form]
    inst = create(gce, name, image=image)
    assert inst["status"] == "RUNNING"
    disk = get_disk(gce, name)
    assert disk["sourceImage"] == url(server, f"projects/debian-cloud/global/images/{expected}")
    assert disk["status"] == "READY"
    delete(gce, name)
    missing(gce, name)
    disk_missing(gce, name)


@pytest.mark.parametrize("form", ["partial", "project", "full-url"])
def test_insert_machine_type_reference_forms(server, gce, form):
    name = unique(f"mt-{form}")
    value = {
        "partial": f"zones/{ZONE}/machineTypes/e2-small",
        "project": f"projects/{PROJECT}/zones/{ZONE}/machineTypes/e2-small",
        "full-url": url(server, zone_path("machineTypes", "e2-small")),
    }[form]
    inst = create(gce, name, machine_type=value)
    assert inst["machineType"] == url(server, zone_path("machineTypes", "e2-small"))
    delete(gce, name)


def test_insert_custom_machine_type(server, gce):
    name = unique("custom")
    inst = create(gce, name, machine_type="custom-4-8192")
    assert inst["machineType"] == url(server, zone_path("machineTypes", "custom-4-8192"))
    assert inst["status"] == "RUNNING"
    delete(gce, name)


def gcloud_insert_body(server, name: str) -> bytes:
    text = GCLOUD_TRACE.read_text()
    marker = "--- request body (1065 bytes) ---\n"
    raw = text.split(marker, 1)[1].split("\n", 1)[0]
    assert json.loads(raw)["name"] == "vm1"
    raw = raw.replace("http://127.0.0.1:8787", server.base).replace('"name": "vm1"', f'"name": "{name}"')
    return raw.encode()


def bearer(server) -> str:
    from google.auth.transport.requests import Request

    creds = server.credentials()
    creds.refresh(Request())
    return creds.token


def test_insert_gcloud_body_verbatim(server, gce):
    name = unique("gcloud")
    headers = {"authorization": f"Bearer {bearer(server)}", "content-type": "application/json",
               "accept": "application/json",
               "user-agent": "google-cloud-sdk gcloud/578.0.0 command/gcloud.compute.instances.create"}
    resp = requests.post(url(server, zone_path("instances")), params={"alt": "json"},
                         data=gcloud_insert_body(server, name), headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    op = resp.json()
    assert op["operationType"] == "insert" and op["status"] in ("PENDING", "RUNNING")
    assert op["targetLink"] == url(server, zone_path("instances", name))
    # gcloud polls with POST .../operations/OP/wait
    done = requests.post(url(server, zone_path("operations", op["name"]) + "/wait"), params={"alt": "json"},
                         headers=headers, timeout=60).json()
    done = wait_op(gce, done)
    assert done["status"] == "DONE" and "error" not in done, done

    inst = get(gce, name)
    project = gce.projects().get(project=PROJECT).execute()
    assert inst["status"] == "RUNNING"
    assert inst["machineType"] == url(server, zone_path("machineTypes", "e2-small"))
    [nic] = inst["networkInterfaces"]
    assert nic["network"] == url(server, f"projects/{PROJECT}/global/networks/default")
    assert ipaddress.ip_address(nic["networkIP"]) in SUBNET
    [ac] = nic["accessConfigs"]
    assert ac["name"] == "external-nat" and ac["type"] == "ONE_TO_ONE_NAT" and ac["natIP"]
    [boot] = inst["disks"]
    assert boot["autoDelete"] is True and boot["boot"] is True and boot["mode"] == "READ_WRITE"
    [sa] = inst["serviceAccounts"]
    assert sa["email"] == project["defaultServiceAccount"]
    assert len(sa["scopes"]) == 7 and "https://www.googleapis.com/auth/pubsub" in sa["scopes"]
    assert inst["scheduling"]["automaticRestart"] is True
    assert get_disk(gce, name)["sourceImage"] == url(
        server, f"projects/debian-cloud/global/images/{NEWEST_DEBIAN_12}")
    delete(gce, name)
    missing(gce, name)
    disk_missing(gce, name)


def test_insert_boot_disk_bigger_than_image_warns(server, gce):
    name = unique("bigdisk")
    payload = body(name)
    payload["disks"][0]["initializeParams"].update(diskSizeGb="30", diskType=f"zones/{ZONE}/diskTypes/pd-ssd")
    payload["disks"].append({"autoDelete": True, "initializeParams": {"diskSizeGb": "15"}})
    op = wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=payload).execute())
    assert "error" not in op
    [warning] = op["warnings"]
    assert warning["code"] == "DISK_SIZE_LARGER_THAN_IMAGE_SIZE"
    assert warning["message"].startswith("Disk size: '30 GB' is larger than image size: '10 GB'.")
    inst = get(gce, name)
    assert [(d["deviceName"], d["diskSizeGb"], d["boot"], d["index"]) for d in inst["disks"]] == [
        (name, "30", True, 0), ("persistent-disk-1", "15", False, 1)]
    boot, blank = get_disk(gce, name), get_disk(gce, f"{name}-1")
    assert boot["type"] == url(server, zone_path("diskTypes", "pd-ssd")) and boot["sizeGb"] == "30"
    assert blank["sizeGb"] == "15" and "sourceImage" not in blank and blank["status"] == "READY"
    assert blank["users"] == [inst["selfLink"]]
    # a boot disk of the image's size: no warning
    other = unique("smalldisk")
    op = wait_op(gce, insert(gce, other))
    assert "warnings" not in op
    delete(gce, name)
    delete(gce, other)
    disk_missing(gce, f"{name}-1")


def test_insert_with_chosen_addresses_and_hostname(server, gce):
    name, clash = unique("addr"), unique("clash")
    ip, nat = "10.128.15.200", "198.18.250.17"
    inst = create(gce, name, hostname=f"{name}.example.internal", networkInterfaces=[
        {"networkIP": ip, "accessConfigs": [{"natIP": nat, "networkTier": "STANDARD"}]}])
    nic = inst["networkInterfaces"][0]
    assert nic["networkIP"] == ip
    assert nic["accessConfigs"][0]["natIP"] == nat and nic["accessConfigs"][0]["networkTier"] == "STANDARD"
    assert inst["hostname"] == f"{name}.example.internal"
    before = names(gce)
    refused(gce, body(clash, networkInterfaces=[{"networkIP": ip}]), 400, "resourceInUseByAnotherResource",
            f"The IP address '{ip}' of subnetwork 'projects/{PROJECT}/regions/{REGION}/subnetworks/default' is "
            f"already being used by '{zone_path('instances', name)}'")
    refused(gce, body(clash, networkInterfaces=[{"accessConfigs": [{"natIP": nat}]}]), 400,
            "resourceInUseByAnotherResource",
            f"The IP address '{nat}' of region '{REGION}' is already being used by '{zone_path('instances', name)}'")
    assert names(gce) == before
    disk_missing(gce, clash)
    delete(gce, name)
    # released with the instance
    again = create(gce, clash, networkInterfaces=[{"networkIP": ip, "accessConfigs": [{"natIP": nat}]}])
    assert again["networkInterfaces"][0]["networkIP"] == ip
    delete(gce, clash)


@pytest.mark.parametrize("nics,field,why", [
    ([{"networkIP": "not-an-ip"}], "resource.networkInterfaces[0].networkIP", "Must be an IPv4 address."),
    ([{"networkIP": "10.200.0.5"}], "resource.networkInterfaces[0].networkIP",
     "The address is not in the subnetwork's range 10.128.0.0/20."),
    ([{"networkIP": "10.128.0.1"}], "resource.networkInterfaces[0].networkIP",
     "The address is reserved in the subnetwork's range 10.128.0.0/20."),
    ([{"networkIP": "10.128.15.255"}], "resource.networkInterfaces[0].networkIP",
     "The address is reserved in the subnetwork's range 10.128.0.0/20."),
    ([{"accessConfigs": [{"natIP": "garbage"}]}], "resource.networkInterfaces[0].accessConfigs[0].natIP",
     "Must be an external IPv4 address."),
    ([{"accessConfigs": [{"natIP": "10.1.2.3"}]}], "resource.networkInterfaces[0].accessConfigs[0].natIP",
     "Must be an external IPv4 address."),
    ([{"accessConfigs": [{}, {}]}], "resource.networkInterfaces[0].accessConfigs",
     "At most one access config currently supported."),
    ([{}, {"network": "global/networks/default"}], "resource.networkInterfaces[1].network",
     "Networks must be distinct for NICs attached to a VM."),
])
def test_insert_bad_network_interfaces(server, gce, nothing_created, nics, field, why):
    name = unique("badnic")
    err = refused(gce, body(name, networkInterfaces=nics), 400, "invalid")
    assert err["message"].startswith(f"Invalid value for field '{field}': ")
    assert err["message"].endswith(why)
    missing(gce, name)


def test_insert_unknown_network(server, gce, nothing_created):
    name = unique("nonet")
    refused(gce, body(name, networkInterfaces=[{"network": "global/networks/nope"}]), 404, "notFound",
            f"The resource 'projects/{PROJECT}/global/networks/nope' was not found")
    refused(gce, body(name, networkInterfaces=[{"subnetwork": "regions/europe-west1/subnetworks/default"}]), 400,
            "invalid")


@pytest.mark.parametrize("hostname", ["Not A Host!", "single-label", "UPPER.example.com", "a..b", "x" * 250 + ".com"])
def test_insert_bad_hostname(server, gce, nothing_created, hostname):
    err = refused(gce, body(unique("host"), hostname=hostname), 400, "invalid")
    assert err["message"].startswith(f"Invalid value for field 'resource.hostname': '{hostname}'.")


def test_insert_from_missing_template_or_machine_image_is_refused(server, gce, nothing_created):
    """Templates and machine images are supported (tests/api/test_instance_templates.py,
    tests/api/test_machine_images.py): a missing one is a 404."""
    fails(gce.instances().insert(project=PROJECT, zone=ZONE, body=body(unique("tpl")),
                                 sourceInstanceTemplate="global/instanceTemplates/t"), 404, "notFound")
    fails(gce.instances().insert(project=PROJECT, zone=ZONE, body=body(unique("tpl")),
                                 sourceMachineImage="global/machineImages/m"), 404, "notFound",
          f"The resource 'projects/{PROJECT}/global/machineImages/m' was not found")


# -- reading ---------------------------------------------------------------------------------------


def test_get_by_name_and_by_numeric_id(server, gce, vm):
    inst = get(gce, vm)
    by_id = get(gce, inst["id"])
    assert by_id == inst
    assert isinstance(inst["id"], str) and inst["id"].isdigit() and int(inst["id"]) > 0
    stamp(inst["creationTimestamp"])


def test_get_missing(server, gce):
    name = unique("ghost")
    missing(gce, name)
    fails(gce.instances().get(project=PROJECT, zone="nope", instance=name), 404, "notFound",
          f"The resource 'projects/{PROJECT}/zones/nope' was not found")


def test_list_and_aggregated_list(server, gce, vm):
    page = gce.instances().list(project=PROJECT, zone=ZONE).execute()
    assert page["kind"] == "compute#instanceList"
    assert page["selfLink"] == url(server, zone_path("instances"))
    assert page["id"] == zone_path("instances")
    listed = {i["name"]: i for i in page["items"]}
    assert listed[vm] == get(gce, vm)
    assert list(listed) == sorted(listed)

    only = gce.instances().list(project=PROJECT, zone=ZONE, filter=f"name eq {vm}").execute()
    assert [i["name"] for i in only["items"]] == [vm]

    other_zone = gce.instances().list(project=PROJECT, zone="us-central1-b").execute()
    assert vm not in {i["name"] for i in other_zone.get("items", [])}

    agg = gce.instances().aggregatedList(project=PROJECT).execute()
    assert agg["kind"] == "compute#instanceAggregatedList"
    assert agg["selfLink"] == url(server, f"projects/{PROJECT}/aggregated/instances")
    assert f"zones/{ZONE}" in agg["items"]
    assert vm in {i["name"] for i in agg["items"][f"zones/{ZONE}"]["instances"]}
    assert set(agg["items"]) >= {"zones/us-central1-a", "zones/us-central1-b", "zones/us-central1-c",
                                 "zones/europe-west1-b"}
    empty = agg["items"]["zones/europe-west1-b"]
    if "instances" not in empty:
        assert empty["warning"]["code"] == "NO_RESULTS_ON_PAGE"
        assert empty["warning"]["data"] == [{"key": "scope", "value": "zones/europe-west1-b"}]


# -- lifecycle -------------------------------------------------------------------------------------


def test_stop_start_reset_suspend_resume_delete(server, gce):
    name = unique("life")
    first = create(gce, name)

    op = act(gce, "stop", name)
    assert op["targetLink"] == url(server, zone_path("instances", name))
    assert op["targetId"] == first["id"]
    stopped = get(gce, name)
    assert stopped["status"] == "TERMINATED"
    assert stamp(stopped["lastStopTimestamp"]) >= stamp(first["lastStartTimestamp"])
    # stopping a stopped instance is a no-op success
    act(gce, "stop", name)
    assert get(gce, name)["status"] == "TERMINATED"
    fails(gce.instances().reset(project=PROJECT, zone=ZONE, instance=name), 400, "resourceNotReady")

    act(gce, "start", name)
    started = get(gce, name)
    assert started["status"] == "RUNNING"
    assert stamp(started["lastStartTimestamp"]) >= stamp(stopped["lastStopTimestamp"])
    assert started["cpuPlatform"] in CPU_PLATFORMS
    assert started["networkInterfaces"][0]["networkIP"] == first["networkInterfaces"][0]["networkIP"]

    # start on RUNNING: a no-op success, born DONE
    again = gce.instances().start(project=PROJECT, zone=ZONE, instance=name).execute()
    assert again["operationType"] == "start" and again["status"] == "DONE" and "error" not in again
    assert get(gce, name)["lastStartTimestamp"] == started["lastStartTimestamp"]

    act(gce, "reset", name)
    assert get(gce, name)["status"] == "RUNNING"
    serial = gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance=name).execute()
    assert "reboot: Restarting system" in serial["contents"]

    act(gce, "suspend", name)
    suspended = get(gce, name)
    assert suspended["status"] == "SUSPENDED"
    stamp(suspended["lastSuspendedTimestamp"])
    fails(gce.instances().reset(project=PROJECT, zone=ZONE, instance=name), 400, "resourceNotReady")
    act(gce, "resume", name)
    assert get(gce, name)["status"] == "RUNNING"

    op = delete(gce, name)
    assert op["targetLink"] == url(server, zone_path("instances", name))
    missing(gce, name)
    disk_missing(gce, name)
    assert name not in names(gce)
    fails(gce.instances().start(project=PROJECT, zone=ZONE, instance=name), 404, "notFound",
          f"The resource '{zone_path('instances', name)}' was not found")
    fails(gce.instances().delete(project=PROJECT, zone=ZONE, instance=name), 404, "notFound")


def test_delete_keeps_disk_that_is_not_auto_delete(server, gce):
    name = unique("keep")
    create(gce, name, auto_delete=False)
    assert get(gce, name)["disks"][0]["autoDelete"] is False
    delete(gce, name)
    missing(gce, name)
    disk = get_disk(gce, name)
    assert disk["status"] == "READY"
    assert "users" not in disk or disk["users"] == []
    stamp(disk["lastDetachTimestamp"])
    op = gce.disks().delete(project=PROJECT, zone=ZONE, disk=name).execute()
    wait_op(gce, op)
    disk_missing(gce, name)


# -- metadata, labels, tags ------------------------------------------------------------------------


def reencode(fp: str, urlsafe: bool) -> str:
    raw = base64.urlsafe_b64decode(fp.replace("+", "-").replace("/", "_"))
    return (base64.urlsafe_b64encode if urlsafe else base64.standard_b64encode)(raw).decode()


def test_set_metadata(server, gce, vm):
    before = get(gce, vm)["metadata"]
    op = act(gce, "setMetadata", vm, body={"fingerprint": before["fingerprint"],
                                           "items": [{"key": "foo", "value": "bar"}]})
    assert op["targetLink"] == url(server, zone_path("instances", vm))
    after = get(gce, vm)["metadata"]
    assert after["items"] == [{"key": "foo", "value": "bar"}]
    assert after["fingerprint"] != before["fingerprint"]

    # gcloud base64-decodes the fingerprint and re-encodes it URL-safe; both alphabets are accepted
    act(gce, "setMetadata", vm, body={"fingerprint": reencode(after["fingerprint"], urlsafe=True),
                                      "items": [{"key": "foo", "value": "bar"},
                                                {"key": "startup-script", "value": "echo hi"}]})
    after2 = get(gce, vm)["metadata"]
    assert [i["key"] for i in after2["items"]] == ["foo", "startup-script"]
    act(gce, "setMetadata", vm, body={"fingerprint": reencode(after2["fingerprint"], urlsafe=False),
                                      "items": [{"key": "only", "value": "one"}]})
    current = get(gce, vm)["metadata"]
    assert current["items"] == [{"key": "only", "value": "one"}]

    # a stale fingerprint (and a missing one, now that there are items) is refused; nothing changes
    for fp in (after["fingerprint"], None):
        req: dict = {"items": [{"key": "x", "value": "y"}]}
        if fp is not None:
            req["fingerprint"] = fp
        fails(gce.instances().setMetadata(project=PROJECT, zone=ZONE, instance=vm, body=req), 412,
              "conditionNotMet", "Supplied fingerprint does not match current metadata fingerprint.")
    assert get(gce, vm)["metadata"] == current

    fails(gce.instances().setMetadata(project=PROJECT, zone=ZONE, instance=vm,
                                      body={"fingerprint": current["fingerprint"],
                                            "items": [{"key": "bad key!", "value": "v"}]}), 400, "invalid")
    fails(gce.instances().setMetadata(project=PROJECT, zone=ZONE, instance=vm,
                                      body={"fingerprint": current["fingerprint"],
                                            "items": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}),
          400, "invalid")
    assert get(gce, vm)["metadata"] == current


def test_set_labels(server, gce, vm):
    before = get(gce, vm)
    act(gce, "setLabels", vm, body={"labelFingerprint": before["labelFingerprint"],
                                    "labels": {"env": "test", "team": "core"}})
    after = get(gce, vm)
    assert after["labels"] == {"env": "test", "team": "core"}
    assert after["labelFingerprint"] != before["labelFingerprint"]
    fails(gce.instances().setLabels(project=PROJECT, zone=ZONE, instance=vm,
                                    body={"labelFingerprint": before["labelFingerprint"], "labels": {}}),
          412, "conditionNotMet", "Invalid fingerprint.")
    act(gce, "setLabels", vm, body={"labelFingerprint": reencode(after["labelFingerprint"], urlsafe=True),
                                    "labels": {"env": "prod"}})
    assert get(gce, vm)["labels"] == {"env": "prod"}
    labelled = gce.instances().list(project=PROJECT, zone=ZONE, filter="labels.env eq prod").execute()
    assert vm in {i["name"] for i in labelled.get("items", [])}
    fails(gce.instances().setLabels(project=PROJECT, zone=ZONE, instance=vm,
                                    body={"labelFingerprint": get(gce, vm)["labelFingerprint"],
                                          "labels": {"Bad": "x"}}), 400, "invalid")


def test_set_tags(server, gce, vm):
    before = get(gce, vm)["tags"]
    act(gce, "setTags", vm, body={"fingerprint": before["fingerprint"], "items": ["web", "http-server"]})
    after = get(gce, vm)["tags"]
    assert after["items"] == ["http-server", "web"]
    assert after["fingerprint"] != before["fingerprint"]
    fails(gce.instances().setTags(project=PROJECT, zone=ZONE, instance=vm,
                                  body={"fingerprint": before["fingerprint"], "items": ["x"]}),
          412, "conditionNotMet", "Invalid fingerprint.")
    fails(gce.instances().setTags(project=PROJECT, zone=ZONE, instance=vm,
                                  body={"fingerprint": after["fingerprint"], "items": ["Not_A_Tag"]}),
          400, "invalid")
    assert get(gce, vm)["tags"] == after


# -- machine type, disks, protection ----------------------------------------------------------------


def test_set_machine_type_only_when_terminated(server, gce):
    name = unique("resize")
    create(gce, name)
    new_type = f"zones/{ZONE}/machineTypes/e2-standard-2"
    err = fails(gce.instances().setMachineType(project=PROJECT, zone=ZONE, instance=name,
                                               body={"machineType": new_type}), 400, "invalid")
    assert name in err["message"] and "stop" in err["message"]
    assert get(gce, name)["machineType"].endswith("/machineTypes/e2-micro")

    act(gce, "stop", name)
    fails(gce.instances().setMachineType(project=PROJECT, zone=ZONE, instance=name,
                                         body={"machineType": f"zones/{ZONE}/machineTypes/e2-nope"}),
          404, "notFound", f"The resource '{zone_path('machineTypes', 'e2-nope')}' was not found")
    act(gce, "setMachineType", name, body={"machineType": new_type})
    inst = get(gce, name)
    assert inst["machineType"] == url(server, zone_path("machineTypes", "e2-standard-2"))
    assert inst["status"] == "TERMINATED"
    act(gce, "start", name)
    inst = get(gce, name)
    assert inst["status"] == "RUNNING"
    assert inst["machineType"] == url(server, zone_path("machineTypes", "e2-standard-2"))
    serial = gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance=name).execute()
    assert "Allowing 2 CPUs" in serial["contents"] and f"Memory: {8192 * 1024}K" in serial["contents"]
    delete(gce, name)


def make_disk(gce, name: str, size: str = "20") -> dict:
    op = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name, "sizeGb": size}).execute()
    done = wait_op(gce, op)
    assert "error" not in done, done
    return get_disk(gce, name)


def test_attach_and_detach_disk(server, gce):
    a, b, data = unique("att-a"), unique("att-b"), unique("data")
    create(gce, a)
    create(gce, b)
    make_disk(gce, data)
    disk_url = url(server, zone_path("disks", data))

    op = act(gce, "attachDisk", a, body={"source": f"zones/{ZONE}/disks/{data}"})
    assert op["targetLink"] == url(server, zone_path("instances", a))
    inst = get(gce, a)
    assert len(inst["disks"]) == 2
    extra = inst["disks"][1]
    assert extra["source"] == disk_url
    assert extra["deviceName"] == data and extra["index"] == 1
    assert extra["boot"] is False and extra["autoDelete"] is False
    assert extra["mode"] == "READ_WRITE" and extra["type"] == "PERSISTENT"
    assert extra["diskSizeGb"] == "20"
    assert get_disk(gce, data)["users"] == [inst["selfLink"]]
    serial = gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance=a).execute()
    assert f"Attached SCSI disk {data}" in serial["contents"]

    # attaching a disk in use elsewhere, or a boot disk of another VM
    for disk, user in ((data, a), (b, b)):
        fails(gce.instances().attachDisk(project=PROJECT, zone=ZONE, instance=b if disk == data else a,
                                         body={"source": url(server, zone_path("disks", disk))}),
              400, "resourceInUseByAnotherResource",
              f"The disk resource '{zone_path('disks', disk)}' is already being used by "
              f"'{zone_path('instances', user)}'")
    assert len(get(gce, b)["disks"]) == 1
    assert len(get(gce, a)["disks"]) == 2
    # the disk cannot be deleted while attached
    fails(gce.disks().delete(project=PROJECT, zone=ZONE, disk=data), 400, "resourceInUseByAnotherResource")
    fails(gce.instances().attachDisk(project=PROJECT, zone=ZONE, instance=a,
                                     body={"source": f"zones/{ZONE}/disks/{unique('nodisk')}"}), 404, "notFound")

    # the boot disk cannot be detached from a running instance
    fails(gce.instances().detachDisk(project=PROJECT, zone=ZONE, instance=a, deviceName=a), 400, "invalid")
    fails(gce.instances().detachDisk(project=PROJECT, zone=ZONE, instance=a, deviceName="nothing"), 400, "invalid")
    act(gce, "detachDisk", a, deviceName=data)
    assert [d["deviceName"] for d in get(gce, a)["disks"]] == [a]
    disk = get_disk(gce, data)
    assert "users" not in disk or disk["users"] == []

    # now free: it attaches to b, with a device name of our choosing
    act(gce, "attachDisk", b, body={"source": disk_url, "deviceName": "scratch", "autoDelete": True})
    got = get(gce, b)["disks"][1]
    assert got["deviceName"] == "scratch" and got["autoDelete"] is True
    assert get_disk(gce, data)["users"] == [url(server, zone_path("instances", b))]
    delete(gce, a)
    delete(gce, b)
    disk_missing(gce, a)
    disk_missing(gce, b)
    disk_missing(gce, data)  # attached with autoDelete: deleted with b


def test_delete_detaches_separate_disk(server, gce):
    name, data = unique("det"), unique("kept")
    create(gce, name)
    make_disk(gce, data)
    act(gce, "attachDisk", name, body={"source": f"projects/{PROJECT}/zones/{ZONE}/disks/{data}"})
    delete(gce, name)
    disk = get_disk(gce, data)
    assert "users" not in disk or disk["users"] == []
    wait_op(gce, gce.disks().delete(project=PROJECT, zone=ZONE, disk=data).execute())


def test_deletion_protection(server, gce):
    name = unique("prot")
    create(gce, name)
    op = act(gce, "setDeletionProtection", name, deletionProtection=True)
    assert op["operationType"] == "setDeletionProtection"
    assert get(gce, name)["deletionProtection"] is True
    err = fails(gce.instances().delete(project=PROJECT, zone=ZONE, instance=name), 400, "invalid")
    assert "protected against deletion" in err["message"]
    inst = get(gce, name)
    assert inst["status"] == "RUNNING"
    # the default of the parameter is true
    act(gce, "setDeletionProtection", name, deletionProtection=False)
    assert get(gce, name)["deletionProtection"] is False
    delete(gce, name)
    missing(gce, name)


def test_set_disk_auto_delete(server, gce):
    name = unique("autodel")
    create(gce, name, auto_delete=True)
    op = act(gce, "setDiskAutoDelete", name, autoDelete=False, deviceName=name)
    assert op["operationType"] == "setDiskAutoDelete"
    assert get(gce, name)["disks"][0]["autoDelete"] is False
    fails(gce.instances().setDiskAutoDelete(project=PROJECT, zone=ZONE, instance=name, autoDelete=True,
                                            deviceName="no-such-device"), 400, "invalid")
    delete(gce, name)
    disk = get_disk(gce, name)
    assert "users" not in disk or disk["users"] == []
    wait_op(gce, gce.disks().delete(project=PROJECT, zone=ZONE, disk=name).execute())


def test_fingerprint_changes_on_every_modification(server, gce, vm):
    before = get(gce, vm)
    act(gce, "setTags", vm, body={"fingerprint": before["tags"]["fingerprint"], "items": ["fp-check"]})
    after = get(gce, vm)
    assert after["fingerprint"] != before["fingerprint"]
    act(gce, "setTags", vm, body={"fingerprint": after["tags"]["fingerprint"], "items": before["tags"].get("items", [])})
    assert get(gce, vm)["fingerprint"] not in (after["fingerprint"], "")


def test_add_and_delete_access_config(server, gce):
    name = unique("nat")
    inst = create(gce, name)
    nic = inst["networkInterfaces"][0]
    assert "accessConfigs" not in nic
    op = act(gce, "addAccessConfig", name, networkInterface="nic0",
             body={"name": "my-nat", "type": "ONE_TO_ONE_NAT"})
    assert op["targetLink"] == url(server, zone_path("instances", name))
    added = get(gce, name)["networkInterfaces"][0]
    [ac] = added["accessConfigs"]
    assert ac["name"] == "my-nat" and ac["type"] == "ONE_TO_ONE_NAT" and ac["networkTier"] == "PREMIUM"
    assert ipaddress.ip_address(ac["natIP"]) not in SUBNET
    assert added["fingerprint"] != nic["fingerprint"]
    fails(gce.instances().addAccessConfig(project=PROJECT, zone=ZONE, instance=name, networkInterface="nic0",
                                          body={"name": "second"}), 400, "invalid")
    fails(gce.instances().addAccessConfig(project=PROJECT, zone=ZONE, instance=name, networkInterface="nic5",
                                          body={"name": "x"}), 400, "invalid")
    fails(gce.instances().deleteAccessConfig(project=PROJECT, zone=ZONE, instance=name, networkInterface="nic0",
                                             accessConfig="nope"), 400, "invalid")
    act(gce, "deleteAccessConfig", name, networkInterface="nic0", accessConfig="my-nat")
    assert "accessConfigs" not in get(gce, name)["networkInterfaces"][0]
    # its address was released: it can be given to the instance again, explicitly
    act(gce, "addAccessConfig", name, networkInterface="nic0", body={"natIP": ac["natIP"]})
    again = get(gce, name)["networkInterfaces"][0]["accessConfigs"][0]
    assert again["natIP"] == ac["natIP"] and again["name"] == "External NAT"
    delete(gce, name)


def test_set_scheduling(server, gce):
    name = unique("sched")
    create(gce, name)
    act(gce, "setScheduling", name, body={"automaticRestart": False, "onHostMaintenance": "TERMINATE"})
    sched = get(gce, name)["scheduling"]
    assert sched["automaticRestart"] is False and sched["onHostMaintenance"] == "TERMINATE"
    assert sched["preemptible"] is False
    err = fails(gce.instances().setScheduling(project=PROJECT, zone=ZONE, instance=name, body={"preemptible": True}),
                400, "invalid")
    assert "must be stopped" in err["message"]
    fails(gce.instances().setScheduling(project=PROJECT, zone=ZONE, instance=name,
                                        body={"onHostMaintenance": "SOMETIMES"}), 400, "invalid")
    act(gce, "stop", name)
    act(gce, "setScheduling", name, body={"preemptible": True})
    sched = get(gce, name)["scheduling"]
    assert sched["preemptible"] is True and sched["onHostMaintenance"] == "TERMINATE"
    assert sched["automaticRestart"] is False
    fails(gce.instances().setScheduling(project=PROJECT, zone=ZONE, instance=name,
                                        body={"onHostMaintenance": "MIGRATE"}), 400, "invalid")
    delete(gce, name)


def test_set_service_account(server, gce):
    name = unique("sa")
    create(gce, name)
    project = gce.projects().get(project=PROJECT).execute()
    fails(gce.instances().setServiceAccount(project=PROJECT, zone=ZONE, instance=name,
                                            body={"email": "default", "scopes": ["cloud-platform"]}), 400, "invalid")
    act(gce, "stop", name)
    act(gce, "setServiceAccount", name, body={"email": "default", "scopes": ["cloud-platform"]})
    assert get(gce, name)["serviceAccounts"] == [{"email": project["defaultServiceAccount"],
                                                  "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}]
    act(gce, "setServiceAccount", name, body={})
    assert get(gce, name).get("serviceAccounts", []) == []
    delete(gce, name)


def test_attach_read_only_to_several_instances(server, gce):
    a, b, c, data = unique("ro-a"), unique("ro-b"), unique("ro-c"), unique("ro-data")
    for n in (a, b, c):
        create(gce, n)
    make_disk(gce, data)
    source = f"zones/{ZONE}/disks/{data}"
    act(gce, "attachDisk", a, body={"source": source, "mode": "READ_ONLY", "autoDelete": True})
    act(gce, "attachDisk", b, body={"source": source, "mode": "READ_ONLY"})
    assert sorted(get_disk(gce, data)["users"]) == sorted(url(server, zone_path("instances", n)) for n in (a, b))
    assert get(gce, a)["disks"][1]["mode"] == "READ_ONLY"
    fails(gce.instances().attachDisk(project=PROJECT, zone=ZONE, instance=c, body={"source": source}),
          400, "resourceInUseByAnotherResource")
    # an autoDelete disk still attached to another instance outlives the instance deleted
    delete(gce, a)
    assert get_disk(gce, data)["users"] == [url(server, zone_path("instances", b))]
    act(gce, "detachDisk", b, deviceName=data)
    assert "users" not in get_disk(gce, data)
    act(gce, "attachDisk", c, body={"source": source})
    fails(gce.instances().attachDisk(project=PROJECT, zone=ZONE, instance=b, body={"source": source,
                                                                                "mode": "READ_ONLY"}),
          400, "resourceInUseByAnotherResource")
    for n in (b, c):
        delete(gce, n)
    assert "users" not in get_disk(gce, data)
    wait_op(gce, gce.disks().delete(project=PROJECT, zone=ZONE, disk=data).execute())


# -- serial port -----------------------------------------------------------------------------------


def test_serial_port_output(server, gce, vm):
    out = gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance=vm, port=1).execute()
    assert out["kind"] == "compute#serialPortOutput"
    assert out["selfLink"] == url(server, zone_path("instances", vm)) + "/serialPort"
    assert isinstance(out["start"], str) and isinstance(out["next"], str)
    assert out["start"] == "0"
    contents = out["contents"]
    assert "SeaBIOS" in contents and f"{vm} login:" in contents
    assert int(out["next"]) == len(contents.encode())

    # start=next: nothing new
    rest = gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance=vm, start=out["next"]).execute()
    assert rest["contents"] == ""
    assert rest["start"] == out["next"] and rest["next"] == out["next"]

    # a negative start is the last |N| bytes
    tail = gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance=vm, start=-10).execute()
    assert tail["contents"] == contents.encode()[-10:].decode()
    assert int(tail["start"]) == int(out["next"]) - 10 and tail["next"] == out["next"]

    # a start past the end is clamped to the end; a middle start returns the rest
    mid = gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance=vm, start=5).execute()
    assert mid["contents"] == contents.encode()[5:].decode() and mid["start"] == "5"
    fails(gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance=vm, port=7), 400, "invalid")
    other = gce.instances().getSerialPortOutput(project=PROJECT, zone=ZONE, instance=vm, port=2).execute()
    assert other["contents"] == ""


def test_query_parameter_errors(server, gce, vm):
    headers = {"authorization": f"Bearer {bearer(server)}"}
    base = url(server, zone_path("instances", vm))
    for params, reason, field in ((({"start": "abc"}), "invalid", "start"), ({"port": "x"}, "invalid", "port")):
        resp = requests.get(base + "/serialPort", params=params, headers=headers, timeout=30)
        assert resp.status_code == 400
        err = resp.json()["error"]
        assert err["errors"][0]["reason"] == reason
        assert err["message"].startswith(f"Invalid value for field '{field}': ")
    for params, missing_param in (({"deviceName": vm}, "autoDelete"), ({"autoDelete": "true"}, "deviceName")):
        resp = requests.post(base + "/setDiskAutoDelete", params=params, headers=headers, timeout=30)
        assert resp.status_code == 400
        err = resp.json()["error"]
        assert err["errors"][0]["reason"] == "required"
        assert err["message"] == f"Required field '{missing_param}' not specified"
    resp = requests.post(base + "/setDiskAutoDelete", params={"deviceName": vm, "autoDelete": "maybe"},
                         headers=headers, timeout=30)
    assert resp.status_code == 400 and resp.json()["error"]["errors"][0]["reason"] == "invalid"
    assert get(gce, vm)["disks"][0]["autoDelete"] is True


# -- bad input: refused synchronously, nothing created -----------------------------------------------


@pytest.mark.parametrize("bad", ["Bad_Name", "1starts-with-digit", "ends-with-dash-", "x" * 64, "UPPER"])
def test_insert_bad_name(server, gce, nothing_created, bad):
    refused(gce, body(bad), 400, "invalid",
            f"Invalid value for field 'resource.name': '{bad}'. Must be a match of regex '{NAME_REGEX}'")


def test_insert_missing_name(server, gce, nothing_created):
    payload = body("x")
    del payload["name"]
    err = refused(gce, payload, 400, "required")  # as every other collection answers a missing name
    assert err["message"] == "Required field 'resource.name' not specified"


def test_insert_unknown_zone(server, gce, nothing_created):
    name = unique("nozone")
    refused(gce, body(name), 404, "notFound", f"The resource 'projects/{PROJECT}/zones/nope' was not found",
            zone="nope")
    missing(gce, name)


def test_insert_unknown_machine_type(server, gce, nothing_created):
    name = unique("nomt")
    refused(gce, body(name, machine_type="e2-nope"), 404, "notFound",
            f"The resource '{zone_path('machineTypes', 'e2-nope')}' was not found")
    missing(gce, name)
    disk_missing(gce, name)


def test_insert_machine_type_in_other_zone(server, gce, nothing_created):
    name = unique("otherzone")
    refused(gce, body(name, machine_type="zones/us-central1-b/machineTypes/e2-micro"), 400, "invalid")
    missing(gce, name)


def test_insert_unknown_image_family(server, gce, nothing_created):
    name = unique("noimg")
    refused(gce, body(name, image="projects/debian-cloud/global/images/family/nope"), 404, "notFound",
            "The resource 'projects/debian-cloud/global/images/family/nope' was not found")
    refused(gce, body(name, image=url(server, "projects/debian-cloud/zones/-/imageFamilyViews/nope")), 404,
            "notFound", "The resource 'projects/debian-cloud/global/images/family/nope' was not found")
    refused(gce, body(name, image="projects/debian-cloud/global/images/debian-12-nope"), 404, "notFound",
            "The resource 'projects/debian-cloud/global/images/debian-12-nope' was not found")
    missing(gce, name)
    disk_missing(gce, name)


def test_insert_missing_machine_type(server, gce, nothing_created):
    name = unique("nomt")
    payload = body(name)
    del payload["machineType"]
    refused(gce, payload, 400, "required", "Required field 'resource.machineType' not specified")
    missing(gce, name)


def test_insert_missing_disks(server, gce, nothing_created):
    name = unique("nodisks")
    payload = body(name)
    del payload["disks"]
    refused(gce, payload, 400, "required", "Required field 'resource.disks' not specified")
    payload["disks"] = []
    refused(gce, payload, 400, "required", "Required field 'resource.disks' not specified")
    payload["disks"] = [{"boot": True, "initializeParams": {}}]
    refused(gce, payload, 400, "required",
            "Required field 'resource.disks[0].initializeParams.sourceImage' not specified")
    missing(gce, name)


@pytest.mark.parametrize("disks,field,why", [
    ([{"boot": True, "mode": "READ_ONLY", "initializeParams": {"sourceImage": FAMILY}}], "resource.disks[0].mode",
     "The boot disk must be attached in READ_WRITE mode."),
    ([{"boot": True, "deviceName": "dev", "initializeParams": {"sourceImage": FAMILY}},
      {"deviceName": "dev", "initializeParams": {"diskSizeGb": "10"}}], "resource.disks[1].deviceName",
     "Device names must be unique."),
    ([{"boot": False, "initializeParams": {"sourceImage": FAMILY}}], "resource.disks",
     "Exactly one boot disk must be specified, as the first disk."),
    ([{"initializeParams": {"sourceImage": FAMILY}}, {"boot": True, "initializeParams": {"sourceImage": FAMILY}}],
     "resource.disks[1].boot", "The boot disk must be the first disk."),
    ([{"boot": True, "initializeParams": {"sourceImage": FAMILY, "diskSizeGb": "5"}}],
     "resource.disks[0].initializeParams.diskSizeGb", "Disk size must be between 10 GB and 65536 GB."),
])
def test_insert_bad_disks(server, gce, nothing_created, disks, field, why):
    name = unique("baddisk")
    err = refused(gce, {**body(name), "disks": disks}, 400, "invalid")
    assert err["message"].startswith(f"Invalid value for field '{field}': ") and err["message"].endswith(why), err
    missing(gce, name)


@pytest.mark.parametrize("field,value", [
    ("name", 42),
    ("disks", "a-disk"),
    ("canIpForward", "yes"),
    ("networkInterfaces", {"network": "default"}),
    ("labels", ["a"]),
    ("metadata", {"items": "nope"}),
])
def test_insert_wrong_json_types(server, gce, nothing_created, field, value):
    name = unique("types")
    payload = body(name)
    payload[field] = value
    err = refused(gce, payload, 400, "invalid")
    assert err["status"] == "INVALID_ARGUMENT"
    assert field in err["message"], err
    if field != "name":
        missing(gce, name)


def test_insert_malformed_json(server, gce, nothing_created):
    headers = {"authorization": f"Bearer {bearer(server)}", "content-type": "application/json"}
    resp = requests.post(url(server, zone_path("instances")), data=b'{"name": "x",', headers=headers, timeout=30)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["errors"][0]["reason"] == "invalid"
    resp = requests.post(url(server, zone_path("instances")), data=b'["x"]', headers=headers, timeout=30)
    assert resp.status_code == 400


def test_insert_duplicate_name(server, gce, vm):
    disks_before = disk_names(gce)
    refused(gce, body(vm), 409, "alreadyExists", f"The resource '{zone_path('instances', vm)}' already exists",
            new_name=False)
    assert disk_names(gce) == disks_before
    # a boot disk whose (default) name is already taken
    taken = unique("taken")
    make_disk(gce, taken)
    refused(gce, body(taken), 409, "alreadyExists", f"The resource '{zone_path('disks', taken)}' already exists")
    missing(gce, taken)
    assert get_disk(gce, taken).get("users") is None
    wait_op(gce, gce.disks().delete(project=PROJECT, zone=ZONE, disk=taken).execute())


def test_lifecycle_calls_on_missing_instance(server, gce):
    name = unique("gone")
    for method in ("start", "stop", "reset", "suspend", "resume", "delete"):
        fails(getattr(gce.instances(), method)(project=PROJECT, zone=ZONE, instance=name), 404, "notFound",
              f"The resource '{zone_path('instances', name)}' was not found")
    fails(gce.instances().setLabels(project=PROJECT, zone=ZONE, instance=name,
                                    body={"labels": {}, "labelFingerprint": "x"}), 404, "notFound")


# -- requestId -------------------------------------------------------------------------------------


def test_request_id_makes_insert_idempotent(server, gce):
    name = unique("rid")
    request_id = str(uuid.uuid4())
    first = gce.instances().insert(project=PROJECT, zone=ZONE, body=body(name), requestId=request_id).execute()
    assert first["clientOperationId"] == request_id
    second = gce.instances().insert(project=PROJECT, zone=ZONE, body=body(name), requestId=request_id).execute()
    assert second["name"] == first["name"] and second["id"] == first["id"]
    assert second["clientOperationId"] == request_id
    done = wait_op(gce, first)
    assert "error" not in done
    third = gce.instances().insert(project=PROJECT, zone=ZONE, body=body(name), requestId=request_id).execute()
    assert third["name"] == first["name"] and third["status"] == "DONE"
    assert [n for n in names(gce) if n == name] == [name]
    ops = gce.zoneOperations().list(project=PROJECT, zone=ZONE,
                                    filter=f"targetLink eq .*/instances/{name}").execute()["items"]
    assert [o["name"] for o in ops] == [first["name"]]
    # without the requestId the same body is a duplicate
    fails(gce.instances().insert(project=PROJECT, zone=ZONE, body=body(name)), 409, "alreadyExists")
    # a new requestId on another method is a new operation
    stop_id = str(uuid.uuid4())
    stop = gce.instances().stop(project=PROJECT, zone=ZONE, instance=name, requestId=stop_id).execute()
    assert stop["clientOperationId"] == stop_id and stop["name"] != first["name"]
    wait_op(gce, stop)
    delete(gce, name)


@pytest.mark.parametrize("bad", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "1234"])
def test_invalid_request_id(server, gce, nothing_created, bad):
    name = unique("badrid")
    err = fails(gce.instances().insert(project=PROJECT, zone=ZONE, body=body(name), requestId=bad), 400, "invalid")
    assert err["message"].startswith(f"Invalid value for field 'requestId': '{bad}'.")
    missing(gce, name)


# -- concurrency: several API requests at once ----------------------------------------------------


def concurrently(server, requests_: list[tuple[str, dict, dict]]) -> list[tuple[int, dict]]:
    """POST each (path under the zone, query, body) at the same time; (status, JSON) per request, in order."""
    headers = {"authorization": f"Bearer {bearer(server)}"}
    barrier = threading.Barrier(len(requests_))

    def post(item):
        path, params, payload = item
        barrier.wait()
        resp = requests.post(url(server, zone_path()) + "/" + path, params=params, json=payload, headers=headers,
                             timeout=60)
        return resp.status_code, resp.json()

    with ThreadPoolExecutor(len(requests_)) as pool:
        return list(pool.map(post, requests_))


def test_concurrent_inserts_get_distinct_addresses(server, gce):
    batch = [unique("par") for _ in range(6)]
    results = concurrently(server, [("instances", {}, body(n, nat=True)) for n in batch])
    assert [status for status, _ in results] == [200] * 6, results
    for _, op in results:
        assert "error" not in wait_op(gce, op)
    insts = [get(gce, n) for n in batch]
    assert all(i["status"] == "RUNNING" for i in insts)
    internal = {i["networkInterfaces"][0]["networkIP"] for i in insts}
    external = {i["networkInterfaces"][0]["accessConfigs"][0]["natIP"] for i in insts}
    assert len(internal) == 6 and len(external) == 6
    for n in batch:
        delete(gce, n)


def test_concurrent_inserts_of_one_name(server, gce):
    name = unique("same")
    results = concurrently(server, [("instances", {}, body(name)) for _ in range(4)])
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409, 409, 409], results
    for status, reply in results:
        if status == 409:
            assert reply["error"]["errors"][0]["reason"] == "alreadyExists"
            assert reply["error"]["message"] == f"The resource '{zone_path('instances', name)}' already exists"
        else:
            assert "error" not in wait_op(gce, reply)
    assert get(gce, name)["status"] == "RUNNING"
    delete(gce, name)


def test_concurrent_retries_of_one_request_id(server, gce):
    name, request_id = unique("retry"), str(uuid.uuid4())
    results = concurrently(server, [("instances", {"requestId": request_id}, body(name)) for _ in range(4)])
    assert [status for status, _ in results] == [200] * 4, results
    assert len({op["name"] for _, op in results}) == 1
    assert all(op["clientOperationId"] == request_id for _, op in results)
    assert "error" not in wait_op(gce, results[0][1])
    assert get(gce, name)["status"] == "RUNNING"
    delete(gce, name)


def test_concurrent_set_metadata_with_one_fingerprint(server, gce, vm):
    """Optimistic concurrency: of several changes made from the same fingerprint, one wins."""
    for round_ in range(3):
        fp = get(gce, vm)["metadata"]["fingerprint"]
        # every writer sets content of its own (the fingerprint is a hash of the content)
        results = concurrently(server, [(f"instances/{vm}/setMetadata", {},
                                         {"fingerprint": fp, "items": [{"key": "writer", "value": f"{round_}-{i}"}]})
                                        for i in range(4)])
        assert sorted(status for status, _ in results) == [200, 412, 412, 412], results
        winner = next(i for i, (status, _) in enumerate(results) if status == 200)
        assert get(gce, vm)["metadata"]["items"] == [{"key": "writer", "value": f"{round_}-{winner}"}]


def test_concurrent_attach_of_one_disk(server, gce):
    a, b, data = unique("catt-a"), unique("catt-b"), unique("catt-d")
    create(gce, a)
    create(gce, b)
    make_disk(gce, data)
    results = concurrently(server, [(f"instances/{n}/attachDisk", {}, {"source": f"zones/{ZONE}/disks/{data}"})
                                    for n in (a, b)])
    assert sorted(status for status, _ in results) == [200, 400], results
    winner = (a, b)[[status for status, _ in results].index(200)]
    wait_op(gce, next(op for status, op in results if status == 200))
    assert get_disk(gce, data)["users"] == [url(server, zone_path("instances", winner))]
    assert [len(get(gce, n)["disks"]) for n in (a, b)] == [2 if n == winner else 1 for n in (a, b)]
    delete(gce, a)
    delete(gce, b)
    wait_op(gce, gce.disks().delete(project=PROJECT, zone=ZONE, disk=data).execute())


def test_lifecycle_calls_while_a_job_is_in_flight(server, gce):
    """Calls made before the previous operation finished queue behind it instead of failing."""
    name = unique("queue")
    insert_op = insert(gce, name)
    stop = gce.instances().stop(project=PROJECT, zone=ZONE, instance=name).execute()
    stop_again = gce.instances().stop(project=PROJECT, zone=ZONE, instance=name).execute()
    for op in (insert_op, stop, stop_again):
        done = wait_op(gce, op)
        assert "error" not in done, done
    inst = get(gce, name)
    assert inst["status"] == "TERMINATED" and "lastStopTimestamp" in inst
    start = gce.instances().start(project=PROJECT, zone=ZONE, instance=name).execute()
    start_again = gce.instances().start(project=PROJECT, zone=ZONE, instance=name).execute()
    # a second start either waits for the first, or (if that was quick) finds the VM running
    assert start_again["status"] != "DONE" or get(gce, name)["status"] == "RUNNING"
    for op in (start, start_again):
        assert "error" not in wait_op(gce, op)
    assert get(gce, name)["status"] == "RUNNING"
    delete(gce, name)


# -- google-cloud-compute --------------------------------------------------------------------------


def compute_client(server, client_class):
    """A google-cloud-compute client on the server, with the service-account key (the library then
    authenticates with self-signed JWTs)."""
    from google.cloud import compute_v1

    client = server.compute(client_class)
    # The library polls zonal operations with a ZoneOperationsClient it builds itself, on the default
    # endpoint (compute.googleapis.com) whatever client_options said: hand it one on ours.
    client._transport._extended_operations_services["zone_operations"] = server.compute(
        compute_v1.ZoneOperationsClient)
    return client


def test_compute_v1_insert_result_and_get(server):
    from google.cloud import compute_v1

    client = compute_client(server, compute_v1.InstancesClient)
    name = unique("gcc")
    instance = compute_v1.Instance(
        name=name, machine_type=f"zones/{ZONE}/machineTypes/e2-small",
        disks=[compute_v1.AttachedDisk(boot=True, auto_delete=True, initialize_params=compute_v1.AttachedDiskInitializeParams(
            source_image=FAMILY, disk_size_gb=20))],
        network_interfaces=[compute_v1.NetworkInterface(network="global/networks/default", access_configs=[
            compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")])],
        labels={"made-by": "compute-v1"},
    )
    op = client.insert(project=PROJECT, zone=ZONE, instance_resource=instance)
    op.result(timeout=60)
    assert op.done() and not op.error_code
    got = client.get(project=PROJECT, zone=ZONE, instance=name)
    assert got.name == name
    assert got.status == "RUNNING"
    assert got.labels == {"made-by": "compute-v1"}
    assert got.self_link == url(server, zone_path("instances", name))
    assert got.disks[0].disk_size_gb == 20 and got.disks[0].boot
    assert ipaddress.ip_address(got.network_interfaces[0].network_i_p) in SUBNET
    assert got.network_interfaces[0].access_configs[0].nat_i_p
    names_listed = [i.name for i in client.list(project=PROJECT, zone=ZONE)]
    assert name in names_listed

    client.stop(project=PROJECT, zone=ZONE, instance=name).result(timeout=60)
    assert client.get(project=PROJECT, zone=ZONE, instance=name).status == "TERMINATED"
    client.delete(project=PROJECT, zone=ZONE, instance=name).result(timeout=60)
    from google.api_core import exceptions

    with pytest.raises(exceptions.NotFound):
        client.get(project=PROJECT, zone=ZONE, instance=name)


def test_compute_v1_failed_insert_raises_from_result(server, gce):
    from google.api_core import exceptions
    from google.cloud import compute_v1

    client = compute_client(server, compute_v1.InstancesClient)
    name = unique("toobig")
    # 144 GB of memory (n2 allows 8 GB per vCPU): within quota, more than any simulated host has (128 GB), so placement fails
    instance = compute_v1.Instance(
        name=name, machine_type=f"zones/{ZONE}/machineTypes/n2-custom-18-147456",
        disks=[compute_v1.AttachedDisk(boot=True, auto_delete=True, initialize_params=compute_v1.AttachedDiskInitializeParams(
            source_image=FAMILY))],
        network_interfaces=[compute_v1.NetworkInterface(network="global/networks/default")],
    )
    op = client.insert(project=PROJECT, zone=ZONE, instance_resource=instance)
    with pytest.raises(exceptions.ServiceUnavailable) as info:
        op.result(timeout=60)
    assert "does not have enough resources" in str(info.value)
    assert op.error_code == 503
    # the failed insert left nothing behind
    missing(gce, name)
    disk_missing(gce, name)
    raw = gce.zoneOperations().get(project=PROJECT, zone=ZONE, operation=op.name).execute()
    assert raw["status"] == "DONE"
    assert raw["httpErrorStatusCode"] == 503 and raw["httpErrorMessage"] == "SERVICE UNAVAILABLE"
    assert raw["error"]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert raw["error"]["errors"][0]["message"] == (
        f"The zone 'projects/{PROJECT}/zones/{ZONE}' does not have enough resources available to fulfill "
        "the request.  Try a different zone, or try again later.")

