"""Zonal managed instance groups for tests of what builds on them (autoscalers): a group from a
new template, waiting for it to be stable, its managed instances."""

from __future__ import annotations

import time

from tests.conftest import PROJECT, ZONE, unique
from tests.helpers.networks import done

FAMILY = "projects/debian-cloud/global/images/family/debian-12"


def _template(gce, project: str) -> str:
    tpl = unique("igmt")
    done(gce, gce.instanceTemplates().insert(project=project, body={"name": tpl, "properties": {
        "machineType": "e2-micro", "networkInterfaces": [{"network": "global/networks/default"}],
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}]}}))
    return f"global/instanceTemplates/{tpl}"


def create_group(gce, size: int, project: str = PROJECT, region: str | None = None) -> str:
    """A new group of ``size`` e2-micro instances from a new template, zonal (in ``ZONE``) or in
    ``region``; its name."""
    name = unique("mig")
    body = {"name": name, "baseInstanceName": unique("web"), "targetSize": size,
            "instanceTemplate": _template(gce, project)}
    if region:
        op = gce.regionInstanceGroupManagers().insert(project=project, region=region, body=body).execute()
    else:
        op = gce.instanceGroupManagers().insert(project=project, zone=ZONE, body=body).execute()
    assert op["status"] == "DONE" and "error" not in op, op
    return name


def group_of(gce, name: str, project: str = PROJECT) -> dict:
    return gce.instanceGroupManagers().get(project=project, zone=ZONE, instanceGroupManager=name).execute()


def wait_stable(gce, name: str, project: str = PROJECT, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        group = group_of(gce, name, project)
        if group["status"]["isStable"] or time.monotonic() > deadline:
            return group
        time.sleep(0.2)


def managed(gce, name: str, project: str = PROJECT) -> list[dict]:
    out = gce.instanceGroupManagers().listManagedInstances(project=project, zone=ZONE,
                                                           instanceGroupManager=name).execute()
    return out.get("managedInstances", [])


def regional_group(gce, name: str, region: str, project: str = PROJECT) -> dict:
    return gce.regionInstanceGroupManagers().get(project=project, region=region, instanceGroupManager=name).execute()


def regional_managed(gce, name: str, region: str, project: str = PROJECT) -> list[dict]:
    out = gce.regionInstanceGroupManagers().listManagedInstances(project=project, region=region,
                                                                 instanceGroupManager=name).execute()
    return out.get("managedInstances", [])
