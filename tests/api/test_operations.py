"""zoneOperations, regionOperations, globalOperations end to end, and requestId idempotency."""

from __future__ import annotations

import uuid

import pytest
import requests
from google.api_core import exceptions as core_exceptions
from google.cloud import compute_v1
from googleapiclient.errors import HttpError

from tests.conftest import PROJECT, ZONE, error_of, unique, wait_op

REGION = "us-central1"


@pytest.fixture(scope="module")
def zone_op(server) -> dict:
    """A finished disks.insert operation."""
    gce = server.gce()
    op = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": unique("opd"), "sizeGb": "10"}).execute()
    return wait_op(gce, op)


@pytest.fixture(scope="module")
def global_op(server) -> dict:
    """A finished projects.setCommonInstanceMetadata operation (keeps the existing items)."""
    gce = server.gce()
    meta = gce.projects().get(project=PROJECT).execute()["commonInstanceMetadata"]
    items = [i for i in meta.get("items", []) if i["key"] != "ops-test"]
    op = gce.projects().setCommonInstanceMetadata(project=PROJECT, body={
        "fingerprint": meta["fingerprint"], "items": [*items, {"key": "ops-test", "value": unique("v")}]}).execute()
    assert "zone" not in op and "region" not in op
    assert op["operationType"] == "setMetadata"
    return wait_op(gce, op)


def test_zone_operation_shape(server, zone_op):
    op = zone_op
    assert op["kind"] == "compute#operation"
    assert op["status"] == "DONE" and op["progress"] == 100
    assert op["operationType"] == "insert"
    assert op["id"].isdigit() and op["targetId"].isdigit()
    assert op["zone"] == f"{server.api}projects/{PROJECT}/zones/{ZONE}"
    assert op["selfLink"] == f"{server.api}projects/{PROJECT}/zones/{ZONE}/operations/{op['name']}"
    assert "selfLinkWithId" not in op and "creationTimestamp" not in op  # not in the Operation schema's output
    for key in ("insertTime", "startTime", "endTime"):
        assert op[key][:4].isdigit() and op[key][10] == "T"
    assert "error" not in op and "clientOperationId" not in op


def test_zone_operation_get_by_name_and_id(server, zone_op):
    gce = server.gce()
    by_name = gce.zoneOperations().get(project=PROJECT, zone=ZONE, operation=zone_op["name"]).execute()
    by_id = gce.zoneOperations().get(project=PROJECT, zone=ZONE, operation=zone_op["id"]).execute()
    assert by_name == by_id
    assert by_name["name"] == zone_op["name"] and by_name["status"] == "DONE"


def test_zone_operation_not_found(server):
    gce = server.gce()
    for name in ("operation-0-nope", "12345", "99999999999999999999999", "18446744073709551615"):
        with pytest.raises(HttpError) as e:
            gce.zoneOperations().get(project=PROJECT, zone=ZONE, operation=name).execute()
        assert e.value.resp.status == 404
        assert error_of(e.value)["message"] == (
            f"The resource 'projects/{PROJECT}/zones/{ZONE}/operations/{name}' was not found")


def test_operation_in_other_scope_is_404(server, zone_op):
    gce = server.gce()
    with pytest.raises(HttpError) as e:
        gce.zoneOperations().get(project=PROJECT, zone="us-central1-b", operation=zone_op["name"]).execute()
    assert e.value.resp.status == 404
    with pytest.raises(HttpError) as e:
        gce.globalOperations().get(project=PROJECT, operation=zone_op["name"]).execute()
    assert e.value.resp.status == 404


def test_zone_operations_list(server, zone_op):
    gce = server.gce()
    for _ in range(2):  # at least three operations in the zone
        wait_op(gce, gce.disks().insert(project=PROJECT, zone=ZONE,
                                        body={"name": unique("opl"), "sizeGb": "10"}).execute())
    resp = gce.zoneOperations().list(project=PROJECT, zone=ZONE, filter=f"name = {zone_op['name']}").execute()
    assert resp["kind"] == "compute#operationList"
    assert resp["id"] == f"projects/{PROJECT}/zones/{ZONE}/operations"
    assert resp["selfLink"] == f"{server.api}projects/{PROJECT}/zones/{ZONE}/operations"
    assert [o["name"] for o in resp["items"]] == [zone_op["name"]]
    assert resp["items"][0]["id"] == zone_op["id"]
    newest = gce.zoneOperations().list(project=PROJECT, zone=ZONE, orderBy="creationTimestamp desc",
                                       maxResults=2).execute()
    times = [o["insertTime"] for o in newest["items"]]
    assert times == sorted(times, reverse=True)
    assert newest["nextPageToken"]
    page2 = gce.zoneOperations().list(project=PROJECT, zone=ZONE, orderBy="creationTimestamp desc", maxResults=2,
                                      pageToken=newest["nextPageToken"]).execute()
    assert not {o["name"] for o in page2["items"]} & {o["name"] for o in newest["items"]}
    by_name = gce.zoneOperations().list(project=PROJECT, zone=ZONE, maxResults=3).execute()
    names = [o["name"] for o in by_name["items"]]
    assert names == sorted(names)
    legacy = gce.zoneOperations().list(project=PROJECT, zone=ZONE,
                                       filter=f"(operationType eq insert) (name eq {zone_op['name']})").execute()
    assert [o["name"] for o in legacy["items"]] == [zone_op["name"]]


def test_zone_operation_wait(server, zone_op):
    gce = server.gce()
    op = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": unique("opw"), "sizeGb": "10"}).execute()
    waited = gce.zoneOperations().wait(project=PROJECT, zone=ZONE, operation=op["name"]).execute()
    assert waited["status"] == "DONE"
    assert waited["name"] == op["name"]
    assert "endTime" in waited
    again = gce.zoneOperations().wait(project=PROJECT, zone=ZONE, operation=zone_op["id"]).execute()
    assert again["name"] == zone_op["name"] and again["status"] == "DONE"


def test_zone_operation_delete(server):
    gce = server.gce()
    op = wait_op(gce, gce.disks().insert(project=PROJECT, zone=ZONE,
                                         body={"name": unique("opdel"), "sizeGb": "10"}).execute())
    r = requests.delete(op["selfLink"], headers={"Authorization": "Bearer " + server.token()})
    assert r.status_code == 204
    assert r.content == b""
    with pytest.raises(HttpError) as e:
        gce.zoneOperations().get(project=PROJECT, zone=ZONE, operation=op["name"]).execute()
    assert e.value.resp.status == 404
    with pytest.raises(HttpError) as e:
        gce.zoneOperations().delete(project=PROJECT, zone=ZONE, operation=op["name"]).execute()
    assert e.value.resp.status == 404


def test_zone_operation_delete_through_client(server):
    gce = server.gce()
    op = wait_op(gce, gce.disks().insert(project=PROJECT, zone=ZONE,
                                         body={"name": unique("opdel"), "sizeGb": "10"}).execute())
    assert gce.zoneOperations().delete(project=PROJECT, zone=ZONE, operation=op["id"]).execute() in ("", {}, None)
    with pytest.raises(HttpError) as e:
        gce.zoneOperations().wait(project=PROJECT, zone=ZONE, operation=op["name"]).execute()
    assert e.value.resp.status == 404


def test_global_operations(server, global_op):
    gce = server.gce()
    op = global_op
    assert op["status"] == "DONE"
    assert op["selfLink"] == f"{server.api}projects/{PROJECT}/global/operations/{op['name']}"
    assert op["targetLink"] == f"{server.api}projects/{PROJECT}"
    got = gce.globalOperations().get(project=PROJECT, operation=op["name"]).execute()
    assert got["name"] == op["name"] and got["operationType"] == "setMetadata"
    assert gce.globalOperations().get(project=PROJECT, operation=op["id"]).execute()["name"] == op["name"]
    waited = gce.globalOperations().wait(project=PROJECT, operation=op["name"]).execute()
    assert waited["status"] == "DONE"
    lst = gce.globalOperations().list(project=PROJECT, filter=f"name = {op['name']}").execute()
    assert lst["kind"] == "compute#operationList"
    assert lst["id"] == f"projects/{PROJECT}/global/operations"
    assert [o["name"] for o in lst["items"]] == [op["name"]]
    assert all("zone" not in o and "region" not in o for o in
               gce.globalOperations().list(project=PROJECT).execute().get("items", []))


def test_region_operations_list_empty(server):
    gce = server.gce()
    resp = gce.regionOperations().list(project=PROJECT, region="europe-west1",
                                       filter=f"name = {unique('operation')}").execute()
    assert resp["kind"] == "compute#operationList"
    assert resp["id"] == f"projects/{PROJECT}/regions/europe-west1/operations"
    assert resp["selfLink"] == f"{server.api}projects/{PROJECT}/regions/europe-west1/operations"
    assert "items" not in resp and "nextPageToken" not in resp
    resp = gce.regionOperations().list(project=PROJECT, region=REGION).execute()
    assert resp["kind"] == "compute#operationList"
    assert all(o["region"].endswith(f"/regions/{REGION}") for o in resp.get("items", []))
    with pytest.raises(HttpError) as e:
        gce.regionOperations().get(project=PROJECT, region=REGION, operation="operation-0-nope").execute()
    assert e.value.resp.status == 404
    with pytest.raises(HttpError) as e:
        gce.regionOperations().list(project=PROJECT, region="nowhere1").execute()
    assert e.value.resp.status == 404


def test_global_operations_aggregated(server, zone_op, global_op):
    gce = server.gce()
    resp = gce.globalOperations().aggregatedList(project=PROJECT).execute()
    assert resp["kind"] == "compute#operationAggregatedList"
    assert resp["id"] == f"projects/{PROJECT}/aggregated/operations"
    keys = set(resp["items"])
    assert "global" in keys
    assert {f"zones/{ZONE}", "zones/us-central1-b", "zones/europe-west1-b"} <= keys
    assert {f"regions/{REGION}", "regions/europe-west1"} <= keys
    assert resp["items"][f"zones/{ZONE}"]["operations"] and resp["items"]["global"]["operations"]
    assert resp["unreachables"] == []
    empty = resp["items"]["regions/europe-west1"]
    assert empty["warning"]["code"] == "NO_RESULTS_ON_PAGE"
    # paging walks every scope; the two operations show up exactly once (the shared server may hold
    # more than a first page's 500 by now, so they are looked for on every page)
    seen = []
    token = None
    for _ in range(200):
        page = gce.globalOperations().aggregatedList(project=PROJECT, maxResults=50, pageToken=token).execute()
        assert "global" in page["items"]
        seen += [o["name"] for s in page["items"].values() for o in s.get("operations", [])]
        token = page.get("nextPageToken")
        if not token:
            break
    assert len(seen) == len(set(seen))
    assert {zone_op["name"], global_op["name"]} <= set(seen)


def test_aggregated_operations_fields(server, zone_op):
    gce = server.gce()
    resp = gce.globalOperations().aggregatedList(project=PROJECT, filter=f"name = {zone_op['name']}",
                                                 fields="items/*/operations(name,status)").execute()
    assert resp == {"items": {f"zones/{ZONE}": {"operations": [{"name": zone_op["name"], "status": "DONE"}]}}}


def test_cloud_compute_client_parses_operations(server, zone_op, global_op):
    client = server.compute(compute_v1.ZoneOperationsClient)
    op = client.get(project=PROJECT, zone=ZONE, operation=zone_op["name"])
    assert isinstance(op, compute_v1.Operation)
    assert op.name == zone_op["name"]
    assert op.status == compute_v1.Operation.Status.DONE
    assert op.id == int(zone_op["id"])
    assert op.progress == 100
    assert op.zone.endswith(f"/zones/{ZONE}")
    assert op.operation_type == "insert"
    waited = client.wait(project=PROJECT, zone=ZONE, operation=zone_op["name"])
    assert waited.status == compute_v1.Operation.Status.DONE
    names = [o.name for o in client.list(request=compute_v1.ListZoneOperationsRequest(
        project=PROJECT, zone=ZONE, filter=f"name = {zone_op['name']}"))]
    assert names == [zone_op["name"]]
    with pytest.raises(core_exceptions.NotFound):
        client.get(project=PROJECT, zone=ZONE, operation="operation-0-nope")
    gclient = server.compute(compute_v1.GlobalOperationsClient)
    assert gclient.get(project=PROJECT, operation=global_op["name"]).operation_type == "setMetadata"
    agg = dict(gclient.aggregated_list(project=PROJECT))
    assert "global" in agg and f"zones/{ZONE}" in agg


def test_cloud_compute_extended_operation(server):
    disks = server.compute(compute_v1.DisksClient)
    # google-cloud-compute polls extended operations with a ZoneOperationsClient it builds itself, on the
    # default endpoint (it ignores client_options); hand it one pointed at gstack.
    disks._transport._extended_operations_services["zone_operations"] = server.compute(
        compute_v1.ZoneOperationsClient)
    name = unique("opext")
    ext = disks.insert(project=PROJECT, zone=ZONE, disk_resource=compute_v1.Disk(name=name, size_gb=10))
    ext.result(timeout=60)
    assert ext.done() and not ext.error_code
    assert disks.get(project=PROJECT, zone=ZONE, disk=name).status == "READY"


def test_request_id_is_idempotent(server):
    gce = server.gce()
    name = unique("opreq")
    rid = str(uuid.uuid4())
    first = gce.disks().insert(project=PROJECT, zone=ZONE, requestId=rid,
                               body={"name": name, "sizeGb": "10"}).execute()
    assert first["clientOperationId"] == rid
    second = gce.disks().insert(project=PROJECT, zone=ZONE, requestId=rid,
                                body={"name": name, "sizeGb": "10"}).execute()
    assert second["name"] == first["name"] and second["id"] == first["id"]
    done = wait_op(gce, first)
    assert "error" not in done
    third = gce.disks().insert(project=PROJECT, zone=ZONE, requestId=rid.upper(),
                               body={"name": name, "sizeGb": "10"}).execute()
    assert third["name"] == first["name"] and third["status"] == "DONE"
    listed = gce.disks().list(project=PROJECT, zone=ZONE, filter=f"name = {name}").execute()
    assert len(listed["items"]) == 1
    # without a requestId the same insert is a conflict
    with pytest.raises(HttpError) as e:
        gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name, "sizeGb": "10"}).execute()
    assert e.value.resp.status == 409
    assert error_of(e.value)["errors"][0]["reason"] == "alreadyExists"


def test_request_id_is_per_request(server):
    """A requestId reused for another resource returns the first operation, not a second disk."""
    gce = server.gce()
    rid = str(uuid.uuid4())
    a, b = unique("opra"), unique("oprb")
    first = gce.disks().insert(project=PROJECT, zone=ZONE, requestId=rid, body={"name": a, "sizeGb": "10"}).execute()
    second = gce.disks().insert(project=PROJECT, zone=ZONE, requestId=rid, body={"name": b, "sizeGb": "10"}).execute()
    assert second["id"] == first["id"]
    wait_op(gce, first)
    assert "items" not in gce.disks().list(project=PROJECT, zone=ZONE, filter=f"name = {b}").execute()


def test_filters_on_status_and_name_give_what_the_whole_list_holds(server, zone_op):
    """Filters on an Operation's status and name are narrowed in the database (its columns, not the
    terms index), negations of a status too: each answers what a test of every Operation of the
    list gives."""
    gce = server.gce()

    def listed(flt: str | None = None) -> list[dict]:
        items, token = [], None
        while True:
            page = gce.zoneOperations().list(project=PROJECT, zone=ZONE, filter=flt, maxResults=50,
                                             pageToken=token).execute()
            items += page.get("items", [])
            token = page.get("nextPageToken")
            if not token:
                return items

    everything = listed()
    prefix = zone_op["name"][:14]
    cases = {
        "status = DONE": lambda op: op["status"] == "DONE",
        "(status = RUNNING) OR (status = PENDING)": lambda op: op["status"] in ("RUNNING", "PENDING"),
        "status eq D.*": lambda op: op["status"] == "DONE",
        "status != DONE": lambda op: op["status"] != "DONE",
        "status != RUNNING": lambda op: op["status"] != "RUNNING",
        "status ne R.*": lambda op: not op["status"].startswith("R"),
        f"name = {zone_op['name']}": lambda op: op["name"] == zone_op["name"],
        f"name eq {prefix}.*": lambda op: op["name"].startswith(prefix),
        f"(name eq {prefix}.*) (status eq DONE)": lambda op: op["name"].startswith(prefix) and op["status"] == "DONE",
    }
    assert zone_op["name"] in {op["name"] for op in everything}
    for flt, matches in cases.items():
        assert [op["name"] for op in listed(flt)] == [op["name"] for op in everything if matches(op)], flt
    assert listed("status != RUNNING")  # a negation that matches
