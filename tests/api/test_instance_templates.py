"""instanceTemplates and regionInstanceTemplates, and instances.insert from a template: end to end
(SQLite and PostgreSQL) with google-api-python-client. Every template and instance is named uniquely."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from core.resources import store
from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.compute import expect_error, fresh_project

REGION = "us-central1"
OTHER_REGION = "europe-west1"
FAMILY = "projects/debian-cloud/global/images/family/debian-12"
BASE = "https://www.googleapis.com/compute/v1/"


def properties(machine_type: str = "e2-small", **extra) -> dict:
    return {"machineType": machine_type,
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}],
            "networkInterfaces": [{"network": "global/networks/default"}], **extra}


def create(gce, region: str | None = None, project: str = PROJECT, **props) -> str:
    name = unique("tpl")
    body = {"name": name, "description": "web", "properties": properties(**props)}
    if region is None:
        op = gce.instanceTemplates().insert(project=project, body=body).execute()
    else:
        op = gce.regionInstanceTemplates().insert(project=project, region=region, body=body).execute()
    assert op["status"] == "DONE" and "error" not in op, op
    assert op["operationType"] == "insert" and op["targetLink"].endswith(f"/instanceTemplates/{name}")
    return name


def global_names(gce) -> list[str]:
    return [t["name"] for t in gce.instanceTemplates().list(project=PROJECT).execute().get("items", [])]


def region_names(gce, region: str = REGION) -> list[str]:
    listed = gce.regionInstanceTemplates().list(project=PROJECT, region=region).execute()
    return [t["name"] for t in listed.get("items", [])]


def refused_insert(gce, props: dict, message: str | None, reason: str = "invalid", region: str | None = None) -> None:
    """The insert fails with GCE's message and creates nothing."""
    name = unique("bad")
    body = {"name": name, "properties": props}
    request = (gce.instanceTemplates().insert(project=PROJECT, body=body) if region is None else
               gce.regionInstanceTemplates().insert(project=PROJECT, region=region, body=body))
    expect_error(request, 404 if reason == "notFound" else 400, reason, message)
    assert name not in global_names(gce) + region_names(gce)


# -- the template resources -------------------------------------------------------------------------


def test_global_template_insert_get_list_delete(gce, server):
    name = create(gce, labels={"team": "web"}, tags={"items": ["http"]},
                  metadata={"items": [{"key": "startup-script", "value": "echo hi"}]})
    got = gce.instanceTemplates().get(project=PROJECT, instanceTemplate=name).execute()
    assert got["kind"] == "compute#instanceTemplate" and got["name"] == name and got["description"] == "web"
    assert got["selfLink"] == f"{server.api}projects/{PROJECT}/global/instanceTemplates/{name}"
    assert "region" not in got
    props = got["properties"]
    assert props["machineType"] == "e2-small"  # a name: a template has no zone
    assert props["disks"][0]["initializeParams"]["sourceImage"] == server.api + FAMILY  # the family, resolved later
    assert props["disks"][0]["boot"] is True and props["disks"][0]["mode"] == "READ_WRITE"
    assert props["networkInterfaces"][0]["network"] == f"{server.api}projects/{PROJECT}/global/networks/default"
    assert "subnetwork" not in props["networkInterfaces"][0]
    assert props["labels"] == {"team": "web"} and props["tags"]["items"] == ["http"]
    assert props["metadata"]["items"] == [{"key": "startup-script", "value": "echo hi"}]
    assert props["scheduling"]["onHostMaintenance"] == "MIGRATE"
    assert gce.instanceTemplates().get(project=PROJECT, instanceTemplate=got["id"]).execute()["name"] == name
    assert name in global_names(gce)
    op = gce.instanceTemplates().delete(project=PROJECT, instanceTemplate=name).execute()
    assert op["status"] == "DONE" and op["operationType"] == "delete" and "error" not in op
    assert name not in global_names(gce)
    expect_error(gce.instanceTemplates().get(project=PROJECT, instanceTemplate=name), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/global/instanceTemplates/{name}' was not found")


def test_regional_template_insert_get_list_delete(gce, server):
    name = create(gce, REGION)
    got = gce.regionInstanceTemplates().get(project=PROJECT, region=REGION, instanceTemplate=name).execute()
    assert got["region"] == f"{server.api}projects/{PROJECT}/regions/{REGION}"
    assert got["selfLink"] == f"{server.api}projects/{PROJECT}/regions/{REGION}/instanceTemplates/{name}"
    assert name in region_names(gce) and name not in global_names(gce) and name not in region_names(gce, OTHER_REGION)
    expect_error(gce.instanceTemplates().get(project=PROJECT, instanceTemplate=name), 404, "notFound")
    op = gce.regionInstanceTemplates().delete(project=PROJECT, region=REGION, instanceTemplate=name).execute()
    assert op["status"] == "DONE" and op["region"].endswith(f"/regions/{REGION}")
    assert name not in region_names(gce)


def test_aggregated_list_holds_both_kinds(gce):
    global_name, regional = create(gce), create(gce, REGION)
    items = gce.instanceTemplates().aggregatedList(project=PROJECT).execute()["items"]
    assert global_name in [t["name"] for t in items["global"]["instanceTemplates"]]
    assert regional in [t["name"] for t in items[f"regions/{REGION}"]["instanceTemplates"]]
    assert items[f"regions/{OTHER_REGION}"]["warning"]["code"] == "NO_RESULTS_ON_PAGE"


def test_name_clash_and_missing_region(gce):
    name = create(gce)
    expect_error(gce.instanceTemplates().insert(project=PROJECT, body={"name": name, "properties": properties()}),
                 409, "alreadyExists", f"The resource 'projects/{PROJECT}/global/instanceTemplates/{name}' already exists")
    expect_error(gce.regionInstanceTemplates().list(project=PROJECT, region="mars-north1"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/regions/mars-north1' was not found")


# -- properties are checked as an instance's body ---------------------------------------------------

URL_TYPE = f"{BASE}projects/{PROJECT}/zones/{ZONE}/diskTypes/pd-ssd"


@pytest.mark.parametrize(("props", "message", "reason"), [
    (properties(machine_type="e2-huge"),
     "Invalid value for field 'resource.properties.machineType': 'e2-huge'. Instance properties must provide "
     "existing machine type.", "invalid"),
    (properties(machine_type=f"zones/{ZONE}/machineTypes/e2-small"),
     f"Invalid value for field 'resource.properties.machineType': 'zones/{ZONE}/machineTypes/e2-small'. "
     f"MachineType 'zones/{ZONE}/machineTypes/e2-small' must be a valid resource name (not an url).", "invalid"),
    ({**properties(), "machineType": None}, "Required field 'resource.properties.machineType' not specified",
     "required"),
    ({**properties(), "disks": [{"boot": True, "initializeParams": {"sourceImage": FAMILY, "diskType": URL_TYPE}}]},
     f"Invalid value for field 'resource.properties.disks[0].initializeParams.diskType': '{URL_TYPE}'. "
     f"DiskType '{URL_TYPE}' must be a valid resource name (not an url).", "invalid"),
    ({**properties(), "disks": []}, "Required field 'resource.properties.disks' not specified", "required"),
    ({**properties(), "disks": [{"boot": True, "initializeParams": {}}]},
     "Required field 'resource.properties.disks[0].initializeParams.sourceImage' not specified", "required"),
    ({**properties(), "disks": [{"boot": True, "initializeParams": {"sourceImage": FAMILY, "diskSizeGb": "2"}}]},
     "Invalid value for field 'resource.properties.disks[0].initializeParams.diskSizeGb': '2'. "
     "Disk size must be between 10 GB and 65536 GB.", "invalid"),
    ({**properties(), "disks": [{"boot": True, "mode": "READ_ONLY", "initializeParams": {"sourceImage": FAMILY}}]},
     "Invalid value for field 'resource.properties.disks[0].mode': 'READ_ONLY'. "
     "The boot disk must be attached in READ_WRITE mode.", "invalid"),
    ({**properties(), "networkInterfaces": [{"network": "global/networks/nope"}]},
     f"The resource 'projects/{PROJECT}/global/networks/nope' was not found", "notFound"),
    ({**properties(), "networkInterfaces": [{"accessConfigs": [{"natIP": "10.1.2.3"}]}]},
     "Invalid value for field 'resource.properties.networkInterfaces[0].accessConfigs[0].natIP': '10.1.2.3'. "
     "Must be an external IPv4 address.", "invalid"),
    (properties(labels={"Bad": "x"}), None, "invalid"),
    (properties(scheduling={"preemptible": True, "onHostMaintenance": "MIGRATE"}),
     "Invalid value for field 'resource.properties.scheduling.onHostMaintenance': 'MIGRATE'. "
     "Preemptible and Spot instances must have onHostMaintenance set to TERMINATE.", "invalid"),
], ids=["unknown-type", "zonal-type", "no-type", "zonal-disk-type", "no-disks", "boot-no-image", "size",
        "boot-read-only", "no-network", "access-config", "labels", "scheduling"])
def test_properties_are_refused_as_an_instance_body(gce, props, message, reason):
    refused_insert(gce, props, message, reason)


def test_regional_template_subnetwork_must_be_in_its_region(gce):
    subnet = f"regions/{OTHER_REGION}/subnetworks/default"
    refused_insert(gce, {**properties(), "networkInterfaces": [{"subnetwork": subnet}]},
                   f"Invalid value for field 'resource.properties.networkInterfaces[0].subnetwork': '{subnet}'. "
                   f"Subnetwork must be in region '{REGION}'.", region=REGION)


def test_global_template_may_name_a_subnetwork_of_any_region(gce, server):
    subnet = f"regions/{OTHER_REGION}/subnetworks/default"
    name = create(gce, networkInterfaces=[{"subnetwork": subnet}])
    nic = gce.instanceTemplates().get(project=PROJECT, instanceTemplate=name).execute()["properties"][
        "networkInterfaces"][0]
    assert nic["subnetwork"] == f"{server.api}projects/{PROJECT}/{subnet}"


def test_missing_properties_and_bad_name(gce):
    expect_error(gce.instanceTemplates().insert(project=PROJECT, body={"name": unique("t")}), 400, "required",
                 "Required field 'resource.properties' not specified")
    expect_error(gce.instanceTemplates().insert(project=PROJECT, body={"name": "Bad", "properties": properties()}),
                 400, "invalid")


def test_delete_refused_while_a_managed_group_uses_it(gce, server):
    """The delete check finds the managed groups naming the template (their rows are written here
    directly: groups come in a later step)."""
    name = create(gce)
    url = f"{BASE}projects/{PROJECT}/global/instanceTemplates/{name}"
    group = unique("mig")
    with Session(server.engine()) as session, session.begin():
        store.new_resource(session, project=PROJECT, collection="instanceGroupManagers", scope=f"zones/{ZONE}",
                           name=group, kind="compute#instanceGroupManager",
                           body={"versions": [{"instanceTemplate": url}]})
    expect_error(gce.instanceTemplates().delete(project=PROJECT, instanceTemplate=name), 400,
                 "resourceInUseByAnotherResource",
                 f"The instance_template resource 'projects/{PROJECT}/global/instanceTemplates/{name}' is already "
                 f"being used by 'projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/{group}'")
    assert name in global_names(gce)
    with Session(server.engine()) as session, session.begin():
        session.delete(store.find(session, PROJECT, "instanceGroupManagers", f"zones/{ZONE}", group))
    assert gce.instanceTemplates().delete(project=PROJECT, instanceTemplate=name).execute()["status"] == "DONE"


# -- instances.insert with sourceInstanceTemplate ---------------------------------------------------


def insert_from(gce, template: str, **body) -> dict:
    name = unique("vm")
    op = gce.instances().insert(project=PROJECT, zone=ZONE, sourceInstanceTemplate=template,
                                body={"name": name, **body}).execute()
    op = wait_op(gce, op)
    assert "error" not in op, op
    return gce.instances().get(project=PROJECT, zone=ZONE, instance=name).execute()


@pytest.mark.parametrize("form", ["url", "global", "project"])
def test_instance_from_a_template(gce, server, form):
    name = create(gce, labels={"team": "web"}, metadata={"items": [{"key": "k", "value": "v"}]})
    ref = {"url": f"{server.api}projects/{PROJECT}/global/instanceTemplates/{name}",
           "global": f"global/instanceTemplates/{name}",
           "project": f"projects/{PROJECT}/global/instanceTemplates/{name}"}[form]
    vm = insert_from(gce, ref)
    assert vm["status"] == "RUNNING"
    assert vm["machineType"] == f"{server.api}projects/{PROJECT}/zones/{ZONE}/machineTypes/e2-small"
    assert vm["labels"] == {"team": "web"} and vm["metadata"]["items"] == [{"key": "k", "value": "v"}]
    assert vm["disks"][0]["boot"] and vm["disks"][0]["autoDelete"]
    assert vm["networkInterfaces"][0]["subnetwork"].endswith(f"/regions/{REGION}/subnetworks/default")


def test_request_fields_override_the_template(gce):
    name = create(gce, labels={"team": "web", "tier": "1"}, tags={"items": ["http"]})
    vm = insert_from(gce, f"global/instanceTemplates/{name}", machineType=f"zones/{ZONE}/machineTypes/e2-micro",
                     labels={"tier": "2"}, description="mine",
                     disks=[{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY,
                                                                                     "diskSizeGb": "12"}}])
    assert vm["machineType"].endswith("/machineTypes/e2-micro") and vm["description"] == "mine"
    assert vm["labels"] == {"team": "web", "tier": "2"}  # objects merge field by field
    assert vm["tags"]["items"] == ["http"]
    assert vm["disks"][0]["diskSizeGb"] == "12"  # the body's disks replace the template's


def test_instance_from_a_regional_template(gce):
    name = create(gce, REGION)
    vm = insert_from(gce, f"regions/{REGION}/instanceTemplates/{name}")
    assert vm["machineType"].endswith("/machineTypes/e2-small")


def test_instance_from_a_missing_template(gce):
    vm = unique("vm")
    expect_error(gce.instances().insert(project=PROJECT, zone=ZONE, sourceInstanceTemplate="global/instanceTemplates/nope",
                                        body={"name": vm}), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/global/instanceTemplates/nope' was not found")
    expect_error(gce.instances().get(project=PROJECT, zone=ZONE, instance=vm), 404, "notFound")


def test_instance_from_a_template_of_another_region(server):
    # A project of its own: the shared project's region europe-west1 stays without Operations
    # (tests/api/test_operations.py reads it as the empty scope of an aggregated list).
    project, gce = fresh_project(server, "tplregion")
    name = create(gce, OTHER_REGION, project=project)
    ref = f"regions/{OTHER_REGION}/instanceTemplates/{name}"
    expect_error(gce.instances().insert(project=project, zone=ZONE, sourceInstanceTemplate=ref,
                                        body={"name": unique("vm")}), 400, "invalid")


def test_instance_templates_quotas(server):
    """INSTANCE_TEMPLATES: global templates count against the project's (projects.get), regional ones
    against their region's (regions.get); a refused insert makes nothing."""
    project, gce = fresh_project(server, "tplquota")
    server.admin("project", "set-quota", "--project", project, "--metric", "INSTANCE_TEMPLATES", "--limit", "1")
    server.admin("project", "set-quota", "--project", project, "--metric", "INSTANCE_TEMPLATES", "--limit", "1",
                 "--region", REGION)
    create(gce, project=project)
    create(gce, REGION, project=project)
    expect_error(gce.instanceTemplates().insert(project=project, body={
        "name": unique("tpl"), "properties": properties()}), 403, "quotaExceeded",
        "Quota 'INSTANCE_TEMPLATES' exceeded.  Limit: 1.0 globally.")
    expect_error(gce.regionInstanceTemplates().insert(project=project, region=REGION, body={
        "name": unique("tpl"), "properties": properties()}), 403, "quotaExceeded",
        f"Quota 'INSTANCE_TEMPLATES' exceeded.  Limit: 1.0 in region {REGION}.")
    create(gce, OTHER_REGION, project=project)  # another region has its own
    listed = gce.instanceTemplates().aggregatedList(project=project).execute()["items"]
    assert sum(len(v.get("instanceTemplates", [])) for v in listed.values()) == 3
    global_quotas = {q["metric"]: q for q in gce.projects().get(project=project).execute()["quotas"]}
    assert (global_quotas["INSTANCE_TEMPLATES"]["limit"], global_quotas["INSTANCE_TEMPLATES"]["usage"]) == (1, 1)
    region = {q["metric"]: q for q in gce.regions().get(project=project, region=REGION).execute()["quotas"]}
    assert (region["INSTANCE_TEMPLATES"]["limit"], region["INSTANCE_TEMPLATES"]["usage"]) == (1, 1)
    other = {q["metric"]: q for q in gce.regions().get(project=project, region=OTHER_REGION).execute()["quotas"]}
    assert other["INSTANCE_TEMPLATES"]["usage"] == 1 and other["INSTANCE_TEMPLATES"]["limit"] == 100
    for metric in ("INSTANCE_GROUPS", "INSTANCE_GROUP_MANAGERS", "REGIONAL_INSTANCE_GROUP_MANAGERS"):
        assert region[metric]["usage"] == 0 and region[metric]["limit"] > 0
