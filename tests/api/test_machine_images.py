"""machineImages end to end (SQLite and PostgreSQL) with google-api-python-client: made from an
instance (its properties and a copy of its disks on secondary storage), get, list, setLabels,
delete; instances.insert with sourceMachineImage (the request's fields over the image's); the
MACHINE_IMAGES quota; bad input refused with GCE's error and nothing made."""

from __future__ import annotations

from sqlalchemy import text

from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.compute import expect_error, fresh_project, link

FAMILY = "projects/debian-cloud/global/images/family/debian-12"
OTHER_ZONE = "us-central1-b"


def make_instance(gce, name: str, project: str = PROJECT, zone: str = ZONE, **extra) -> dict:
    body = {"name": name, "machineType": f"zones/{zone}/machineTypes/e2-small",
            "disks": [{"boot": True, "autoDelete": True,
                       "initializeParams": {"sourceImage": FAMILY, "diskSizeGb": "12"}},
                      {"autoDelete": True, "deviceName": "data",
                       "initializeParams": {"diskName": f"{name}-data", "diskSizeGb": "20",
                                            "diskType": f"zones/{zone}/diskTypes/pd-ssd"}}],
            "networkInterfaces": [{"network": "global/networks/default",
                                   "accessConfigs": [{"name": "External NAT", "type": "ONE_TO_ONE_NAT"}]}],
            **extra}
    op = wait_op(gce, gce.instances().insert(project=project, zone=zone, body=body).execute())
    assert "error" not in op, op
    return gce.instances().get(project=project, zone=zone, instance=name).execute()


def make_image(gce, instance: dict, name: str | None = None, project: str = PROJECT, **fields) -> dict:
    name = name or unique("mi")
    op = gce.machineImages().insert(project=project, body={"name": name, "sourceInstance": instance["selfLink"],
                                                           **fields}).execute()
    assert op["operationType"] == "insert" and op["targetLink"].endswith(f"/global/machineImages/{name}")
    assert op["status"] in ("PENDING", "RUNNING", "DONE")
    done = wait_op(gce, op)
    assert done["status"] == "DONE" and "error" not in done, done
    return gce.machineImages().get(project=project, machineImage=name).execute()


def names(gce, project: str = PROJECT) -> list[str]:
    return [m["name"] for m in gce.machineImages().list(project=project).execute().get("items", [])]


def delete_instance(gce, name: str, project: str = PROJECT, zone: str = ZONE) -> None:
    op = wait_op(gce, gce.instances().delete(project=project, zone=zone, instance=name).execute())
    assert "error" not in op, op


def test_machine_image_captures_the_instance(server, gce):
    vm = unique("misrc")
    inst = make_instance(gce, vm, labels={"team": "web"}, tags={"items": ["http"]},
                         metadata={"items": [{"key": "startup-script", "value": "echo hi"}]},
                         minCpuPlatform="Intel Broadwell")
    image = make_image(gce, inst, description="golden", labels={"tier": "gold"})
    assert image["kind"] == "compute#machineImage" and image["status"] == "READY"
    assert image["selfLink"] == link(server, f"projects/{PROJECT}/global/machineImages/{image['name']}")
    assert image["sourceInstance"] == inst["selfLink"] and image["description"] == "golden"
    assert image["storageLocations"] == ["us"]
    assert image["labels"] == {"tier": "gold"} and image["labelFingerprint"]
    props = image["instanceProperties"]
    assert props["machineType"] == "e2-small"
    assert props["labels"] == {"team": "web"} and props["tags"]["items"] == ["http"]
    assert props["metadata"]["items"] == [{"key": "startup-script", "value": "echo hi"}]
    assert props["serviceAccounts"] == inst["serviceAccounts"] and props["scheduling"] == inst["scheduling"]
    assert props["minCpuPlatform"] == "Intel Broadwell"
    nic = props["networkInterfaces"][0]
    assert nic["network"] == inst["networkInterfaces"][0]["network"]
    assert nic["subnetwork"] == inst["networkInterfaces"][0]["subnetwork"]
    assert "networkIP" not in nic and "natIP" not in nic["accessConfigs"][0]
    assert [(d["deviceName"], d["boot"], d["diskSizeGb"]) for d in props["disks"]] == [
        (vm, True, "12"), ("data", False, "20")]
    source = image["sourceInstanceProperties"]
    assert [d["source"] for d in source["disks"]] == [d["source"] for d in inst["disks"]]
    assert source["disks"][1]["diskType"].endswith(f"/zones/{ZONE}/diskTypes/pd-ssd")
    saved = image["savedDisks"]
    assert [s["sourceDisk"] for s in saved] == [d["source"] for d in inst["disks"]]
    sizes = [int(s["storageBytes"]) for s in saved]
    assert all(size > 0 for size in sizes) and {s["storageBytesStatus"] for s in saved} == {"UP_TO_DATE"}
    assert int(image["totalStorageBytes"]) == sum(sizes)
    # The copy is real: one object on the zone's secondary storage holds both disks.
    with server.engine().connect() as conn:
        stored = conn.execute(text("SELECT kind, size_bytes FROM secondary_objects WHERE owner_uid = :u"),
                              {"u": int(image["id"])}).all()
    assert stored == [("machineImage", sum(sizes))]
    assert gce.machineImages().get(project=PROJECT, machineImage=image["id"]).execute()["name"] == image["name"]

    # Deleting the instance leaves the image; deleting the image frees its copy.
    delete_instance(gce, vm)
    assert gce.machineImages().get(project=PROJECT, machineImage=image["name"]).execute()["status"] == "READY"
    op = gce.machineImages().delete(project=PROJECT, machineImage=image["name"]).execute()
    assert op["status"] == "DONE" and op["operationType"] == "delete" and "error" not in op
    assert image["name"] not in names(gce)
    with server.engine().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM secondary_objects WHERE owner_uid = :u"),
                            {"u": int(image["id"])}).scalar() == 0
    expect_error(gce.machineImages().get(project=PROJECT, machineImage=image["name"]), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/global/machineImages/{image['name']}' was not found")


def test_list_and_set_labels(server, gce):
    vm = unique("milst")
    inst = make_instance(gce, vm)
    prefix = unique("mil")
    first, second = make_image(gce, inst, f"{prefix}-a"), make_image(gce, inst, f"{prefix}-b")
    out = gce.machineImages().list(project=PROJECT, filter=f"name eq {prefix}-.*").execute()
    assert out["kind"] == "compute#machineImageList"
    assert out["selfLink"] == link(server, f"projects/{PROJECT}/global/machineImages")
    assert [m["name"] for m in out["items"]] == [first["name"], second["name"]]
    page = gce.machineImages().list(project=PROJECT, filter=f"name eq {prefix}-.*", maxResults=1).execute()
    assert [m["name"] for m in page["items"]] == [first["name"]] and page["nextPageToken"]
    op = wait_op(gce, gce.machineImages().setLabels(project=PROJECT, resource=first["name"], body={
        "labels": {"env": "prod"}, "labelFingerprint": first["labelFingerprint"]}).execute())
    assert "error" not in op, op
    assert gce.machineImages().get(project=PROJECT, machineImage=first["name"]).execute()["labels"] == {"env": "prod"}
    expect_error(gce.machineImages().setLabels(project=PROJECT, resource=first["name"], body={
        "labels": {"x": "y"}, "labelFingerprint": first["labelFingerprint"]}), 412, "conditionNotMet")
    for image in (first, second):
        gce.machineImages().delete(project=PROJECT, machineImage=image["name"]).execute()
    delete_instance(gce, vm)


def test_instance_from_machine_image(server, gce):
    vm = unique("misrc")
    inst = make_instance(gce, vm, labels={"team": "web"}, metadata={"items": [{"key": "k", "value": "v"}]})
    image = make_image(gce, inst)
    clone = unique("miclone")
    op = gce.instances().insert(project=PROJECT, zone=OTHER_ZONE, body={
        "name": clone, "sourceMachineImage": f"global/machineImages/{image['name']}",
        "labels": {"team": "api"}}).execute()
    done = wait_op(gce, op)
    assert "error" not in done, done
    got = gce.instances().get(project=PROJECT, zone=OTHER_ZONE, instance=clone).execute()
    assert got["status"] == "RUNNING"
    assert got["sourceMachineImage"] == image["selfLink"]
    assert got["machineType"].endswith(f"/zones/{OTHER_ZONE}/machineTypes/e2-small")
    assert got["labels"] == {"team": "api"}  # the request's field over the image's
    assert got["metadata"]["items"] == [{"key": "k", "value": "v"}]
    assert got["networkInterfaces"][0]["networkIP"] != inst["networkInterfaces"][0]["networkIP"]
    assert got["networkInterfaces"][0]["accessConfigs"][0]["natIP"] != inst["networkInterfaces"][0][
        "accessConfigs"][0]["natIP"]
    assert [(d["deviceName"], d["boot"], d["diskSizeGb"], d["autoDelete"]) for d in got["disks"]] == [
        (vm, True, "12", True), ("data", False, "20", True)]
    boot = gce.disks().get(project=PROJECT, zone=OTHER_ZONE, disk=clone).execute()
    data = gce.disks().get(project=PROJECT, zone=OTHER_ZONE, disk=f"{clone}-1").execute()
    assert boot["status"] == "READY" and boot["sourceMachineImage"] == image["selfLink"]
    assert boot["sourceMachineImageId"] == image["id"] and boot["sourceMachineImageDiskDeviceName"] == vm
    assert data["type"].endswith("/diskTypes/pd-ssd") and data["sizeGb"] == "20"
    assert boot["licenses"] == gce.disks().get(project=PROJECT, zone=ZONE, disk=vm).execute()["licenses"]
    # The query parameter form, and the request's own disks instead of the image's.
    other = unique("miown")
    op = gce.instances().insert(project=PROJECT, zone=ZONE, sourceMachineImage=image["selfLink"], body={
        "name": other, "disks": [{"boot": True, "autoDelete": True,
                                  "initializeParams": {"sourceImage": FAMILY}}]}).execute()
    assert "error" not in wait_op(gce, op)
    own = gce.instances().get(project=PROJECT, zone=ZONE, instance=other).execute()
    assert [d["deviceName"] for d in own["disks"]] == [other] and own["labels"] == {"team": "web"}
    for zone, name in ((OTHER_ZONE, clone), (ZONE, other), (ZONE, vm)):
        delete_instance(gce, name, zone=zone)
    gce.machineImages().delete(project=PROJECT, machineImage=image["name"]).execute()


def test_bad_requests_change_nothing(server, gce):
    vm = unique("mibad")
    inst = make_instance(gce, vm)
    before = names(gce)
    bad = unique("mib")
    expect_error(gce.machineImages().insert(project=PROJECT, body={"name": bad}), 400, "required",
                 "Required field 'resource.sourceInstance' not specified")
    expect_error(gce.machineImages().insert(project=PROJECT, body={"sourceInstance": inst["selfLink"]}), 400,
                 "required", "Required field 'resource.name' not specified")
    expect_error(gce.machineImages().insert(project=PROJECT, body={
        "name": bad, "sourceInstance": f"zones/{ZONE}/instances/no-such-vm"}), 404, "notFound",
        f"The resource 'projects/{PROJECT}/zones/{ZONE}/instances/no-such-vm' was not found")
    expect_error(gce.machineImages().insert(project=PROJECT, body={
        "name": bad, "sourceInstance": "global/networks/default"}), 400, "invalid")
    expect_error(gce.machineImages().insert(project=PROJECT, body={"name": "Bad_Name",
                                                                   "sourceInstance": inst["selfLink"]}), 400, "invalid")
    expect_error(gce.machineImages().insert(project=PROJECT, body={
        "name": bad, "sourceInstance": inst["selfLink"], "machineImageEncryptionKey": {"rawKey": "a2V5"}}), 400,
        "invalid", "Invalid value for field 'resource.machineImageEncryptionKey': ''. Customer-supplied encryption "
        "keys are not supported.")
    image = make_image(gce, inst)
    expect_error(gce.machineImages().insert(project=PROJECT, body={
        "name": image["name"], "sourceInstance": inst["selfLink"]}), 409, "alreadyExists",
        f"The resource 'projects/{PROJECT}/global/machineImages/{image['name']}' already exists")
    assert sorted(names(gce)) == sorted([*before, image["name"]])
    # An instance from a missing image, or whose disks would clash, is not made.
    clone = unique("micl")
    expect_error(gce.instances().insert(project=PROJECT, zone=ZONE, body={
        "name": clone, "sourceMachineImage": "global/machineImages/no-such-image"}), 404, "notFound",
        f"The resource 'projects/{PROJECT}/global/machineImages/no-such-image' was not found")
    expect_error(gce.instances().insert(project=PROJECT, zone=ZONE, body={
        "name": vm, "sourceMachineImage": image["selfLink"]}), 409, "alreadyExists",
        f"The resource 'projects/{PROJECT}/zones/{ZONE}/instances/{vm}' already exists")
    listed = gce.instances().list(project=PROJECT, zone=ZONE, filter=f"name eq {clone}").execute()
    assert not listed.get("items")
    expect_error(gce.disks().get(project=PROJECT, zone=ZONE, disk=clone), 404, "notFound")
    gce.machineImages().delete(project=PROJECT, machineImage=image["name"]).execute()
    delete_instance(gce, vm)


def test_machine_images_quota(server):
    project, client = fresh_project(server, "miquota")
    server.admin("project", "set-quota", "--project", project, "--metric", "MACHINE_IMAGES", "--limit", "1")
    inst = make_instance(client, unique("miq"), project=project)
    make_image(client, inst, project=project)
    expect_error(client.machineImages().insert(project=project, body={
        "name": unique("mi"), "sourceInstance": inst["selfLink"]}), 403, "quotaExceeded",
        "Quota 'MACHINE_IMAGES' exceeded.  Limit: 1.0 globally.")
    quotas = {q["metric"]: (q["limit"], q["usage"]) for q in client.projects().get(project=project).execute()["quotas"]}
    assert quotas["MACHINE_IMAGES"] == (1.0, 1.0)
    assert len(names(client, project)) == 1
