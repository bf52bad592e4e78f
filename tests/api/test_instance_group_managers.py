"""instanceGroupManagers (zonal managed instance groups): end to end against ``gstack serve`` (SQLite
and PostgreSQL) with google-api-python-client. The group's Operations end DONE at once and the
group converges after, so the tests wait for ``status.isStable``."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import text

from tests.conftest import BACKENDS, PROJECT, ZONE, running_server, unique, wait_op
from tests.helpers.compute import fresh_project
from tests.helpers.compute import group_template as template
from tests.helpers.managed_groups import create, delete, get, managed, managers, members, wait_stable
from tests.helpers.networks import fails

REGION = "us-central1"


def test_create_resize_list_and_delete(gce, server):
    name, base = create(gce, 2)
    group = wait_stable(gce, name)
    assert group["status"]["isStable"] and group["targetSize"] == 2
    assert group["currentActions"]["none"] == 2 and group["currentActions"]["creating"] == 0
    assert group["instanceGroup"].endswith(f"/projects/{PROJECT}/zones/{ZONE}/instanceGroups/{name}")
    assert group["baseInstanceName"] == base and group["instanceTemplate"] == group["versions"][0]["instanceTemplate"]
    items = managed(gce, name)
    assert len(items) == 2
    for item in items:
        assert re.fullmatch(rf"{base}-[a-z0-9]{{4}}", item["name"])
        assert (item["currentAction"], item["instanceStatus"]) == ("NONE", "RUNNING")
        assert item["version"]["instanceTemplate"] == group["instanceTemplate"]
        inst = gce.instances().get(project=PROJECT, zone=ZONE, instance=item["name"]).execute()
        assert inst["status"] == "RUNNING" and item["id"] == inst["id"]
    first = sorted(i["name"] for i in items)
    assert members(gce, name) == first
    assert gce.instanceGroups().get(project=PROJECT, zone=ZONE, instanceGroup=name).execute()["size"] == 2
    assert name in [g["name"] for g in managers(gce).list(project=PROJECT, zone=ZONE).execute()["items"]]
    agg = managers(gce).aggregatedList(project=PROJECT).execute()["items"][f"zones/{ZONE}"]
    assert name in [g["name"] for g in agg["instanceGroupManagers"]]

    op = managers(gce).resize(project=PROJECT, zone=ZONE, instanceGroupManager=name, size=3).execute()
    assert op["operationType"] == "compute.instanceGroupManagers.resize" and op["status"] == "DONE"
    assert wait_stable(gce, name)["currentActions"]["none"] == 3
    names = sorted(i["name"] for i in managed(gce, name))
    assert len(names) == 3 and set(first) < set(names) and members(gce, name) == names

    managers(gce).resize(project=PROJECT, zone=ZONE, instanceGroupManager=name, size=1).execute()
    group = wait_stable(gce, name)
    assert group["status"]["isStable"] and group["targetSize"] == 1
    left = [i["name"] for i in managed(gce, name)]
    assert len(left) == 1 and members(gce, name) == left
    gone = set(names) - set(left)
    listed = {i["name"] for i in gce.instances().list(project=PROJECT, zone=ZONE).execute().get("items", [])}
    assert not gone & listed

    delete(gce, name)
    listed = {i["name"] for i in gce.instances().list(project=PROJECT, zone=ZONE).execute().get("items", [])}
    assert left[0] not in listed
    fails(managers(gce).get(project=PROJECT, zone=ZONE, instanceGroupManager=name), 404, "notFound")
    fails(gce.instanceGroups().get(project=PROJECT, zone=ZONE, instanceGroup=name), 404, "notFound")


def test_negative_size_is_refused_and_changes_nothing(gce):
    tpl = template(gce)
    name = unique("mig")
    body = {"name": name, "baseInstanceName": "web", "targetSize": -1, "instanceTemplate": f"global/instanceTemplates/{tpl}"}
    fails(managers(gce).insert(project=PROJECT, zone=ZONE, body=body), 400, "invalid",
          "Invalid value for field 'resource.targetSize': '-1'. Must be greater than or equal to 0")
    fails(managers(gce).get(project=PROJECT, zone=ZONE, instanceGroupManager=name), 404, "notFound")
    fails(gce.instanceGroups().get(project=PROJECT, zone=ZONE, instanceGroup=name), 404, "notFound")
    group, _ = create(gce, 0)
    assert get(gce, group)["status"]["isStable"]
    fails(managers(gce).resize(project=PROJECT, zone=ZONE, instanceGroupManager=group, size=-1), 400, "invalid",
          "Invalid value for field 'size': '-1'. Must be greater than or equal to 0")
    assert get(gce, group)["targetSize"] == 0
    # the group's instanceGroups resource goes with the group only
    fails(gce.instanceGroups().delete(project=PROJECT, zone=ZONE, instanceGroup=group), 400,
          "resourceInUseByAnotherResource",
          f"The instance_group resource 'projects/{PROJECT}/zones/{ZONE}/instanceGroups/{group}' is already being "
          f"used by 'projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/{group}'")
    # nor are its members changed directly: they follow the manager
    vm = unique("vm")
    op = gce.instances().insert(project=PROJECT, zone=ZONE, sourceInstanceTemplate=get(gce, group)["instanceTemplate"],
                                body={"name": vm}).execute()
    wait_op(gce, op)
    member = {"instances": [{"instance": f"zones/{ZONE}/instances/{vm}"}]}
    for change in (gce.instanceGroups().addInstances, gce.instanceGroups().removeInstances):
        fails(change(project=PROJECT, zone=ZONE, instanceGroup=group, body=member), 400,
              "resourceInUseByAnotherResource")
    assert gce.instanceGroups().get(project=PROJECT, zone=ZONE, instanceGroup=group).execute()["size"] == 0
    gce.instances().delete(project=PROJECT, zone=ZONE, instance=vm).execute()
    # the template a group uses cannot be deleted
    used = get(gce, group)["instanceTemplate"].rsplit("/", 1)[-1]
    fails(gce.instanceTemplates().delete(project=PROJECT, instanceTemplate=used), 400, "resourceInUseByAnotherResource")
    delete(gce, group)


def test_quota_refusal_shows_in_list_errors(server):
    project, gce = fresh_project(server, "migq")
    server.admin("project", "set-quota", "--project", project, "--region", REGION, "--metric", "INSTANCES",
                 "--limit", "1")
    name, _ = create(gce, 2, project)
    err = wait_errors(gce, name, project)[0]
    assert err["error"]["code"] == "QUOTA_EXCEEDED"
    assert err["error"]["message"] == f"Quota 'INSTANCES' exceeded.  Limit: 1.0 in region {REGION}."
    assert err["instanceActionDetails"]["action"] == "CREATING"
    group = get(gce, name, project)
    assert not group["status"]["isStable"] and group["currentActions"]["creating"] >= 1
    items = managed(gce, name, project)
    waiting = [i for i in items if "instanceStatus" not in i]
    assert len(items) == 2 and len(waiting) == 1 and waiting[0]["currentAction"] == "CREATING"
    assert waiting[0]["lastAttempt"]["errors"]["errors"][0]["code"] == "QUOTA_EXCEEDED"
    # room again: the group converges on its own
    server.admin("project", "set-quota", "--project", project, "--region", REGION, "--metric", "INSTANCES",
                 "--limit", "10")
    assert wait_stable(gce, name, project)["currentActions"]["none"] == 2
    delete(gce, name, project)


def test_delete_and_abandon_instances(gce, server):
    name, _ = create(gce, 3)
    wait_stable(gce, name)
    a, b, c = sorted(i["name"] for i in managed(gce, name))
    url = f"{server.api}projects/{PROJECT}/zones/{ZONE}/instances/"
    op = managers(gce).deleteInstances(project=PROJECT, zone=ZONE, instanceGroupManager=name,
                                       body={"instances": [url + a]}).execute()
    assert op["operationType"] == "compute.instanceGroupManagers.deleteInstances" and op["status"] == "DONE"
    group = wait_stable(gce, name)
    assert group["targetSize"] == 2 and sorted(i["name"] for i in managed(gce, name)) == [b, c]
    fails(gce.instances().get(project=PROJECT, zone=ZONE, instance=a), 404, "notFound")
    # an instance the group does not manage (any more) is refused, and nothing changes
    fails(managers(gce).abandonInstances(project=PROJECT, zone=ZONE, instanceGroupManager=name,
                                         body={"instances": [url + b, url + a]}), 400, "invalid")
    assert get(gce, name)["targetSize"] == 2 and members(gce, name) == [b, c]
    op = managers(gce).abandonInstances(project=PROJECT, zone=ZONE, instanceGroupManager=name,
                                        body={"instances": [f"zones/{ZONE}/instances/{b}"]}).execute()
    assert op["operationType"] == "compute.instanceGroupManagers.abandonInstances" and op["status"] == "DONE"
    group = wait_stable(gce, name)
    assert group["targetSize"] == 1 and [i["name"] for i in managed(gce, name)] == [c] and members(gce, name) == [c]
    delete(gce, name)
    assert gce.instances().get(project=PROJECT, zone=ZONE, instance=b).execute()["status"] == "RUNNING"
    fails(gce.instances().get(project=PROJECT, zone=ZONE, instance=c), 404, "notFound")
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=b).execute())


def wait_errors(gce, name: str, project: str = PROJECT) -> list[dict]:
    deadline = time.monotonic() + 30
    while True:
        errors = managers(gce).listErrors(project=project, zone=ZONE, instanceGroupManager=name).execute()
        if errors.get("items") or time.monotonic() > deadline:
            return errors.get("items", [])
        time.sleep(0.2)


@pytest.fixture(params=BACKENDS)
def own_server(request):
    with running_server(request.param) as server:
        yield server


def test_a_zone_without_room_leaves_the_group_unstable_until_there_is(own_server):
    srv = own_server
    gce = srv.gce()
    hosts = [f"sim-{ZONE}-0{i}" for i in range(1, 5)]
    for h in hosts:
        srv.admin("host", "set-status", h, "Down")
    name, _ = create(gce, 1)
    err = wait_errors(gce, name)[0]
    assert err["error"]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert err["error"]["message"].startswith(f"The zone 'projects/{PROJECT}/zones/{ZONE}' does not have enough")
    group = get(gce, name)
    assert not group["status"]["isStable"] and group["currentActions"]["creating"] == 1
    for h in hosts:
        srv.admin("host", "set-status", h, "Up")
    group = wait_stable(gce, name)
    assert group["status"]["isStable"] and managed(gce, name)[0]["instanceStatus"] == "RUNNING"
    delete(gce, name)


@pytest.fixture(params=BACKENDS)
def slow_server(request):
    with running_server(request.param, GSTACK_SIM_LATENCY='{"spawn": 1.0}') as server:
        yield server


@pytest.mark.xdist_group("restart")
def test_killed_mid_convergence_makes_no_duplicate_or_orphan(slow_server):
    srv = slow_server
    gce = srv.gce()
    name, base = create(gce, 3)
    time.sleep(0.6)  # the reconciler has named and started creating instances
    srv.kill()
    srv.start()
    gce = srv.gce()
    group = wait_stable(gce, name)
    assert group["status"]["isStable"]
    items = managed(gce, name)
    assert len(items) == 3 and {i["instanceStatus"] for i in items} == {"RUNNING"}
    with srv.engine().connect() as conn:
        made = conn.execute(text("SELECT name FROM resources WHERE collection = 'instances' AND name LIKE :p"),
                            {"p": f"{base}-%"}).scalars().all()
    assert sorted(made) == sorted(i["name"] for i in items) == members(gce, name)
    delete(gce, name)
