"""Persistent disks end to end: insert (blank, image, snapshot), get/list/aggregatedList, resize,
setLabels, delete (also while attached), createSnapshot, DISKS_TOTAL_GB quota and bad input."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from googleapiclient.errors import HttpError

from tests.conftest import PROJECT, ZONE, error_of, unique, wait_op
from tests.helpers.compute import compute_client, disk_link, expect_error, fresh_project, link, make_disk

REGEX = "(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)"
DEBIAN_12 = "debian-12-bookworm-v20241009"


def fresh_token(creds):
    """Credentials with their access token fetched now, so parallel requests do not all fetch one."""
    import google.auth.transport.requests

    creds.refresh(google.auth.transport.requests.Request())
    return creds


def check_disk(server, disk: dict, name: str, size: str, dtype: str, zone: str = ZONE, project: str = PROJECT):
    assert disk["kind"] == "compute#disk"
    assert disk["name"] == name
    assert re.fullmatch(r"[1-9][0-9]*", disk["id"])
    assert disk["sizeGb"] == size
    assert disk["status"] == "READY"
    assert disk["zone"] == link(server, f"projects/{project}/zones/{zone}")
    assert disk["type"] == link(server, f"projects/{project}/zones/{zone}/diskTypes/{dtype}")
    assert disk["selfLink"] == disk_link(server, name, zone, project)
    assert disk["physicalBlockSizeBytes"] == "4096"
    assert disk["labelFingerprint"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[-+]\d\d:\d\d", disk["creationTimestamp"])


# -- insert -----------------------------------------------------------------------------------------


def test_insert_blank_defaults(server, gce):
    name = unique("blank")
    op = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name}).execute()
    assert op["kind"] == "compute#operation"
    assert op["operationType"] == "insert"
    assert op["status"] in ("PENDING", "RUNNING", "DONE")
    assert op["targetLink"] == disk_link(server, name)
    assert op["zone"] == link(server, f"projects/{PROJECT}/zones/{ZONE}")
    assert op["selfLink"] == link(server, f"projects/{PROJECT}/zones/{ZONE}/operations/{op['name']}")
    assert re.fullmatch(r"operation-\d{13}-[0-9a-f]{13}-[0-9a-f]{8}-[0-9a-f]{8}", op["name"])
    done = wait_op(gce, op)
    assert done["status"] == "DONE" and done["progress"] == 100 and "endTime" in done and "error" not in done
    disk = gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()
    # GCE: a blank pd-standard disk is 500 GB unless sizeGb says otherwise.
    check_disk(server, disk, name, "500", "pd-standard")
    assert disk["id"] == op["targetId"]
    assert "users" not in disk and "sourceImage" not in disk
    # By numeric id too.
    assert gce.disks().get(project=PROJECT, zone=ZONE, disk=disk["id"]).execute()["name"] == name


def test_insert_types_full_and_partial_urls(server, gce):
    balanced = unique("bal")
    disk = make_disk(gce, balanced, type=f"zones/{ZONE}/diskTypes/pd-balanced")
    check_disk(server, disk, balanced, "100", "pd-balanced")  # pd-balanced's default size

    ssd = unique("ssd")
    full = link(server, f"projects/{PROJECT}/zones/{ZONE}/diskTypes/pd-ssd")
    disk = make_disk(gce, ssd, type=full, sizeGb="25", description="fast")
    check_disk(server, disk, ssd, "25", "pd-ssd")
    assert disk["description"] == "fast"

    # Any host (gcloud builds references on its endpoint override), and projects/... paths.
    other = unique("std")
    disk = make_disk(gce, other, type=f"https://compute.googleapis.com/compute/v1/projects/{PROJECT}/zones/{ZONE}"
                                      "/diskTypes/pd-standard", sizeGb=12)
    check_disk(server, disk, other, "12", "pd-standard")
    bare = unique("bare")
    check_disk(server, make_disk(gce, bare, type="pd-ssd", sizeGb="10"), bare, "10", "pd-ssd")


def test_insert_from_image(server, gce):
    debian = gce.images().get(project="debian-cloud", image=DEBIAN_12).execute()
    name = unique("fromimg")
    disk = make_disk(gce, name, sourceImage="projects/debian-cloud/global/images/family/debian-12")
    check_disk(server, disk, name, "10", "pd-standard")  # the image's size
    assert disk["sourceImage"] == link(server, f"projects/debian-cloud/global/images/{DEBIAN_12}")
    assert disk["sourceImageId"] == debian["id"]
    assert disk["licenses"] == debian["licenses"]
    assert disk["guestOsFeatures"] == debian["guestOsFeatures"]

    # sourceImage as the query parameter of disks.insert, with a bigger size.
    name = unique("qparam")
    op = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name, "sizeGb": "30"},
                            sourceImage="projects/debian-cloud/global/images/debian-11-bullseye-v20241009").execute()
    wait_op(gce, op)
    disk = gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()
    assert disk["sizeGb"] == "30"
    assert disk["sourceImage"] == link(server, "projects/debian-cloud/global/images/debian-11-bullseye-v20241009")

    # gcloud's imageFamilyViews form.
    name = unique("view")
    disk = make_disk(gce, name, sourceImage=link(server, "projects/ubuntu-os-cloud/zones/-/imageFamilyViews/"
                                                         "ubuntu-2204-lts"))
    assert disk["sourceImage"] == link(server, "projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240927")

    expect_error(gce.disks().insert(project=PROJECT, zone=ZONE, body={
        "name": unique("x"), "sourceImage": "projects/debian-cloud/global/images/family/nope"}),
        404, "notFound", "The resource 'projects/debian-cloud/global/images/family/nope' was not found")
    expect_error(gce.disks().insert(project=PROJECT, zone=ZONE, body={
        "name": unique("x"), "sourceImage": "projects/debian-cloud/global/images/debian-1"}),
        404, "notFound", "The resource 'projects/debian-cloud/global/images/debian-1' was not found")


def test_insert_request_id_is_idempotent(server, gce):
    name = unique("rid")
    rid = str(uuid.uuid4())
    first = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name, "sizeGb": "10"},
                               requestId=rid).execute()
    again = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name, "sizeGb": "10"},
                               requestId=rid).execute()
    assert again["name"] == first["name"] and again["clientOperationId"] == rid
    wait_op(gce, first)
    listed = gce.disks().list(project=PROJECT, zone=ZONE, filter=f"name eq {name}").execute()
    assert [d["name"] for d in listed["items"]] == [name]
    expect_error(gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name, "sizeGb": "10"}), 409,
                 "alreadyExists", f"The resource 'projects/{PROJECT}/zones/{ZONE}/disks/{name}' already exists")


def test_insert_bad_input(server, gce):
    def insert(body, zone=ZONE):
        return gce.disks().insert(project=PROJECT, zone=zone, body=body)

    expect_error(insert({"name": "Bad_Name"}), 400, "invalid",
                 f"Invalid value for field 'resource.name': 'Bad_Name'. Must be a match of regex '{REGEX}'")
    expect_error(insert({"name": "-x"}), 400, "invalid")
    expect_error(insert({"name": "a" * 64}), 400, "invalid")
    expect_error(insert({"sizeGb": "10"}), 400, "required", "Required field 'resource.name' not specified")
    expect_error(insert({"name": unique("t"), "type": "pd-nope"}), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/zones/{ZONE}/diskTypes/pd-nope' was not found")
    expect_error(insert({"name": unique("t"), "type": f"projects/{PROJECT}/zones/{ZONE}/diskTypes/pd-nope"}),
                 404, "notFound", f"The resource 'projects/{PROJECT}/zones/{ZONE}/diskTypes/pd-nope' was not found")
    err = expect_error(insert({"name": unique("t"), "type": "zones/us-central1-b/diskTypes/pd-ssd"}), 400, "invalid")
    assert "zones/us-central1-b/diskTypes/pd-ssd" in err["message"]
    err = expect_error(insert({"name": unique("s"), "sizeGb": "9"}), 400, "invalid")
    assert err["message"].startswith("Invalid value for field 'resource.sizeGb': '9'.")
    expect_error(insert({"name": unique("s"), "sizeGb": "65537"}), 400, "invalid")
    expect_error(insert({"name": unique("s"), "sizeGb": "0"}), 400, "invalid")
    expect_error(insert({"name": unique("s"), "sizeGb": "-5"}), 400, "invalid")
    err = expect_error(insert({"name": unique("s"), "sizeGb": "ten"}), 400, "invalid")
    assert "sizeGb" in err["message"]
    expect_error(insert({"name": unique("s"), "sizeGb": 12.5}), 400, "invalid")
    expect_error(insert({"name": unique("z")}, zone="us-central1-q"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/zones/us-central1-q' was not found")
    expect_error(insert({"name": unique("l"), "labels": {"Env": "x"}}), 400, "invalid")
    expect_error(insert({"name": unique("l"), "labels": {"eNV": "x"}}), 400, "invalid")
    expect_error(insert({"name": unique("l"), "labels": {"env": "Prod"}}), 400, "invalid")
    expect_error(insert({"name": unique("s"), "sourceSnapshot": "global/snapshots/nope"}), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/global/snapshots/nope' was not found")
    expect_error(insert({"name": unique("u"), "unknownField": 1}), 400, "invalid")

    token = server.token()
    for raw in (b"{not json", b'{"name": "x",}', b"[]"):
        r = requests.post(server.api + f"projects/{PROJECT}/zones/{ZONE}/disks", data=raw, timeout=10,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert r.status_code == 400, (raw, r.text)
        err = r.json()["error"]
        assert err["errors"][0]["reason"] == "invalid"
        assert err["message"].startswith("Invalid JSON payload received.")


# -- get / list / aggregatedList --------------------------------------------------------------------


def test_get_unknown(gce):
    expect_error(gce.disks().get(project=PROJECT, zone=ZONE, disk="no-such-disk"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/zones/{ZONE}/disks/no-such-disk' was not found")
    expect_error(gce.disks().get(project=PROJECT, zone="us-central1-q", disk="x"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/zones/us-central1-q' was not found")


def test_list_paging_and_filter(server, gce):
    prefix = unique("lst")
    names = [f"{prefix}-{i}" for i in range(3)]
    for n in names:
        make_disk(gce, n, sizeGb="10")
    out = gce.disks().list(project=PROJECT, zone=ZONE, filter=f"name eq {prefix}-.*").execute()
    assert out["kind"] == "compute#diskList"
    assert out["selfLink"] == link(server, f"projects/{PROJECT}/zones/{ZONE}/disks")
    assert [d["name"] for d in out["items"]] == names
    assert all(d["sizeGb"] == "10" for d in out["items"])

    page = gce.disks().list(project=PROJECT, zone=ZONE, filter=f"name eq {prefix}-.*", maxResults=2).execute()
    assert [d["name"] for d in page["items"]] == names[:2]
    rest = gce.disks().list(project=PROJECT, zone=ZONE, filter=f"name eq {prefix}-.*", maxResults=2,
                            pageToken=page["nextPageToken"]).execute()
    assert [d["name"] for d in rest["items"]] == names[2:] and "nextPageToken" not in rest

    newest = gce.disks().list(project=PROJECT, zone=ZONE, filter=f"name eq {prefix}-.*",
                              orderBy="creationTimestamp desc").execute()
    assert [d["name"] for d in newest["items"]] == names[::-1]
    none = gce.disks().list(project=PROJECT, zone=ZONE, filter=f"name eq {prefix}-nothing").execute()
    assert "items" not in none


def test_aggregated_list_warnings(server):
    project, g = fresh_project(server, "disks")
    name = unique("agg")
    make_disk(g, name, zone="us-central1-b", project=project, sizeGb="10")
    out = g.disks().aggregatedList(project=project).execute()
    assert out["kind"] == "compute#diskAggregatedList"
    assert out["id"] == f"projects/{project}/aggregated/disks"
    assert out["selfLink"] == link(server, f"projects/{project}/aggregated/disks")
    # Regional disks are disks too: their regions are scopes of the aggregated list, as on GCE.
    assert sorted(out["items"]) == ["regions/europe-west1", "regions/us-central1", "zones/europe-west1-b",
                                    "zones/us-central1-a", "zones/us-central1-b", "zones/us-central1-c"]
    assert [d["name"] for d in out["items"]["zones/us-central1-b"]["disks"]] == [name]
    assert out["items"]["zones/us-central1-b"]["disks"][0]["selfLink"] == disk_link(server, name, "us-central1-b",
                                                                                    project)
    for zone in ("europe-west1-b", "us-central1-a", "us-central1-c"):
        assert out["items"][f"zones/{zone}"] == {"warning": {
            "code": "NO_RESULTS_ON_PAGE", "message": f"There are no results for scope 'zones/{zone}' on this page.",
            "data": [{"key": "scope", "value": f"zones/{zone}"}]}}
    assert out.get("unreachables", []) == []
    # What gcloud sends.
    again = g.disks().aggregatedList(project=project, includeAllScopes=True, maxResults=500).execute()
    assert again["items"] == out["items"]


# -- resize, setLabels, delete --------------------------------------------------------------------


def test_resize_grow_only(server, gce):
    name = unique("rsz")
    make_disk(gce, name, sizeGb="20")
    op = gce.disks().resize(project=PROJECT, zone=ZONE, disk=name, body={"sizeGb": "35"}).execute()
    assert op["operationType"] == "resize"
    assert op["targetLink"] == disk_link(server, name)
    assert wait_op(gce, op)["status"] == "DONE"
    assert gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()["sizeGb"] == "35"

    err = expect_error(gce.disks().resize(project=PROJECT, zone=ZONE, disk=name, body={"sizeGb": "30"}),
                       400, "invalid")
    assert "'30 GB'" in err["message"] and "'35 GB'" in err["message"]
    expect_error(gce.disks().resize(project=PROJECT, zone=ZONE, disk=name, body={"sizeGb": "35"}), 400, "invalid")
    expect_error(gce.disks().resize(project=PROJECT, zone=ZONE, disk=name, body={"sizeGb": "big"}), 400, "invalid")
    expect_error(gce.disks().resize(project=PROJECT, zone=ZONE, disk=name, body={"sizeGb": "70000"}), 400,
                 "invalid")
    expect_error(gce.disks().resize(project=PROJECT, zone=ZONE, disk=name, body={}), 400, "required")
    expect_error(gce.disks().resize(project=PROJECT, zone=ZONE, disk="nope", body={"sizeGb": "50"}), 404,
                 "notFound")
    assert gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()["sizeGb"] == "35"


def test_set_labels(server, gce):
    name = unique("lbl")
    disk = make_disk(gce, name, sizeGb="10", labels={"team": "a"})
    assert disk["labels"] == {"team": "a"}
    fp = disk["labelFingerprint"]
    op = gce.disks().setLabels(project=PROJECT, zone=ZONE, resource=name,
                               body={"labelFingerprint": fp, "labels": {"env": "test", "tier": "gold"}}).execute()
    assert op["operationType"] == "setLabels"
    assert op["targetLink"] == disk_link(server, name)
    wait_op(gce, op)
    disk = gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()
    assert disk["labels"] == {"env": "test", "tier": "gold"}  # a full replacement
    assert disk["labelFingerprint"] != fp

    expect_error(gce.disks().setLabels(project=PROJECT, zone=ZONE, resource=name,
                                       body={"labelFingerprint": fp, "labels": {}}),
                 412, "conditionNotMet", "Invalid fingerprint.")
    expect_error(gce.disks().setLabels(project=PROJECT, zone=ZONE, resource=name, body={"labels": {}}),
                 412, "conditionNotMet", "Invalid fingerprint.")
    expect_error(gce.disks().setLabels(project=PROJECT, zone=ZONE, resource=name,
                                       body={"labelFingerprint": disk["labelFingerprint"], "labels": {"Bad": "x"}}),
                 400, "invalid")
    listed = gce.disks().list(project=PROJECT, zone=ZONE, filter=f"(name eq {name}) (labels.tier eq gold)").execute()
    assert [d["name"] for d in listed["items"]] == [name]

    wait_op(gce, gce.disks().setLabels(project=PROJECT, zone=ZONE, resource=name, body={
        "labelFingerprint": disk["labelFingerprint"], "labels": {}}).execute())
    cleared = gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()
    assert cleared.get("labels", {}) == {}


def test_set_labels_concurrent_same_fingerprint(server, gce):
    """Optimistic concurrency: of N writers holding the same fingerprint, exactly one wins."""
    name = unique("race")
    fp = make_disk(gce, name, sizeGb="10")["labelFingerprint"]
    clients = [server.gce(fresh_token(server.credentials())) for _ in range(6)]

    def set_label(i):
        try:
            clients[i].disks().setLabels(project=PROJECT, zone=ZONE, resource=name, body={
                "labelFingerprint": fp, "labels": {"writer": str(i)}}).execute()
            return 200
        except HttpError as e:
            return e.resp.status

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(set_label, range(6)))
    assert sorted(statuses) == [200] + [412] * 5, statuses


def test_delete(server, gce):
    name = unique("del")
    disk = make_disk(gce, name, sizeGb="10")
    op = gce.disks().delete(project=PROJECT, zone=ZONE, disk=name).execute()
    assert op["operationType"] == "delete"
    assert op["targetLink"] == disk_link(server, name)
    assert op["targetId"] == disk["id"]
    assert wait_op(gce, op)["status"] == "DONE"
    expect_error(gce.disks().get(project=PROJECT, zone=ZONE, disk=name), 404, "notFound")
    expect_error(gce.disks().delete(project=PROJECT, zone=ZONE, disk=name), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/zones/{ZONE}/disks/{name}' was not found")


def test_delete_while_attached(server, gce):
    boot = unique("boot")
    make_disk(gce, boot, sourceImage="projects/debian-cloud/global/images/family/debian-12")
    vm = unique("vm")
    op = gce.instances().insert(project=PROJECT, zone=ZONE, body={
        "name": vm, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "source": f"projects/{PROJECT}/zones/{ZONE}/disks/{boot}"}],
        "networkInterfaces": [{"network": "global/networks/default"}]}).execute()
    op = wait_op(gce, op)
    assert "error" not in op, op
    disk = gce.disks().get(project=PROJECT, zone=ZONE, disk=boot).execute()
    vm_link = link(server, f"projects/{PROJECT}/zones/{ZONE}/instances/{vm}")
    assert disk["users"] == [vm_link]
    assert "lastAttachTimestamp" in disk

    expect_error(gce.disks().delete(project=PROJECT, zone=ZONE, disk=boot), 400, "resourceInUseByAnotherResource",
                 f"The disk resource 'projects/{PROJECT}/zones/{ZONE}/disks/{boot}' is already being used by "
                 f"'projects/{PROJECT}/zones/{ZONE}/instances/{vm}'")
    assert gce.disks().get(project=PROJECT, zone=ZONE, disk=boot).execute()["status"] == "READY"

    op = wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=vm).execute())
    assert "error" not in op, op
    disk = gce.disks().get(project=PROJECT, zone=ZONE, disk=boot).execute()
    assert "users" not in disk and "lastDetachTimestamp" in disk  # autoDelete was false: the disk stays
    wait_op(gce, gce.disks().delete(project=PROJECT, zone=ZONE, disk=boot).execute())
    expect_error(gce.disks().get(project=PROJECT, zone=ZONE, disk=boot), 404, "notFound")


def test_delete_races_attach(server, gce):
    """A disk deleted while an instance attaches it: one of the two wins, never both, never a 500."""
    creds = fresh_token(server.credentials())
    attacher, deleter = server.gce(creds), server.gce(creds)
    for _ in range(4):
        disk = unique("contested")
        make_disk(gce, disk, sizeGb="10")
        vm = unique("vmrace")

        def attach(vm=vm, disk=disk):
            try:
                return attacher.instances().insert(project=PROJECT, zone=ZONE, body={
                    "name": vm, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
                    "disks": [{"boot": True, "source": f"zones/{ZONE}/disks/{disk}"}],
                    "networkInterfaces": [{"network": "global/networks/default"}]}).execute()
            except HttpError as e:
                return e

        def delete(disk=disk):
            try:
                return deleter.disks().delete(project=PROJECT, zone=ZONE, disk=disk).execute()
            except HttpError as e:
                return e

        with ThreadPoolExecutor(2) as pool:
            attached, deleted = pool.submit(attach), pool.submit(delete)
            attached, deleted = attached.result(), deleted.result()
        if isinstance(attached, HttpError):
            assert attached.resp.status == 404, attached.content
            assert not isinstance(deleted, HttpError), deleted.content
        else:
            assert isinstance(deleted, HttpError), "both the attach and the delete succeeded"
            assert deleted.resp.status == 400, deleted.content
            assert error_of(deleted)["errors"][0]["reason"] == "resourceInUseByAnotherResource"
            wait_op(gce, attached)
            assert gce.disks().get(project=PROJECT, zone=ZONE, disk=disk).execute()["users"]
            wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=vm).execute())
            wait_op(gce, gce.disks().delete(project=PROJECT, zone=ZONE, disk=disk).execute())


# -- createSnapshot ---------------------------------------------------------------------------------


def test_create_snapshot(server, gce):
    name = unique("src")
    disk = make_disk(gce, name, sizeGb="16", sourceImage="projects/debian-cloud/global/images/family/debian-12")
    snap = unique("snap")
    op = gce.disks().createSnapshot(project=PROJECT, zone=ZONE, disk=name,
                                    body={"name": snap, "labels": {"kind": "backup"}}, guestFlush=False).execute()
    assert op["operationType"] == "createSnapshot"
    assert op["zone"] == link(server, f"projects/{PROJECT}/zones/{ZONE}")  # zonal, though snapshots are global
    assert op["targetLink"] == disk_link(server, name)  # GCE points it at the source disk
    assert op["targetId"] == disk["id"]
    assert wait_op(gce, op)["status"] == "DONE"
    s = gce.snapshots().get(project=PROJECT, snapshot=snap).execute()
    assert s["kind"] == "compute#snapshot"
    assert s["status"] == "READY"
    assert s["sourceDisk"] == disk_link(server, name)
    assert s["sourceDiskId"] == disk["id"]
    assert s["diskSizeGb"] == "16"
    assert re.fullmatch(r"[1-9][0-9]*", s["storageBytes"])
    assert s["storageBytesStatus"] == "UP_TO_DATE"
    assert s["labels"] == {"kind": "backup"}
    assert s["selfLink"] == link(server, f"projects/{PROJECT}/global/snapshots/{snap}")
    assert s["licenses"] == disk["licenses"]

    expect_error(gce.disks().createSnapshot(project=PROJECT, zone=ZONE, disk=name, body={"name": snap}), 409,
                 "alreadyExists", f"The resource 'projects/{PROJECT}/global/snapshots/{snap}' already exists")
    expect_error(gce.disks().createSnapshot(project=PROJECT, zone=ZONE, disk="nope", body={"name": unique("s")}),
                 404, "notFound", f"The resource 'projects/{PROJECT}/zones/{ZONE}/disks/nope' was not found")
    expect_error(gce.disks().createSnapshot(project=PROJECT, zone=ZONE, disk=name, body={"name": "Bad"}), 400,
                 "invalid")
    expect_error(gce.disks().createSnapshot(project=PROJECT, zone=ZONE, disk=name, body={}), 400, "required",
                 "Required field 'resource.name' not specified")


# -- quota --------------------------------------------------------------------------------------------


def test_disks_total_gb_quota(server):
    project, g = fresh_project(server, "quota")
    server.admin("project", "set-quota", "--project", project, "--region", "us-central1",
                 "--metric", "DISKS_TOTAL_GB", "--limit", "100")
    message = "Quota 'DISKS_TOTAL_GB' exceeded.  Limit: 100.0 in region us-central1."

    def quota(region="us-central1"):
        r = g.regions().get(project=project, region=region).execute()
        return {q["metric"]: (q["limit"], q["usage"]) for q in r["quotas"]}

    assert quota()["DISKS_TOTAL_GB"] == (100.0, 0.0)
    # A blank pd-standard disk defaults to 500 GB: over the limit, refused before any operation.
    expect_error(g.disks().insert(project=project, zone=ZONE, body={"name": "too-big"}), 403, "quotaExceeded",
                 message)
    make_disk(g, "d60", project=project, sizeGb="60")
    expect_error(g.disks().insert(project=project, zone="us-central1-b", body={"name": "d50", "sizeGb": "50"}),
                 403, "quotaExceeded", message)
    expect_error(g.disks().resize(project=project, zone=ZONE, disk="d60", body={"sizeGb": "101"}), 403,
                 "quotaExceeded", message)
    assert quota()["DISKS_TOTAL_GB"] == (100.0, 60.0)
    assert [d["name"] for d in g.disks().list(project=project, zone=ZONE).execute()["items"]] == ["d60"]
    assert "items" not in g.disks().list(project=project, zone="us-central1-b").execute()
    ops = g.zoneOperations().list(project=project, zone="us-central1-b").execute()
    assert "items" not in ops  # the refused insert left no operation behind

    # Other metrics and regions are separate; exactly reaching the limit is allowed.
    make_disk(g, "ssd200", project=project, type=f"zones/{ZONE}/diskTypes/pd-ssd", sizeGb="200")
    make_disk(g, "eu200", zone="europe-west1-b", project=project, sizeGb="200")
    make_disk(g, "d40", zone="us-central1-c", project=project, sizeGb="40")
    assert quota()["DISKS_TOTAL_GB"] == (100.0, 100.0)
    assert quota()["SSD_TOTAL_GB"][1] == 200.0
    expect_error(g.disks().insert(project=project, zone=ZONE, body={"name": "one-more", "sizeGb": "10"}), 403,
                 "quotaExceeded", message)
    # Deleting gives the room back.
    wait_op(g, g.disks().delete(project=project, zone="us-central1-c", disk="d40").execute())
    assert quota()["DISKS_TOTAL_GB"] == (100.0, 60.0)
    wait_op(g, g.disks().resize(project=project, zone=ZONE, disk="d60", body={"sizeGb": "100"}).execute())
    assert quota()["DISKS_TOTAL_GB"] == (100.0, 100.0)


def test_disks_total_gb_quota_concurrent(server):
    """Parallel inserts must not overrun the limit together: 100 GB allows three 30 GB disks, not more."""
    project, g = fresh_project(server, "quotarace")
    server.admin("project", "set-quota", "--project", project, "--region", "us-central1",
                 "--metric", "DISKS_TOTAL_GB", "--limit", "100")
    creds = fresh_token(g._http.credentials)
    clients = [server.gce(creds) for _ in range(8)]

    def insert(i):
        try:
            clients[i].disks().insert(project=project, zone=ZONE, body={"name": f"r{i}", "sizeGb": "30"}).execute()
            return 200
        except HttpError as e:
            assert error_of(e)["errors"][0]["reason"] == "quotaExceeded"
            return e.resp.status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(insert, range(8)))
    assert sorted(statuses) == [200] * 3 + [403] * 5, statuses
    usage = {q["metric"]: q["usage"] for q in g.regions().get(project=project, region="us-central1").execute()["quotas"]}
    assert usage["DISKS_TOTAL_GB"] == 90.0


# -- google-cloud-compute ---------------------------------------------------------------------------


def test_compute_client_lifecycle(server):
    from google.api_core import exceptions
    from google.cloud import compute_v1

    disks = compute_client(server, compute_v1.DisksClient)
    name = unique("gcc")
    op = disks.insert(project=PROJECT, zone=ZONE,
                      disk_resource=compute_v1.Disk(name=name, size_gb=20, type_=f"zones/{ZONE}/diskTypes/pd-ssd",
                                                    labels={"via": "gapic"}))
    op.result(timeout=60)
    assert op.done() and not op.error_code
    disk = disks.get(project=PROJECT, zone=ZONE, disk=name)
    assert (disk.name, disk.size_gb, disk.status, dict(disk.labels)) == (name, 20, "READY", {"via": "gapic"})
    assert disk.type_ == link(server, f"projects/{PROJECT}/zones/{ZONE}/diskTypes/pd-ssd")
    assert disk.id > 0

    disks.resize(project=PROJECT, zone=ZONE, disk=name,
                 disks_resize_request_resource=compute_v1.DisksResizeRequest(size_gb=40)).result(timeout=60)
    assert disks.get(project=PROJECT, zone=ZONE, disk=name).size_gb == 40
    with pytest.raises(exceptions.BadRequest) as exc:
        disks.resize(project=PROJECT, zone=ZONE, disk=name,
                     disks_resize_request_resource=compute_v1.DisksResizeRequest(size_gb=30))
    assert exc.value.errors[0]["reason"] == "invalid"

    scoped = dict(disks.aggregated_list(project=PROJECT))
    assert name in {d.name for d in scoped[f"zones/{ZONE}"].disks}
    assert name in {d.name for d in disks.list(project=PROJECT, zone=ZONE)}

    disks.delete(project=PROJECT, zone=ZONE, disk=name).result(timeout=60)
    with pytest.raises(exceptions.NotFound):
        disks.get(project=PROJECT, zone=ZONE, disk=name)


def test_compute_client_plain(server):
    """server.compute() as is (a self-signed JWT of the key): reads and an insert acknowledged."""
    from google.cloud import compute_v1

    disks = server.compute(compute_v1.DisksClient)
    name = unique("plain")
    op = disks.insert(project=PROJECT, zone=ZONE, disk_resource=compute_v1.Disk(name=name, size_gb=10))
    assert op.name.startswith("operation-")
    gce = server.gce()
    wait_op(gce, gce.zoneOperations().get(project=PROJECT, zone=ZONE, operation=op.name).execute())
    disk = disks.get(project=PROJECT, zone=ZONE, disk=name)
    assert (disk.name, disk.size_gb, disk.status) == (name, 10, "READY")
    assert disk.self_link == disk_link(server, name)
    types = compute_v1.DiskTypesClient(credentials=server.credentials(), transport="rest",
                                       client_options={"api_endpoint": server.base})
    assert types.get(project=PROJECT, zone=ZONE, disk_type="pd-ssd").default_disk_size_gb == 100
