"""images.patch against ``gstack serve`` (SQLite and PostgreSQL) with google-api-python-client: the
family, description and deprecation status change (getFromFamily follows the family); any other field,
a bad family or a public image is refused with nothing changed. And gcloud's ``images update``."""

from __future__ import annotations

from tests.conftest import PROJECT, unique, wait_op
from tests.helpers.compute import expect_error, link, make_disk


def image_link(server, name: str) -> str:
    return link(server, f"projects/{PROJECT}/global/images/{name}")


def make_image(gce, name: str, **fields) -> dict:
    op = wait_op(gce, gce.images().insert(project=PROJECT, body={"name": name, **fields}).execute())
    assert op["status"] == "DONE" and "error" not in op, op
    return gce.images().get(project=PROJECT, image=name).execute()


def _patch(gce, name: str, body: dict) -> dict:
    op = gce.images().patch(project=PROJECT, image=name, body=body).execute()
    assert op["operationType"] == "patch" and op["status"] == "DONE", op
    assert op["targetLink"].endswith(f"/global/images/{name}")
    return gce.images().get(project=PROJECT, image=name).execute()


def test_patch_family_description_deprecation(server, gce):
    disk = make_disk(gce, unique("pdisk"), sizeGb="10")
    family = unique("pfam")
    image = make_image(gce, unique("pimg"), sourceDisk=f"zones/us-central1-a/disks/{disk['name']}",
                       description="before")
    assert "family" not in image
    after = _patch(gce, image["name"], {"family": family, "description": "after"})
    assert after["family"] == family and after["description"] == "after"
    assert gce.images().getFromFamily(project=PROJECT, family=family).execute()["name"] == image["name"]

    other = make_image(gce, unique("pimg"), sourceDisk=f"zones/us-central1-a/disks/{disk['name']}")
    deprecated = _patch(gce, image["name"], {"deprecated": {"state": "DEPRECATED",
                                                            "replacement": image_link(server, other["name"])}})
    assert deprecated["deprecated"]["state"] == "DEPRECATED"
    assert deprecated["deprecated"]["replacement"] == image_link(server, other["name"])
    assert _patch(gce, image["name"], {"deprecated": {"state": "ACTIVE"}}).get("deprecated") is None
    assert "family" not in _patch(gce, image["name"], {"family": None})

    before = gce.images().get(project=PROJECT, image=image["name"]).execute()
    expect_error(gce.images().patch(project=PROJECT, image=image["name"], body={"diskSizeGb": "50"}), 400, "invalid")
    expect_error(gce.images().patch(project=PROJECT, image=image["name"], body={
        "family": "Bad_Family", "description": "never"}), 400, "invalid")
    expect_error(gce.images().patch(project=PROJECT, image=image["name"], body={
        "deprecated": {"state": "GONE"}}), 400, "invalid")
    expect_error(gce.images().patch(project=PROJECT, image=image["name"], body={
        "labels": {"a": "b"}, "description": "never"}), 400, "invalid")
    assert gce.images().get(project=PROJECT, image=image["name"]).execute() == before
    expect_error(gce.images().patch(project=PROJECT, image="no-such-image", body={"description": "x"}), 404,
                 "notFound", f"The resource 'projects/{PROJECT}/global/images/no-such-image' was not found")
    expect_error(gce.images().patch(project="debian-cloud", image="debian-12-bookworm-v20241009",
                                    body={"description": "mine"}), 403, "forbidden")
    wait_op(gce, gce.images().delete(project=PROJECT, image=image["name"]).execute())
