"""Zonal managed instance groups for tests of what builds on them (autoscalers): a group from a
new template, waiting for it to be stable, its managed instances."""

from __future__ import annotations

from tests.conftest import PROJECT, ZONE, unique
from tests.helpers.compute import group_template
from tests.helpers.managed_groups import get, managed, wait_stable

__all__ = ["create_group", "group_of", "managed", "regional_group", "regional_managed", "wait_stable"]

def create_group(gce, size: int, project: str = PROJECT, region: str | None = None) -> str:
    """A new group of ``size`` e2-micro instances from a new template, zonal (in ``ZONE``) or in
    ``region``; its name."""
    name = unique("mig")
    body = {"name": name, "baseInstanceName": unique("web"), "targetSize": size,
            "instanceTemplate": f"global/instanceTemplates/{group_template(gce, project)}"}
    if region:
        op = gce.regionInstanceGroupManagers().insert(project=project, region=region, body=body).execute()
    else:
        op = gce.instanceGroupManagers().insert(project=project, zone=ZONE, body=body).execute()
    assert op["status"] == "DONE" and "error" not in op, op
    return name


group_of = get  # the zonal group's body


def regional_group(gce, name: str, region: str, project: str = PROJECT) -> dict:
    return gce.regionInstanceGroupManagers().get(project=project, region=region, instanceGroupManager=name).execute()


def regional_managed(gce, name: str, region: str, project: str = PROJECT) -> list[dict]:
    out = gce.regionInstanceGroupManagers().listManagedInstances(project=project, region=region,
                                                                 instanceGroupManager=name).execute()
    return out.get("managedInstances", [])
