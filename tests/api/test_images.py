"""Images end to end: the public image projects, families, insert from a disk and from a snapshot,
deprecate, setLabels, delete, and what other projects may (not) do with them."""

from __future__ import annotations

import re

from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.compute import compute_client, disk_link, expect_error, fresh_project, link, make_disk

DEBIAN = ["debian-11-bullseye-v20240709", "debian-11-bullseye-v20241009", "debian-12-bookworm-v20240709",
          "debian-12-bookworm-v20241009"]


def image_link(server, name: str, project: str = PROJECT) -> str:
    return link(server, f"projects/{project}/global/images/{name}")


def make_image(gce, name: str | None = None, **fields) -> dict:
    name = name or unique("img")
    op = gce.images().insert(project=PROJECT, body={"name": name, **fields}).execute()
    op = wait_op(gce, op)
    assert op["status"] == "DONE" and "error" not in op, op
    return gce.images().get(project=PROJECT, image=name).execute()


def test_public_images_readable(server, gce):
    out = gce.images().list(project="debian-cloud").execute()
    assert out["kind"] == "compute#imageList"
    assert out["selfLink"] == link(server, "projects/debian-cloud/global/images")
    assert [i["name"] for i in out["items"]] == DEBIAN
    img = gce.images().get(project="debian-cloud", image="debian-12-bookworm-v20241009").execute()
    assert img["kind"] == "compute#image"
    assert re.fullmatch(r"[1-9][0-9]*", img["id"])
    assert img["status"] == "READY"
    assert img["family"] == "debian-12"
    assert img["diskSizeGb"] == "10"
    assert re.fullmatch(r"[1-9][0-9]*", img["archiveSizeBytes"])
    assert img["sourceType"] == "RAW"
    assert img["selfLink"] == image_link(server, "debian-12-bookworm-v20241009", "debian-cloud")
    assert img["licenses"] == [link(server, "projects/debian-cloud/global/licenses/debian-12")]
    assert img["creationTimestamp"].startswith("2024-10-0")
    # By numeric id too.
    assert gce.images().get(project="debian-cloud", image=img["id"]).execute()["name"] == img["name"]

    ubuntu = gce.images().list(project="ubuntu-os-cloud").execute()
    assert {i["name"] for i in ubuntu["items"]} == {"ubuntu-2204-jammy-v20240927", "ubuntu-2404-noble-amd64-v20241004"}
    only12 = gce.images().list(project="debian-cloud", filter="family eq debian-12").execute()
    assert [i["name"] for i in only12["items"]] == DEBIAN[2:]


def test_get_from_family(server, gce):
    assert gce.images().getFromFamily(project="debian-cloud", family="debian-12").execute()["name"] == DEBIAN[3]
    assert gce.images().getFromFamily(project="debian-cloud", family="debian-11").execute()["name"] == DEBIAN[1]
    ubuntu = gce.images().getFromFamily(project="ubuntu-os-cloud", family="ubuntu-2204-lts").execute()
    assert ubuntu["name"] == "ubuntu-2204-jammy-v20240927"
    assert ubuntu["selfLink"] == image_link(server, ubuntu["name"], "ubuntu-os-cloud")
    expect_error(gce.images().getFromFamily(project="debian-cloud", family="nope"), 404, "notFound",
                 "The resource 'projects/debian-cloud/global/images/family/nope' was not found")
    expect_error(gce.images().get(project="debian-cloud", image="debian-99"), 404, "notFound",
                 "The resource 'projects/debian-cloud/global/images/debian-99' was not found")


def test_public_images_are_read_only(server, gce):
    err = expect_error(gce.images().delete(project="debian-cloud", image=DEBIAN[3]), 403, "forbidden")
    assert "projects/debian-cloud" in err["message"]
    expect_error(gce.images().deprecate(project="debian-cloud", image=DEBIAN[3], body={"state": "DEPRECATED"}),
                 403, "forbidden")
    expect_error(gce.images().setLabels(project="debian-cloud", resource=DEBIAN[3],
                                        body={"labels": {"a": "b"}, "labelFingerprint": ""}), 403, "forbidden")
    expect_error(gce.images().insert(project="debian-cloud", body={
        "name": unique("mine"), "sourceImage": f"projects/debian-cloud/global/images/{DEBIAN[3]}"}), 403, "forbidden")
    assert gce.images().get(project="debian-cloud", image=DEBIAN[3]).execute()["status"] == "READY"
    assert gce.images().getFromFamily(project="debian-cloud", family="debian-12").execute()["name"] == DEBIAN[3]


def test_insert_from_disk_and_family(server, gce):
    disk = make_disk(gce, unique("imgsrc"), sizeGb="20",
                     sourceImage="projects/debian-cloud/global/images/family/debian-12")
    family = unique("fam")
    name = unique("img")
    op = gce.images().insert(project=PROJECT, body={
        "name": name, "sourceDisk": f"zones/{ZONE}/disks/{disk['name']}", "family": family,
        "description": "golden", "labels": {"os": "debian"}}).execute()
    assert op["operationType"] == "insert"
    assert op["targetLink"] == image_link(server, name)
    assert op["selfLink"].startswith(link(server, f"projects/{PROJECT}/global/operations/"))
    assert "zone" not in op and "region" not in op  # a global operation
    assert wait_op(gce, op)["status"] == "DONE"
    img = gce.images().get(project=PROJECT, image=name).execute()
    assert img["status"] == "READY"
    assert img["id"] == op["targetId"]
    assert img["family"] == family
    assert img["sourceDisk"] == disk_link(server, disk["name"])
    assert img["sourceDiskId"] == disk["id"]
    assert img["diskSizeGb"] == "20"
    assert img["description"] == "golden" and img["labels"] == {"os": "debian"}
    assert img["licenses"] == disk["licenses"]  # carried over from the disk's own image
    assert gce.images().getFromFamily(project=PROJECT, family=family).execute()["name"] == name

    # A disk of it: the image's size at least.
    from_img = make_disk(gce, unique("fromown"), sourceImage=f"global/images/family/{family}")
    assert from_img["sizeGb"] == "20"
    assert from_img["sourceImage"] == image_link(server, name)
    err = expect_error(gce.disks().insert(project=PROJECT, zone=ZONE, body={
        "name": unique("small"), "sourceImage": f"global/images/{name}", "sizeGb": "15"}), 400, "invalid")
    assert err["message"] == ("Invalid value for field 'resource.sizeGb': '15'. "
                              "Requested disk size cannot be smaller than the image size (20 GB)")


def test_family_deprecate_and_delete(server, gce):
    disk = make_disk(gce, unique("famsrc"), sizeGb="10")
    family = unique("fam")
    old = make_image(gce, unique("old"), sourceDisk=disk["selfLink"], family=family)
    new = make_image(gce, unique("new"), sourceDisk=disk["selfLink"], family=family)

    def newest():
        return gce.images().getFromFamily(project=PROJECT, family=family).execute()["name"]

    assert newest() == new["name"]
    op = gce.images().deprecate(project=PROJECT, image=new["name"], body={
        "state": "DEPRECATED", "replacement": f"global/images/{old['name']}"}).execute()
    assert op["operationType"] == "deprecate"
    assert op["targetLink"] == image_link(server, new["name"])
    wait_op(gce, op)
    dep = gce.images().get(project=PROJECT, image=new["name"]).execute()["deprecated"]
    assert dep["state"] == "DEPRECATED"
    assert dep["replacement"] == image_link(server, old["name"])
    assert newest() == old["name"]  # getFromFamily skips deprecated images

    wait_op(gce, gce.images().deprecate(project=PROJECT, image=new["name"], body={"state": "ACTIVE"}).execute())
    assert "deprecated" not in gce.images().get(project=PROJECT, image=new["name"]).execute()
    assert newest() == new["name"]

    for state in ("OBSOLETE", "DELETED"):
        wait_op(gce, gce.images().deprecate(project=PROJECT, image=new["name"], body={"state": state}).execute())
        assert newest() == old["name"]
    wait_op(gce, gce.images().deprecate(project=PROJECT, image=old["name"], body={"state": "DEPRECATED"}).execute())
    expect_error(gce.images().getFromFamily(project=PROJECT, family=family), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/global/images/family/{family}' was not found")
    expect_error(gce.images().deprecate(project=PROJECT, image=old["name"], body={"state": "GONE"}), 400, "invalid")
    expect_error(gce.images().deprecate(project=PROJECT, image="no-such-image", body={"state": "ACTIVE"}), 404,
                 "notFound")

    wait_op(gce, gce.images().deprecate(project=PROJECT, image=old["name"], body={"state": "ACTIVE"}).execute())
    op = gce.images().delete(project=PROJECT, image=old["name"]).execute()
    assert op["operationType"] == "delete" and op["targetId"] == old["id"]
    wait_op(gce, op)
    expect_error(gce.images().get(project=PROJECT, image=old["name"]), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/global/images/{old['name']}' was not found")
    expect_error(gce.images().delete(project=PROJECT, image=old["name"]), 404, "notFound")
    expect_error(gce.images().getFromFamily(project=PROJECT, family=family), 404, "notFound")


def test_set_labels(server, gce):
    img = make_image(gce, sourceImage=f"projects/debian-cloud/global/images/{DEBIAN[3]}")
    assert img["licenses"] == [link(server, "projects/debian-cloud/global/licenses/debian-12")]
    op = gce.images().setLabels(project=PROJECT, resource=img["name"], body={
        "labelFingerprint": img["labelFingerprint"], "labels": {"stage": "prod"}}).execute()
    assert op["operationType"] == "setLabels" and op["targetLink"] == image_link(server, img["name"])
    wait_op(gce, op)
    after = gce.images().get(project=PROJECT, image=img["name"]).execute()
    assert after["labels"] == {"stage": "prod"} and after["labelFingerprint"] != img["labelFingerprint"]
    expect_error(gce.images().setLabels(project=PROJECT, resource=img["name"], body={
        "labelFingerprint": img["labelFingerprint"], "labels": {}}), 412, "conditionNotMet", "Invalid fingerprint.")
    listed = gce.images().list(project=PROJECT, filter=f"(name eq {img['name']}) (labels.stage eq prod)").execute()
    assert [i["name"] for i in listed["items"]] == [img["name"]]


def test_insert_bad_input(server, gce):
    disk = make_disk(gce, unique("badsrc"), sizeGb="10")

    def insert(body):
        return gce.images().insert(project=PROJECT, body=body)

    expect_error(insert({"sourceDisk": disk["selfLink"]}), 400, "required", "Required field 'resource.name' not specified")
    expect_error(insert({"name": "Bad_Image", "sourceDisk": disk["selfLink"]}), 400, "invalid")
    expect_error(insert({"name": unique("x")}), 400, "required", "Required field 'resource.sourceDisk' not specified")
    expect_error(insert({"name": unique("x"), "sourceDisk": f"zones/{ZONE}/disks/nope"}), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/zones/{ZONE}/disks/nope' was not found")
    expect_error(insert({"name": unique("x"), "sourceDisk": "global/disks/nope"}), 400, "invalid")
    expect_error(insert({"name": unique("x"), "sourceSnapshot": "global/snapshots/nope"}), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/global/snapshots/nope' was not found")
    expect_error(insert({"name": unique("x"), "sourceDisk": disk["selfLink"], "family": "Bad_Family"}), 400,
                 "invalid")
    expect_error(insert({"name": unique("x"), "sourceDisk": disk["selfLink"], "labels": {"A": "b"}}), 400,
                 "invalid")
    existing = make_image(gce, sourceDisk=disk["selfLink"])
    expect_error(insert({"name": existing["name"], "sourceDisk": disk["selfLink"]}), 409, "alreadyExists",
                 f"The resource 'projects/{PROJECT}/global/images/{existing['name']}' already exists")


def test_other_projects_disks_and_images_are_private(server, gce):
    other, g = fresh_project(server, "imgpriv")
    secret = make_disk(g, unique("secret"), project=other, sizeGb="10")
    wait_op(g, g.images().insert(project=other, body={"name": "private-img", "sourceDisk": secret["selfLink"]})
            .execute())
    # demo-project may neither read that project nor build from its disk or image.
    expect_error(gce.images().list(project=other), 403, "forbidden")
    expect_error(gce.images().insert(project=PROJECT, body={"name": unique("steal"), "sourceDisk": secret["selfLink"]}),
                 404, "notFound", f"The resource 'projects/{other}/zones/{ZONE}/disks/{secret['name']}' was not found")
    expect_error(gce.disks().insert(project=PROJECT, zone=ZONE, body={
        "name": unique("steal"), "sourceImage": f"projects/{other}/global/images/private-img"}), 404, "notFound",
        f"The resource 'projects/{other}/global/images/private-img' was not found")
    # ... while the owner can.
    assert make_disk(g, unique("own"), project=other, sourceImage="global/images/private-img")["sizeGb"] == "10"


def test_compute_client_images(server, gce):
    from google.cloud import compute_v1

    images = compute_client(server, compute_v1.ImagesClient)
    latest = images.get_from_family(project="debian-cloud", family="debian-12")
    assert (latest.name, latest.disk_size_gb, latest.status) == (DEBIAN[3], 10, "READY")
    disk = make_disk(gce, unique("gccsrc"), sizeGb="12")
    name, family = unique("gccimg"), unique("gccfam")
    op = images.insert(project=PROJECT, image_resource=compute_v1.Image(name=name, source_disk=disk["selfLink"],
                                                                        family=family))
    op.result(timeout=60)
    assert not op.error_code
    img = images.get(project=PROJECT, image=name)
    assert (img.status, img.disk_size_gb, img.family) == ("READY", 12, family)
    assert images.get_from_family(project=PROJECT, family=family).name == name
    images.delete(project=PROJECT, image=name).result(timeout=60)
    assert name not in {i.name for i in images.list(project=PROJECT)}
