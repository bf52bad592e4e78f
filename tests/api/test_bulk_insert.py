"""instances.bulkInsert, driven by google-api-python-client on SQLite and PostgreSQL.

Every test names its instances uniquely: the server is shared by the whole session.
"""

from __future__ import annotations

import pytest

from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.compute import expect_error, fresh_project

FAMILY = "projects/debian-cloud/global/images/family/debian-12"
FIELD = "bulkInsertInstanceResource"


def props(machine_type: str = "e2-micro") -> dict:
    return {"machineType": machine_type, "networkInterfaces": [{"network": "global/networks/default"}],
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}]}


def bulk(gce, body: dict, project: str = PROJECT) -> dict:
    return gce.instances().bulkInsert(project=project, zone=ZONE, body=body).execute()


def names(gce, prefix: str, project: str = PROJECT) -> list[str]:
    items = gce.instances().list(project=project, zone=ZONE, filter=f"name eq {prefix}.*").execute()
    return sorted(i["name"] for i in items.get("items", []))


def status(op: dict) -> dict:
    return op["instancesBulkInsertOperationMetadata"]["perLocationStatus"][f"zones/{ZONE}"]


def test_name_pattern_numbers_after_the_largest(gce):
    prefix = unique("bk")
    op = bulk(gce, {"count": "2", "namePattern": f"{prefix}-####", "instanceProperties": props()})
    assert op["operationType"] == "bulkInsert" and op["operationGroupId"]
    assert status(op) == {"createdVmCount": 0, "deletedVmCount": 0, "failedToCreateVmCount": 0,
                          "status": "CREATING", "targetVmCount": 2}
    done = wait_op(gce, op)
    assert "error" not in done, done
    assert status(done) == {"createdVmCount": 2, "deletedVmCount": 0, "failedToCreateVmCount": 0,
                            "status": "DONE", "targetVmCount": 2}
    assert names(gce, prefix) == [f"{prefix}-0001", f"{prefix}-0002"]
    for name in names(gce, prefix):
        assert gce.instances().get(project=PROJECT, zone=ZONE, instance=name).execute()["status"] == "RUNNING"
    # gcloud counts the group's insert Operations, listing them by operationGroupId
    group = gce.zoneOperations().list(project=PROJECT, zone=ZONE,
                                      filter=f'operationGroupId eq ".*\\b{done["operationGroupId"]}\\b.*"').execute()
    kinds = sorted((o["operationType"], o["status"], "error" in o) for o in group["items"])
    assert kinds == [("bulkInsert", "DONE", False), ("insert", "DONE", False), ("insert", "DONE", False)]

    # numbering goes on after the largest number taken, not into the gaps
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=f"{prefix}-0001").execute())
    done = wait_op(gce, bulk(gce, {"count": "2", "namePattern": f"{prefix}-####", "instanceProperties": props()}))
    assert names(gce, prefix) == [f"{prefix}-0002", f"{prefix}-0003", f"{prefix}-0004"]


def test_per_instance_properties_and_a_template(gce):
    template = unique("bkt")
    wait_op(gce, gce.instanceTemplates().insert(project=PROJECT, body={
        "name": template, "properties": {**props("e2-small"), "labels": {"from": "template"}}}).execute())
    a, b, prefix = unique("bka"), unique("bkb"), unique("bkp")
    body = {"count": "3", "namePattern": f"{prefix}-##", "sourceInstanceTemplate": f"global/instanceTemplates/{template}",
            "instanceProperties": {"labels": {"from": "bulk"}},
            "perInstanceProperties": {a: {"hostname": f"{a}.example.internal"}, b: {}}}
    done = wait_op(gce, bulk(gce, body))
    assert "error" not in done and status(done)["createdVmCount"] == 3
    made = {n: gce.instances().get(project=PROJECT, zone=ZONE, instance=n).execute() for n in (a, b, f"{prefix}-01")}
    for inst in made.values():
        assert inst["machineType"].endswith("/machineTypes/e2-small")
        assert inst["labels"] == {"from": "bulk"}
        assert inst["status"] == "RUNNING"
    assert made[a]["hostname"] == f"{a}.example.internal"
    assert names(gce, prefix) == [f"{prefix}-01"]


def test_min_count_against_quota(server):
    project, g = fresh_project(server, "bulkquota")
    server.admin("project", "set-quota", "--project", project, "--region", "us-central1",
                 "--metric", "CPUS", "--limit", "4")
    # e2-small holds 2 vCPUs: two of three fit. minCount 3 refuses the whole request, leaving nothing.
    body = {"count": "3", "namePattern": "q-#", "instanceProperties": props("e2-small")}
    expect_error(g.instances().bulkInsert(project=project, zone=ZONE, body=body), 403, "quotaExceeded",
                 "Quota 'CPUS' exceeded.  Limit: 4.0 in region us-central1.")
    assert names(g, "q-", project) == []
    ops = g.zoneOperations().list(project=project, zone=ZONE).execute()
    assert "items" not in ops
    # minCount 2: partial success, the third counted as failed
    done = wait_op(g, bulk(g, {**body, "minCount": "2"}, project))
    assert "error" not in done
    assert status(done) == {"createdVmCount": 2, "deletedVmCount": 0, "failedToCreateVmCount": 1,
                            "status": "DONE", "targetVmCount": 3}
    assert names(g, "q-", project) == ["q-1", "q-2"]


def test_min_count_not_met_at_placement_rolls_back(gce):
    prefix = unique("bkx")
    # 144 GB of memory: within quota, more than any simulated host has, so every placement fails
    done = wait_op(gce, bulk(gce, {"count": "2", "minCount": "1", "namePattern": f"{prefix}-#",
                                   "instanceProperties": props("n2-custom-18-147456")}))
    assert done["error"]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert done["httpErrorStatusCode"] == 503
    assert status(done) == {"createdVmCount": 0, "deletedVmCount": 0, "failedToCreateVmCount": 2,
                            "status": "DONE", "targetVmCount": 2}
    assert names(gce, prefix) == []


@pytest.mark.parametrize(("extra", "message"), [
    ({"count": None}, f"Required field '{FIELD}.count' not specified"),
    ({"count": "0"}, f"Invalid value for field '{FIELD}.count': '0'. Count must be greater than 0."),
    ({"minCount": "4"}, f"Invalid value for field '{FIELD}.minCount': '4'. "
                        "Min count must be less than or equal to count."),
    ({"namePattern": None}, "Either namePattern or perInstanceProperties must be specified."),
    ({"namePattern": "vm-##-##"}, f"Invalid value for field '{FIELD}.namePattern': 'vm-##-##'. "
                                  "The name pattern must contain one continuous sequence of at most 18 '#' characters."),
    ({"namePattern": "vm-#", "count": "10"}, f"Invalid value for field '{FIELD}.namePattern': 'vm-#'. "
                                             "The name pattern cannot generate 10 more instance names."),
    ({"instanceProperties": None}, "Either instanceProperties or sourceInstanceTemplate must be specified."),
    ({"instanceProperties": props("no-such-type")}, None),
])
def test_bad_requests_create_nothing(gce, extra, message):
    prefix = unique("bkbad")
    body = {"count": "3", "namePattern": f"{prefix}-#", "instanceProperties": props(), **extra}
    body = {k: v for k, v in body.items() if v is not None}
    if body.get("namePattern") == "vm-#":
        body["namePattern"] = f"{prefix}-#"
        message = message.replace("vm-#", f"{prefix}-#")
    err = expect_error(gce.instances().bulkInsert(project=PROJECT, zone=ZONE, body=body), 400 if message else 404,
                       "required" if extra.get("count", "") is None else ("invalid" if message else "notFound"),
                       message)
    assert err
    assert names(gce, prefix) == []


def test_a_taken_per_instance_name_refuses_everything(gce):
    taken, prefix = unique("bkt"), unique("bkn")
    wait_op(gce, bulk(gce, {"count": "1", "perInstanceProperties": {taken: {}}, "instanceProperties": props()}))
    expect_error(gce.instances().bulkInsert(project=PROJECT, zone=ZONE, body={
        "count": "2", "namePattern": f"{prefix}-#", "perInstanceProperties": {taken: {}},
        "instanceProperties": props()}), 409, "alreadyExists",
        f"The resource 'projects/{PROJECT}/zones/{ZONE}/instances/{taken}' already exists")
    assert names(gce, prefix) == []
