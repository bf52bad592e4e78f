"""The regional quotas of groups (SQLite and PostgreSQL), with google-api-python-client: a zonal
managed group takes one INSTANCE_GROUP_MANAGERS and one INSTANCE_GROUPS (its instanceGroups
resource) of its region; past either limit the insert is refused with GCE's quotaExceeded and
nothing is made; regions.get shows the usage."""

from __future__ import annotations

from tests.conftest import ZONE, unique
from tests.helpers.compute import expect_error, fresh_project
from tests.helpers.networks import done

REGION = "us-central1"
FAMILY = "projects/debian-cloud/global/images/family/debian-12"


def _template(gce, project: str) -> str:
    name = unique("gqt")
    done(gce, gce.instanceTemplates().insert(project=project, body={"name": name, "properties": {
        "machineType": "e2-micro", "networkInterfaces": [{"network": "global/networks/default"}],
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}]}}))
    return f"global/instanceTemplates/{name}"


def _quotas(gce, project: str) -> dict:
    return {q["metric"]: (q["limit"], q["usage"])
            for q in gce.regions().get(project=project, region=REGION).execute()["quotas"]}


def test_instance_group_managers_quota(server):
    project, gce = fresh_project(server, "igmquota")
    server.admin("project", "set-quota", "--project", project, "--metric", "INSTANCE_GROUP_MANAGERS",
                 "--limit", "1", "--region", REGION)
    template = _template(gce, project)
    first = unique("mig")
    op = gce.instanceGroupManagers().insert(project=project, zone=ZONE, body={
        "name": first, "targetSize": 0, "instanceTemplate": template}).execute()
    assert "error" not in op, op
    assert _quotas(gce, project)["INSTANCE_GROUP_MANAGERS"] == (1.0, 1.0)
    assert _quotas(gce, project)["INSTANCE_GROUPS"] == (100.0, 1.0)
    second = unique("mig")
    expect_error(gce.instanceGroupManagers().insert(project=project, zone="us-central1-b", body={
        "name": second, "targetSize": 0, "instanceTemplate": template}), 403, "quotaExceeded",
        f"Quota 'INSTANCE_GROUP_MANAGERS' exceeded.  Limit: 1.0 in region {REGION}.")
    assert [g["name"] for g in gce.instanceGroups().list(project=project, zone="us-central1-b").execute().get(
        "items", [])] == []
    assert _quotas(gce, project)["INSTANCE_GROUPS"] == (100.0, 1.0)
    # An unmanaged group is no manager: it takes only INSTANCE_GROUPS.
    done(gce, gce.instanceGroups().insert(project=project, zone=ZONE, body={"name": unique("ig")}))
    assert _quotas(gce, project)["INSTANCE_GROUP_MANAGERS"] == (1.0, 1.0)
    assert _quotas(gce, project)["INSTANCE_GROUPS"] == (100.0, 2.0)
