"""regionInstances.bulkInsert (SQLite and PostgreSQL) with google-api-python-client: the zones are
chosen per the locationPolicy (DENY, targetShape BALANCED / ANY_SINGLE_ZONE / ANY), one regional
bulkInsert Operation with a status per zone, the instances' insert Operations in their zones; bad
policies refused with nothing made."""

from __future__ import annotations

from collections import Counter

from tests.conftest import PROJECT, unique, wait_op
from tests.helpers.compute import expect_error

REGION = "us-central1"
ZONES = ("us-central1-a", "us-central1-b", "us-central1-c")
FAMILY = "projects/debian-cloud/global/images/family/debian-12"
FIELD = "bulkInsertInstanceResource"


def props(machine_type: str = "e2-micro") -> dict:
    return {"machineType": machine_type, "networkInterfaces": [{"network": "global/networks/default"}],
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}]}


def bulk(gce, body: dict):
    return gce.regionInstances().bulkInsert(project=PROJECT, region=REGION, body=body)


def made(gce, prefix: str) -> dict[str, str]:
    """{instance: zone} of the instances named with ``prefix``."""
    agg = gce.instances().aggregatedList(project=PROJECT, filter=f"name eq {prefix}.*").execute()["items"]
    return {i["name"]: scope.split("/")[1] for scope, v in agg.items() for i in v.get("instances", [])}


def delete_all(gce, where: dict[str, str]) -> None:
    for name, zone in where.items():
        wait_op(gce, gce.instances().delete(project=PROJECT, zone=zone, instance=name).execute())


def test_balanced_over_the_allowed_zones(gce):
    prefix = unique("rbb")
    op = bulk(gce, {"count": "4", "namePattern": f"{prefix}-##", "instanceProperties": props(),
                    "locationPolicy": {"targetShape": "BALANCED",
                                       "locations": {"zones/us-central1-c": {"preference": "DENY"}}}}).execute()
    assert op["operationType"] == "bulkInsert" and op["region"].endswith(f"/regions/{REGION}")
    assert op["operationGroupId"]
    done = wait_op(gce, op)
    assert "error" not in done, done
    per = done["instancesBulkInsertOperationMetadata"]["perLocationStatus"]
    assert per == {f"zones/{z}": {"createdVmCount": 2, "deletedVmCount": 0, "failedToCreateVmCount": 0,
                                  "status": "DONE", "targetVmCount": 2} for z in ZONES[:2]}
    where = made(gce, prefix)
    assert sorted(where) == [f"{prefix}-0{i}" for i in range(1, 5)]
    assert Counter(where.values()) == {"us-central1-a": 2, "us-central1-b": 2}
    for name, zone in where.items():
        assert gce.instances().get(project=PROJECT, zone=zone, instance=name).execute()["status"] == "RUNNING"
    # gcloud counts the insert Operations of the group in each zone of the region
    group = done["operationGroupId"]
    inserts = [o for z in ZONES for o in gce.zoneOperations().list(
        project=PROJECT, zone=z, filter=f'operationGroupId eq ".*\\b{group}\\b.*"').execute().get("items", [])
        if o["operationType"] == "insert"]
    assert len(inserts) == 4 and all(o["status"] == "DONE" and "error" not in o for o in inserts)
    delete_all(gce, where)


def test_single_zone_and_any(gce):
    prefix = unique("rbs")
    done = wait_op(gce, bulk(gce, {"count": "3", "namePattern": f"{prefix}-#", "instanceProperties": props(),
                                   "locationPolicy": {"targetShape": "ANY_SINGLE_ZONE"}}).execute())
    assert "error" not in done, done
    where = made(gce, prefix)
    assert len(where) == 3 and len(set(where.values())) == 1
    (zone,) = set(where.values())
    assert list(done["instancesBulkInsertOperationMetadata"]["perLocationStatus"]) == [f"zones/{zone}"]
    delete_all(gce, where)
    # ANY with every zone but one denied: all in that zone (written as a full URL, too)
    prefix = unique("rba")
    done = wait_op(gce, bulk(gce, {"count": "2", "namePattern": f"{prefix}-#", "instanceProperties": props(),
                                   "locationPolicy": {"locations": {
                                       "zones/us-central1-a": {"preference": "DENY"},
                                       f"projects/{PROJECT}/zones/us-central1-b": {"preference": "DENY"}}}}).execute())
    assert "error" not in done, done
    where = made(gce, prefix)
    assert set(where.values()) == {"us-central1-c"} and len(where) == 2
    delete_all(gce, where)


def test_bad_location_policies_make_nothing(gce):
    prefix = unique("rbx")
    base = {"count": "2", "namePattern": f"{prefix}-#", "instanceProperties": props()}
    expect_error(bulk(gce, {**base, "locationPolicy": {"locations": {"zones/europe-west1-b": {"preference": "ALLOW"}}}}),
                 400, "invalid")
    expect_error(bulk(gce, {**base, "locationPolicy": {"targetShape": "SOMEWHERE"}}), 400, "invalid",
                 "Invalid value at 'resource.locationPolicy.targetShape' "
                 '(type.googleapis.com/google.cloud.compute.v1.LocationPolicy.TargetShape), "SOMEWHERE"')
    expect_error(bulk(gce, {**base, "locationPolicy": {"locations": {
        f"zones/{z}": {"preference": "DENY"} for z in ZONES}}}), 400, "invalid",
        f"Invalid value for field '{FIELD}.locationPolicy.locations': ''. No zone of region '{REGION}' is allowed "
        "by the location policy.")
    expect_error(bulk(gce, {**base, "count": "0"}), 400, "invalid")
    expect_error(gce.regionInstances().bulkInsert(project=PROJECT, region="mars-north1", body=base), 404, "notFound")
    assert made(gce, prefix) == {}
