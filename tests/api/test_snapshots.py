"""Snapshots end to end: made by disks.createSnapshot; get, list, setLabels, delete, restoring disks
from them, images from them, and the SNAPSHOTS quota."""

from __future__ import annotations

import re

from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.compute import compute_client, disk_link, expect_error, fresh_project, link, make_disk


def snap_link(server, name: str, project: str = PROJECT) -> str:
    return link(server, f"projects/{project}/global/snapshots/{name}")


def make_snapshot(gce, disk: str, name: str | None = None, zone: str = ZONE, project: str = PROJECT,
                  **fields) -> dict:
    name = name or unique("snap")
    op = gce.disks().createSnapshot(project=project, zone=zone, disk=disk, body={"name": name, **fields}).execute()
    op = wait_op(gce, op)
    assert op["status"] == "DONE" and "error" not in op, op
    return gce.snapshots().get(project=project, snapshot=name).execute()


def test_get_and_list(server, gce):
    disk = make_disk(gce, unique("snapsrc"), sizeGb="12",
                     sourceImage="projects/debian-cloud/global/images/family/debian-12")
    prefix = unique("sl")
    first = make_snapshot(gce, disk["name"], f"{prefix}-a", description="first")
    second = make_snapshot(gce, disk["name"], f"{prefix}-b", snapshotType="ARCHIVE")
    assert first["kind"] == "compute#snapshot"
    assert re.fullmatch(r"[1-9][0-9]*", first["id"])
    assert first["status"] == "READY"
    assert first["selfLink"] == snap_link(server, first["name"])
    assert first["sourceDisk"] == disk_link(server, disk["name"])
    assert first["sourceDiskId"] == disk["id"]
    assert first["diskSizeGb"] == "12"
    assert int(first["storageBytes"]) > 0
    assert first["description"] == "first"
    assert first["snapshotType"] == "STANDARD" and second["snapshotType"] == "ARCHIVE"
    assert first["licenses"] == disk["licenses"]
    assert gce.snapshots().get(project=PROJECT, snapshot=first["id"]).execute()["name"] == first["name"]

    out = gce.snapshots().list(project=PROJECT, filter=f"name eq {prefix}-.*").execute()
    assert out["kind"] == "compute#snapshotList"
    assert out["selfLink"] == link(server, f"projects/{PROJECT}/global/snapshots")
    assert [s["name"] for s in out["items"]] == [first["name"], second["name"]]
    page = gce.snapshots().list(project=PROJECT, filter=f"name eq {prefix}-.*", maxResults=1).execute()
    assert [s["name"] for s in page["items"]] == [first["name"]] and page["nextPageToken"]

    expect_error(gce.snapshots().get(project=PROJECT, snapshot="no-such-snap"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/global/snapshots/no-such-snap' was not found")
    expect_error(gce.disks().createSnapshot(project=PROJECT, zone=ZONE, disk=disk["name"], body={
        "name": unique("s"), "snapshotType": "FOREVER"}), 400, "invalid")


def test_set_labels(server, gce):
    disk = make_disk(gce, unique("lblsrc"), sizeGb="10")
    snap = make_snapshot(gce, disk["name"], labels={"a": "1"})
    assert snap["labels"] == {"a": "1"}
    op = gce.snapshots().setLabels(project=PROJECT, resource=snap["name"], body={
        "labelFingerprint": snap["labelFingerprint"], "labels": {"b": "2"}}).execute()
    assert op["operationType"] == "setLabels"
    assert op["targetLink"] == snap_link(server, snap["name"])
    assert "zone" not in op
    wait_op(gce, op)
    after = gce.snapshots().get(project=PROJECT, snapshot=snap["name"]).execute()
    assert after["labels"] == {"b": "2"} and after["labelFingerprint"] != snap["labelFingerprint"]
    expect_error(gce.snapshots().setLabels(project=PROJECT, resource=snap["name"], body={
        "labelFingerprint": snap["labelFingerprint"], "labels": {}}), 412, "conditionNotMet", "Invalid fingerprint.")
    expect_error(gce.snapshots().setLabels(project=PROJECT, resource=snap["name"], body={
        "labelFingerprint": after["labelFingerprint"], "labels": {"b": "UPPER"}}), 400, "invalid")
    expect_error(gce.snapshots().setLabels(project=PROJECT, resource="no-such-snap", body={"labels": {}}), 404,
                 "notFound")


def test_delete(server, gce):
    disk = make_disk(gce, unique("delsrc"), sizeGb="10")
    snap = make_snapshot(gce, disk["name"])
    op = gce.snapshots().delete(project=PROJECT, snapshot=snap["name"]).execute()
    assert op["operationType"] == "delete"
    assert op["targetLink"] == snap_link(server, snap["name"])
    assert op["targetId"] == snap["id"]
    assert op["selfLink"].startswith(link(server, f"projects/{PROJECT}/global/operations/"))
    wait_op(gce, op)
    expect_error(gce.snapshots().get(project=PROJECT, snapshot=snap["name"]), 404, "notFound")
    expect_error(gce.snapshots().delete(project=PROJECT, snapshot=snap["name"]), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/global/snapshots/{snap['name']}' was not found")
    # The disk it came from is untouched.
    assert gce.disks().get(project=PROJECT, zone=ZONE, disk=disk["name"]).execute()["status"] == "READY"


def test_restore_disk_and_image(server, gce):
    disk = make_disk(gce, unique("rstsrc"), sizeGb="15",
                     sourceImage="projects/debian-cloud/global/images/family/debian-12")
    snap = make_snapshot(gce, disk["name"])
    # Another zone, the snapshot's size by default.
    restored = make_disk(gce, unique("restored"), zone="us-central1-b", sourceSnapshot=f"global/snapshots/{snap['name']}")
    assert restored["sizeGb"] == "15"
    assert restored["sourceSnapshot"] == snap_link(server, snap["name"])
    assert restored["sourceSnapshotId"] == snap["id"]
    assert restored["licenses"] == disk["licenses"]
    assert restored["guestOsFeatures"] == disk["guestOsFeatures"]
    expect_error(gce.disks().insert(project=PROJECT, zone=ZONE, body={
        "name": unique("both"), "sourceSnapshot": snap["selfLink"],
        "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}), 400, "invalid")
    bigger = make_disk(gce, unique("bigger"), sourceSnapshot=snap["selfLink"], sizeGb="40",
                       type=f"zones/{ZONE}/diskTypes/pd-balanced")
    assert bigger["sizeGb"] == "40"
    err = expect_error(gce.disks().insert(project=PROJECT, zone=ZONE, body={
        "name": unique("small"), "sourceSnapshot": snap["selfLink"], "sizeGb": "10"}), 400, "invalid")
    assert err["message"] == ("Invalid value for field 'resource.sizeGb': '10'. "
                              "Requested disk size cannot be smaller than the snapshot size (15 GB)")

    family = unique("snapfam")
    name = unique("snapimg")
    wait_op(gce, gce.images().insert(project=PROJECT, body={"name": name, "sourceSnapshot": snap["selfLink"],
                                                            "family": family}).execute())
    img = gce.images().get(project=PROJECT, image=name).execute()
    assert img["status"] == "READY"
    assert img["sourceSnapshot"] == snap_link(server, snap["name"])
    assert img["sourceSnapshotId"] == snap["id"]
    assert img["diskSizeGb"] == "15"
    assert img["licenses"] == disk["licenses"]
    assert gce.images().getFromFamily(project=PROJECT, family=family).execute()["name"] == name


def test_snapshots_quota(server):
    project, g = fresh_project(server, "snapquota")
    server.admin("project", "set-quota", "--project", project, "--metric", "SNAPSHOTS", "--limit", "1")
    disk = make_disk(g, "src", project=project, sizeGb="10")
    make_snapshot(g, disk["name"], "one", project=project)
    expect_error(g.disks().createSnapshot(project=project, zone=ZONE, disk="src", body={"name": "two"}), 403,
                 "quotaExceeded", "Quota 'SNAPSHOTS' exceeded.  Limit: 1.0 globally.")
    quotas = {q["metric"]: (q["limit"], q["usage"]) for q in g.projects().get(project=project).execute()["quotas"]}
    assert quotas["SNAPSHOTS"] == (1.0, 1.0)
    assert [s["name"] for s in g.snapshots().list(project=project).execute()["items"]] == ["one"]


def test_compute_client_snapshots(server, gce):
    from google.cloud import compute_v1

    disk = make_disk(gce, unique("gccsnap"), sizeGb="10")
    disks = compute_client(server, compute_v1.DisksClient)
    snapshots = compute_client(server, compute_v1.SnapshotsClient)
    name = unique("gccs")
    op = disks.create_snapshot(project=PROJECT, zone=ZONE, disk=disk["name"],
                               snapshot_resource=compute_v1.Snapshot(name=name))
    op.result(timeout=60)
    assert not op.error_code
    snap = snapshots.get(project=PROJECT, snapshot=name)
    assert (snap.status, snap.disk_size_gb, snap.source_disk) == ("READY", 10, disk["selfLink"])
    snapshots.delete(project=PROJECT, snapshot=name).result(timeout=60)
    assert name not in {s.name for s in snapshots.list(project=PROJECT)}


def test_snapshots_insert(server, gce):
    """snapshots.insert with sourceDisk, as gcloud's snapshots create sends it: a global Operation on
    the snapshot, the same copy as disks.createSnapshot; bad input changes nothing."""
    disk = make_disk(gce, sizeGb="10")
    name = unique("sins")
    op = gce.snapshots().insert(project=PROJECT, body={"name": name, "sourceDisk": disk["selfLink"]}).execute()
    assert (op["operationType"], op["targetLink"]) == ("insert", snap_link(server, name))
    assert "zone" not in op and op["selfLink"].split("/")[-3] == "global"
    op = wait_op(gce, op)
    assert op["status"] == "DONE" and "error" not in op, op
    snap = gce.snapshots().get(project=PROJECT, snapshot=name).execute()
    assert (snap["status"], snap["sourceDisk"], snap["diskSizeGb"]) == ("READY", disk["selfLink"], "10")
    for body, reason in (({"name": unique("s")}, "invalid"),
                         ({"name": unique("s"), "sourceDisk": f"zones/{ZONE}/disks/no-such-disk"}, "notFound"),
                         ({"name": unique("s"), "sourceDisk": "not a link"}, "invalid"),
                         ({"sourceDisk": disk["selfLink"]}, "required"),
                         ({"name": name, "sourceDisk": disk["selfLink"]}, "alreadyExists")):
        expect_error(gce.snapshots().insert(project=PROJECT, body=body), 404 if reason == "notFound" else
                     409 if reason == "alreadyExists" else 400, reason)
    listed = gce.snapshots().list(project=PROJECT, filter=f"sourceDisk eq .*/{disk['name']}").execute()
    assert [s["name"] for s in listed["items"]] == [name]
    wait_op(gce, gce.snapshots().delete(project=PROJECT, snapshot=name).execute())
