"""regionInstanceGroupManagers and regionInstanceGroups (regional managed instance groups): end to
end against ``gstack serve`` (SQLite and PostgreSQL) with google-api-python-client. The group's
instances are zonal instances spread over its distribution's zones."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.conftest import BACKENDS, PROJECT, running_server, unique, wait_op
from tests.helpers.compute import fresh_project
from tests.helpers.compute import group_template as template
from tests.helpers.networks import done, fails

REGION = "us-central1"
ZONES = ["us-central1-a", "us-central1-b", "us-central1-c"]
ZONE_URL = "https://www.googleapis.com/compute/v1/projects/{}/zones/{}"


def managers(gce):
    return gce.regionInstanceGroupManagers()


def create(gce, size: int, project: str = PROJECT, **fields) -> tuple[str, str]:
    """(group, base instance name) of a new regional group of ``size`` from a new template."""
    name, base = unique("rmig"), unique("web")
    body = {"name": name, "baseInstanceName": base, "targetSize": size,
            "instanceTemplate": f"global/instanceTemplates/{template(gce, project)}", **fields}
    op = managers(gce).insert(project=project, region=REGION, body=body).execute()
    assert op["operationType"] == "compute.regionInstanceGroupManagers.insert", op
    assert op["status"] == "DONE" and "error" not in op, op
    assert op["region"].endswith(f"/regions/{REGION}") and "zone" not in op
    assert f"/regions/{REGION}/operations/" in op["selfLink"]
    return name, base


def get(gce, name: str, project: str = PROJECT) -> dict:
    return managers(gce).get(project=project, region=REGION, instanceGroupManager=name).execute()


def wait_stable(gce, name: str, project: str = PROJECT, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        group = get(gce, name, project)
        if group["status"]["isStable"] or time.monotonic() > deadline:
            return group
        time.sleep(0.2)


def managed(gce, name: str, project: str = PROJECT) -> list[dict]:
    out = managers(gce).listManagedInstances(project=project, region=REGION, instanceGroupManager=name).execute()
    return out.get("managedInstances", [])


def spread(gce, name: str, project: str = PROJECT) -> Counter:
    """Managed instances per zone, each checked to be a RUNNING zonal instance of that zone."""
    out: Counter = Counter()
    for item in managed(gce, name, project):
        zone = item["instance"].split("/zones/", 1)[1].split("/", 1)[0]
        inst = gce.instances().get(project=project, zone=zone, instance=item["name"]).execute()
        assert inst["status"] == item["instanceStatus"] == "RUNNING" and inst["id"] == item["id"]
        assert item["currentAction"] == "NONE"
        out[zone] += 1
    return out


def members(gce, name: str, project: str = PROJECT) -> list[str]:
    out = gce.regionInstanceGroups().listInstances(project=project, region=REGION, instanceGroup=name,
                                                   body={}).execute()
    assert out["kind"] == "compute#regionInstanceGroupsListInstances"
    return sorted(i["instance"].rsplit("/", 1)[-1] for i in out.get("items", []))


def delete(gce, name: str, project: str = PROJECT) -> None:
    op = managers(gce).delete(project=project, region=REGION, instanceGroupManager=name).execute()
    assert op["operationType"] == "compute.regionInstanceGroupManagers.delete"
    op = wait_op(gce, op)
    assert "error" not in op, op


def left_over(gce, base: str, project: str = PROJECT) -> list[str]:
    agg = gce.instances().aggregatedList(project=project).execute()["items"]
    return [i["name"] for scoped in agg.values() for i in scoped.get("instances", []) if i["name"].startswith(base)]


def test_create_spread_resize_and_delete(gce, server):
    name, base = create(gce, 4, distributionPolicy={"zones": [{"zone": f"zones/{ZONES[0]}"},
                                                              {"zone": ZONE_URL.format(PROJECT, ZONES[1])}]})
    group = wait_stable(gce, name)
    assert group["status"]["isStable"] and group["currentActions"]["none"] == 4
    assert group["region"].endswith(f"/projects/{PROJECT}/regions/{REGION}") and "zone" not in group
    assert group["selfLink"].endswith(f"/projects/{PROJECT}/regions/{REGION}/instanceGroupManagers/{name}")
    assert group["instanceGroup"].endswith(f"/projects/{PROJECT}/regions/{REGION}/instanceGroups/{name}")
    assert [z["zone"].rsplit("/", 1)[-1] for z in group["distributionPolicy"]["zones"]] == ZONES[:2]
    assert group["distributionPolicy"]["targetShape"] == "EVEN"
    assert group["updatePolicy"]["instanceRedistributionType"] == "PROACTIVE"
    assert group["updatePolicy"]["maxSurge"] == {"fixed": 2, "calculated": 2}
    assert spread(gce, name) == {ZONES[0]: 2, ZONES[1]: 2}
    names = sorted(i["name"] for i in managed(gce, name))
    assert members(gce, name) == names
    ig = gce.regionInstanceGroups().get(project=PROJECT, region=REGION, instanceGroup=name).execute()
    assert ig["size"] == 4 and ig["region"].endswith(f"/regions/{REGION}") and "zone" not in ig
    assert name in [g["name"] for g in gce.regionInstanceGroups().list(project=PROJECT, region=REGION)
                    .execute()["items"]]
    assert name in [g["name"] for g in managers(gce).list(project=PROJECT, region=REGION).execute()["items"]]
    # GCE's aggregated lists hold the regional groups under their region
    agg = gce.instanceGroupManagers().aggregatedList(project=PROJECT).execute()["items"]
    assert name in [g["name"] for g in agg[f"regions/{REGION}"]["instanceGroupManagers"]]
    agg = gce.instanceGroups().aggregatedList(project=PROJECT).execute()["items"]
    assert name in [g["name"] for g in agg[f"regions/{REGION}"]["instanceGroups"]]
    # named ports are the one change a regional group's instanceGroups resource takes
    op = gce.regionInstanceGroups().setNamedPorts(project=PROJECT, region=REGION, instanceGroup=name, body={
        "namedPorts": [{"name": "http", "port": 80}]}).execute()
    assert op["operationType"] == "compute.regionInstanceGroups.setNamedPorts" and op["status"] == "DONE"
    assert gce.regionInstanceGroups().get(project=PROJECT, region=REGION, instanceGroup=name).execute()[
        "namedPorts"] == [{"name": "http", "port": 80}]

    op = managers(gce).resize(project=PROJECT, region=REGION, instanceGroupManager=name, size=1).execute()
    assert op["operationType"] == "compute.regionInstanceGroupManagers.resize" and op["status"] == "DONE"
    wait_stable(gce, name)
    assert sorted(spread(gce, name).values()) == [1]
    managers(gce).resize(project=PROJECT, region=REGION, instanceGroupManager=name, size=3).execute()
    wait_stable(gce, name)
    assert sorted(spread(gce, name).values()) == [1, 2]

    # deleting the one instance of a zone leaves 0 + 2: PROACTIVE redistribution evens it to 1 + 1
    alone = min(spread(gce, name).items(), key=lambda kv: kv[1])[0]
    item = next(i for i in managed(gce, name) if f"/zones/{alone}/" in i["instance"])
    op = managers(gce).deleteInstances(project=PROJECT, region=REGION, instanceGroupManager=name,
                                       body={"instances": [item["instance"]]}).execute()
    assert op["operationType"] == "compute.regionInstanceGroupManagers.deleteInstances" and op["status"] == "DONE"
    group = wait_stable(gce, name)
    assert group["targetSize"] == 2 and item["name"] not in members(gce, name)
    assert item["name"] not in left_over(gce, base)
    assert spread(gce, name) == {ZONES[0]: 1, ZONES[1]: 1}
    assert not managers(gce).listErrors(project=PROJECT, region=REGION, instanceGroupManager=name).execute().get(
        "items")

    delete(gce, name)
    assert left_over(gce, base) == []
    fails(managers(gce).get(project=PROJECT, region=REGION, instanceGroupManager=name), 404, "notFound")
    fails(gce.regionInstanceGroups().get(project=PROJECT, region=REGION, instanceGroup=name), 404, "notFound")


def test_default_distribution_is_the_regions_zones_evenly(gce):
    name, base = create(gce, 4)
    group = wait_stable(gce, name)
    assert [z["zone"].rsplit("/", 1)[-1] for z in group["distributionPolicy"]["zones"]] == ZONES
    assert group["updatePolicy"]["maxUnavailable"] == {"fixed": 3, "calculated": 3}
    assert sorted(spread(gce, name).values()) == [1, 1, 2]
    used = group["instanceTemplate"].rsplit("/", 1)[-1]
    fails(gce.instanceTemplates().delete(project=PROJECT, instanceTemplate=used), 400,
          "resourceInUseByAnotherResource",
          f"The instance_template resource 'projects/{PROJECT}/global/instanceTemplates/{used}' is already being "
          f"used by 'projects/{PROJECT}/regions/{REGION}/instanceGroupManagers/{name}'")
    # an abandoned instance leaves the group and its instanceGroups resource, and keeps running
    kept = managed(gce, name)[0]
    op = managers(gce).abandonInstances(project=PROJECT, region=REGION, instanceGroupManager=name,
                                        body={"instances": [kept["instance"]]}).execute()
    assert op["operationType"] == "compute.regionInstanceGroupManagers.abandonInstances"
    assert wait_stable(gce, name)["targetSize"] == 3 and kept["name"] not in members(gce, name)
    delete(gce, name)
    assert left_over(gce, base) == [kept["name"]]
    zone = kept["instance"].split("/zones/", 1)[1].split("/", 1)[0]
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=zone, instance=kept["name"]).execute())


def refused(gce, project: str, body: dict, message: str) -> None:
    """The insert fails with ``message`` and leaves no group and no instanceGroups resource."""
    fails(managers(gce).insert(project=project, region=REGION, body=body), 400, "invalid", message)
    fails(managers(gce).get(project=project, region=REGION, instanceGroupManager=body["name"]), 404, "notFound")
    fails(gce.regionInstanceGroups().get(project=project, region=REGION, instanceGroup=body["name"]), 404,
          "notFound")


def test_bad_input_is_refused_and_changes_nothing(server, gce):
    tpl = f"global/instanceTemplates/{template(gce)}"
    body = {"name": unique("rmig"), "baseInstanceName": "web", "targetSize": 1, "instanceTemplate": tpl}
    outside = "zones/europe-west1-b"
    refused(gce, PROJECT, {**body, "distributionPolicy": {"zones": [{"zone": f"zones/{ZONES[0]}"}, {"zone": outside}]}},
            f"Invalid value for field 'resource.distributionPolicy.zones[1].zone': '{outside}'. Zone 'europe-west1-b' "
            f"is not in region '{REGION}', the region of the instance group manager.")
    refused(gce, PROJECT, {**body, "targetSize": -1},
            "Invalid value for field 'resource.targetSize': '-1'. Must be greater than or equal to 0")
    refused(gce, PROJECT, {**body, "distributionPolicy": {"targetShape": "ROUND"}},
            "Invalid value at 'resource.distributionPolicy.targetShape' "
            "(type.googleapis.com/google.cloud.compute.v1.DistributionPolicy.TargetShape), \"ROUND\"")
    # a regional template of another region (in a project of its own: the shared project's
    # europe-west1 stays empty for the operations aggregate test)
    project, own = fresh_project(server, "rmigx")
    far = unique("far")
    done(own, own.regionInstanceTemplates().insert(project=project, region="europe-west1", body={
        "name": far, "properties": {"machineType": "e2-micro", "disks": [{"boot": True, "initializeParams": {
            "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}}))
    link = f"projects/{project}/regions/europe-west1/instanceTemplates/{far}"
    refused(own, project, {**body, "instanceTemplate": link},
            f"Invalid value for field 'resource.instanceTemplate': '{link}'. "
            f"The regional instance template must be in region '{REGION}'.")
    # an existing group refuses a negative size and keeps its own
    name, _ = create(gce, 0)
    fails(managers(gce).resize(project=PROJECT, region=REGION, instanceGroupManager=name, size=-1), 400, "invalid",
          "Invalid value for field 'size': '-1'. Must be greater than or equal to 0")
    assert get(gce, name)["targetSize"] == 0
    delete(gce, name)


@pytest.fixture(params=BACKENDS)
def own_server(request):
    with running_server(request.param) as server:
        yield server


def wait_errors(gce, name: str) -> list[dict]:
    deadline = time.monotonic() + 30
    while True:
        errors = managers(gce).listErrors(project=PROJECT, region=REGION, instanceGroupManager=name).execute()
        if errors.get("items") or time.monotonic() > deadline:
            return errors.get("items", [])
        time.sleep(0.2)


def test_a_zone_without_room(own_server):
    """EVEN keeps the instance waiting in its zone (unstable, in listErrors); BALANCED moves it to
    the other zone, ANY_SINGLE_ZONE takes the whole group to one zone with room."""
    srv = own_server
    gce = srv.gce()
    hosts = [f"sim-{ZONES[0]}-0{i}" for i in range(1, 5)]
    for h in hosts:
        srv.admin("host", "set-status", h, "Down")
    two = {"zones": [{"zone": f"zones/{ZONES[0]}"}, {"zone": f"zones/{ZONES[1]}"}]}
    even, _ = create(gce, 2, distributionPolicy=two)
    balanced, _ = create(gce, 2, distributionPolicy={**two, "targetShape": "BALANCED"})
    single, _ = create(gce, 2, distributionPolicy={"targetShape": "ANY_SINGLE_ZONE"})
    group = wait_stable(gce, balanced)
    assert group["status"]["isStable"] and group["updatePolicy"]["instanceRedistributionType"] == "NONE"
    assert spread(gce, balanced) == {ZONES[1]: 2}
    assert wait_errors(gce, balanced)[0]["error"]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert wait_stable(gce, single)["status"]["isStable"]
    assert list(spread(gce, single).values()) == [2] and ZONES[0] not in spread(gce, single)

    err = wait_errors(gce, even)[0]
    assert err["error"]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert f"/zones/{ZONES[0]}/instances/" in err["instanceActionDetails"]["instance"]
    group = get(gce, even)
    assert not group["status"]["isStable"] and group["currentActions"]["creating"] == 1
    for h in hosts:
        srv.admin("host", "set-status", h, "Up")
    assert wait_stable(gce, even)["status"]["isStable"]
    assert spread(gce, even) == {ZONES[0]: 1, ZONES[1]: 1}
    for name in (even, balanced, single):
        delete(gce, name)


def test_a_regional_group_behind_a_backend_service(server):
    """A regional group's instanceGroups resource is a backend like a zonal one (GCE's usual
    shape), and the group cannot be deleted while a backend service uses it."""
    project, gce = fresh_project(server, "rmiglb")
    name, _ = create(gce, 1, project)
    wait_stable(gce, name, project)
    done(gce, gce.healthChecks().insert(project=project, body={"name": "hc", "type": "HTTP",
                                                               "httpHealthCheck": {"port": 80}}))
    gce.regionInstanceGroups().setNamedPorts(project=project, region=REGION, instanceGroup=name, body={
        "namedPorts": [{"name": "http", "port": 80}]}).execute()
    group = f"projects/{project}/regions/{REGION}/instanceGroups/{name}"
    bs = unique("bs")
    done(gce, gce.backendServices().insert(project=project, body={
        "name": bs, "healthChecks": ["global/healthChecks/hc"], "backends": [{"group": group}]}))
    health = gce.backendServices().getHealth(project=project, backendService=bs, body={"group": group}).execute()
    assert [h["instance"].rsplit("/", 1)[-1] for h in health["healthStatus"]] == [
        i["name"] for i in managed(gce, name, project)]
    assert health["healthStatus"][0]["healthState"] == "HEALTHY"
    fails(managers(gce).delete(project=project, region=REGION, instanceGroupManager=name), 400,
          "resourceInUseByAnotherResource",
          f"The instance_group resource '{group}' is already being used by "
          f"'projects/{project}/global/backendServices/{bs}'")
    assert get(gce, name, project)["status"]["isStable"]
    done(gce, gce.backendServices().delete(project=project, backendService=bs))
    delete(gce, name, project)
