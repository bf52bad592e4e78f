"""Helpers of the zonal managed group tests that change members (rolling updates, autohealing):
making a group from a new template, reading it and its members, waiting for it, deleting it."""

from __future__ import annotations

import json
import time

from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.compute import group_template as template


def managers(gce):
    return gce.instanceGroupManagers()


def create(gce, size: int, project: str = PROJECT, base: str | None = None) -> tuple[str, str]:
    """(group, base instance name) of a new group of ``size`` from a new template."""
    name, base = unique("mig"), base or unique("web")
    body = {"name": name, "baseInstanceName": base, "targetSize": size,
            "instanceTemplate": f"global/instanceTemplates/{template(gce, project)}"}
    op = managers(gce).insert(project=project, zone=ZONE, body=body).execute()
    assert op["operationType"] == "compute.instanceGroupManagers.insert"
    assert op["status"] == "DONE" and "error" not in op, op
    return name, base


def get(gce, name: str, project: str = PROJECT) -> dict:
    return managers(gce).get(project=project, zone=ZONE, instanceGroupManager=name).execute()


def wait_stable(gce, name: str, project: str = PROJECT, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        group = get(gce, name, project)
        if group["status"]["isStable"] or time.monotonic() > deadline:
            return group
        time.sleep(0.2)


def managed(gce, name: str, project: str = PROJECT) -> list[dict]:
    out = managers(gce).listManagedInstances(project=project, zone=ZONE, instanceGroupManager=name).execute()
    return out.get("managedInstances", [])


def members(gce, name: str, project: str = PROJECT) -> list[str]:
    """The instances of the group's instanceGroups resource, by name."""
    out = gce.instanceGroups().listInstances(project=project, zone=ZONE, instanceGroup=name, body={}).execute()
    return sorted(i["instance"].rsplit("/", 1)[-1] for i in out.get("items", []))


def delete(gce, name: str, project: str = PROJECT) -> None:
    op = managers(gce).delete(project=project, zone=ZONE, instanceGroupManager=name).execute()
    assert op["operationType"] == "compute.instanceGroupManagers.delete"
    op = wait_op(gce, op)
    assert "error" not in op, op


def listed(gcloud, group: str, region: str | None = None) -> list[dict]:
    """gcloud's list-instances of a zonal group (of a regional one with ``region``)."""
    where = ["--region", region] if region else ["--zone", ZONE]
    return json.loads(gcloud("compute", "instance-groups", "managed", "list-instances", group, *where,
                             "--format=json").stdout)


def ready(items: list[dict], size: int) -> bool:
    """``size`` members, every one RUNNING with no action under way."""
    return len(items) == size and all(
        (i.get("currentAction"), i.get("instanceStatus")) == ("NONE", "RUNNING") for i in items)


def converged(gce, gcloud, group: str, size: int, region: str | None = None, timeout: float = 60) -> list[dict]:
    """gcloud's list-instances once ``size`` members are RUNNING with no action under way. The wait
    polls with the Python client: a gcloud call costs a second of CPU, and the flows polling with it
    spent minutes of the suite's time; gcloud lists the group once it is there."""
    scope = {"region": region} if region else {"zone": ZONE}
    api = gce.regionInstanceGroupManagers() if region else gce.instanceGroupManagers()
    deadline = time.monotonic() + timeout
    while not ready(api.listManagedInstances(project=PROJECT, instanceGroupManager=group, **scope).execute()
                    .get("managedInstances", []), size) and time.monotonic() < deadline:
        time.sleep(0.2)
    return listed(gcloud, group, region)
