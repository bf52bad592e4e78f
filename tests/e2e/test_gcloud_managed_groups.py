"""gcloud compute instance-groups managed: create, list-instances, resize, describe and delete with
the real CLI, zonal (--zone) and regional (--region)."""

from __future__ import annotations

import json
import re

from tests.conftest import PROJECT, unique, wait_op
from tests.e2e.conftest import describe
from tests.helpers.managed_groups import converged

ZONE = "us-central1-a"


def delete_group(gcloud, group: str) -> None:
    """gcloud's delete: it looks for the group's autoscalers (autoscalers.list), deletes them, then the group."""
    gcloud("compute", "instance-groups", "managed", "delete", group, "--zone", ZONE)


def test_managed_group_flow(gcloud, gce):
    template, group = unique("mgt"), unique("mg")
    gcloud("compute", "instance-templates", "create", template, "--machine-type", "e2-micro",
           "--image-family", "debian-12", "--image-project", "debian-cloud")
    gcloud("compute", "instance-groups", "managed", "create", group, "--template", template, "--size", "2",
           "--zone", ZONE)
    instances = converged(gce, gcloud, group, 2)
    assert len(instances) == 2
    for item in instances:
        assert re.fullmatch(rf"{group}-[a-z0-9]{{4}}", item["instance"].rsplit("/", 1)[-1])
        assert (item["currentAction"], item["instanceStatus"]) == ("NONE", "RUNNING")
    gcloud("compute", "instance-groups", "managed", "resize", group, "--size", "3", "--zone", ZONE)
    assert len(converged(gce, gcloud, group, 3)) == 3
    refused = gcloud("compute", "instance-templates", "delete", template, check=False)
    assert refused.returncode != 0 and "is already being used by" in refused.stderr
    delete_group(gcloud, group)
    gone = gcloud("compute", "instance-groups", "managed", "list-instances", group, "--zone", ZONE, check=False)
    assert gone.returncode != 0 and "was not found" in gone.stderr
    left = json.loads(gcloud("compute", "instances", "list", "--format=json").stdout)
    assert not [i for i in left if i["name"].startswith(f"{group}-")]
    gcloud("compute", "instance-templates", "delete", template)


def test_describe_list_and_delete(gcloud, gce):
    template, group = unique("mgt"), unique("mg")
    gcloud("compute", "instance-templates", "create", template, "--machine-type", "e2-micro",
           "--image-family", "debian-12", "--image-project", "debian-cloud")
    gcloud("compute", "instance-groups", "managed", "create", group, "--template", template, "--size", "0",
           "--zone", ZONE)
    try:
        got = describe(gcloud, "compute", "instance-groups", "managed", "describe", group, "--zone", ZONE)
        assert (got["targetSize"], got["status"]["isStable"], got["baseInstanceName"]) == (0, True, group)
        names = [g["name"] for g in json.loads(gcloud("compute", "instance-groups", "managed", "list",
                                                      "--format=json").stdout)]
        assert group in names
        gcloud("compute", "instance-groups", "managed", "delete", group, "--zone", ZONE)
    finally:
        if gce.instanceGroupManagers().list(project=PROJECT, zone=ZONE, filter=f"name = {group}").execute().get("items"):
            wait_op(gce, gce.instanceGroupManagers().delete(project=PROJECT, zone=ZONE, instanceGroupManager=group)
                    .execute())
        gcloud("compute", "instance-templates", "delete", template)


def test_set_autoscaling_describe_stop_and_delete(gcloud, gce):
    template, group = unique("mgt"), unique("mg")
    gcloud("compute", "instance-templates", "create", template, "--machine-type", "e2-micro",
           "--image-family", "debian-12", "--image-project", "debian-cloud")
    gcloud("compute", "instance-groups", "managed", "create", group, "--template", template, "--size", "1",
           "--zone", ZONE)
    try:
        gcloud("compute", "instance-groups", "managed", "set-autoscaling", group, "--zone", ZONE,
               "--max-num-replicas", "5", "--min-num-replicas", "1", "--target-cpu-utilization", "0.6",
               "--cool-down-period", "60")
        scaler = describe(gcloud, "compute", "instance-groups", "managed", "describe", group, "--zone", ZONE)["autoscaler"]
        assert re.fullmatch(rf"{group}-[a-z0-9]{{4}}", scaler["name"])  # gcloud names it after the group
        assert scaler["autoscalingPolicy"] == {
            "minNumReplicas": 1, "maxNumReplicas": 5, "coolDownPeriodSec": 60, "mode": "ON",
            "cpuUtilization": {"utilizationTarget": 0.6, "predictiveMethod": "NONE"}}
        assert scaler["target"].endswith(f"/zones/{ZONE}/instanceGroupManagers/{group}")
        listed = {g["name"]: g for g in json.loads(gcloud("compute", "instance-groups", "managed", "list",
                                                          "--format=json").stdout)}
        assert listed[group]["autoscaled"] == "yes"
        # again: gcloud finds the autoscaler and updates it (PUT), keeping its name
        gcloud("compute", "instance-groups", "managed", "set-autoscaling", group, "--zone", ZONE,
               "--max-num-replicas", "3", "--mode", "only-scale-out")
        again = describe(gcloud, "compute", "instance-groups", "managed", "describe", group, "--zone", ZONE)["autoscaler"]
        assert again["name"] == scaler["name"] and again["autoscalingPolicy"]["maxNumReplicas"] == 3
        assert again["autoscalingPolicy"]["mode"] == "ONLY_SCALE_OUT"
        # update-autoscaling patches what it is given
        gcloud("compute", "instance-groups", "managed", "update-autoscaling", group, "--zone", ZONE, "--mode", "off")
        off = describe(gcloud, "compute", "instance-groups", "managed", "describe", group, "--zone", ZONE)["autoscaler"]
        assert (off["autoscalingPolicy"]["mode"], off["autoscalingPolicy"]["maxNumReplicas"]) == ("OFF", 3)
        gcloud("compute", "instance-groups", "managed", "stop-autoscaling", group, "--zone", ZONE)
        assert "autoscaler" not in describe(gcloud, "compute", "instance-groups", "managed", "describe", group,
                                            "--zone", ZONE)
        gcloud("compute", "instance-groups", "managed", "set-autoscaling", group, "--zone", ZONE,
               "--max-num-replicas", "2")
        delete_group(gcloud, group)  # deletes the autoscaler first
        left = gce.autoscalers().list(project=PROJECT, zone=ZONE).execute().get("items", [])
        assert not [a for a in left if a["target"].endswith(f"/instanceGroupManagers/{group}")]
    finally:
        if gce.instanceGroupManagers().list(project=PROJECT, zone=ZONE, filter=f"name = {group}").execute().get("items"):
            for a in gce.autoscalers().list(project=PROJECT, zone=ZONE).execute().get("items", []):
                if a["target"].endswith(f"/instanceGroupManagers/{group}"):
                    gce.autoscalers().delete(project=PROJECT, zone=ZONE, autoscaler=a["name"]).execute()
            wait_op(gce, gce.instanceGroupManagers().delete(project=PROJECT, zone=ZONE, instanceGroupManager=group)
                    .execute())
        gcloud("compute", "instance-templates", "delete", template)


REGION = "us-central1"


def test_regional_managed_group_flow(gcloud, gce):
    template, group = unique("mgt"), unique("rmg")
    gcloud("compute", "instance-templates", "create", template, "--machine-type", "e2-micro",
           "--image-family", "debian-12", "--image-project", "debian-cloud")
    gcloud("compute", "instance-groups", "managed", "create", group, "--template", template, "--size", "3",
           "--region", REGION)
    instances = converged(gce, gcloud, group, 3, REGION)
    zones = sorted(i["instance"].split("/zones/", 1)[1].split("/", 1)[0] for i in instances)
    assert zones == ["us-central1-a", "us-central1-b", "us-central1-c"]  # EVEN over the region's three zones
    for item in instances:
        assert re.fullmatch(rf"{group}-[a-z0-9]{{4}}", item["instance"].rsplit("/", 1)[-1])
    # the group's regional instanceGroups resource, through the unmanaged-group commands
    gcloud("compute", "instance-groups", "set-named-ports", group, "--named-ports", "http:80", "--region", REGION)
    got = describe(gcloud, "compute", "instance-groups", "describe", group, "--region", REGION)
    assert (got["size"], got["namedPorts"]) == (3, [{"name": "http", "port": 80}])
    members = json.loads(gcloud("compute", "instance-groups", "list-instances", group, "--region", REGION,
                                "--format=json").stdout)
    assert sorted(m["instance"] for m in members) == sorted(i["instance"] for i in instances)
    gcloud("compute", "instance-groups", "managed", "resize", group, "--size", "5", "--region", REGION)
    per_zone = {}
    for item in converged(gce, gcloud, group, 5, REGION):
        zone = item["instance"].split("/zones/", 1)[1].split("/", 1)[0]
        per_zone[zone] = per_zone.get(zone, 0) + 1
    assert sorted(per_zone.values()) == [1, 2, 2]
    # a regional autoscaler: set-autoscaling --region makes it, describe shows it, delete takes it first
    gcloud("compute", "instance-groups", "managed", "set-autoscaling", group, "--region", REGION,
           "--max-num-replicas", "6", "--min-num-replicas", "1", "--target-cpu-utilization", "0.7")
    scaler = describe(gcloud, "compute", "instance-groups", "managed", "describe", group, "--region", REGION)["autoscaler"]
    assert scaler["region"].endswith(f"/regions/{REGION}") and "zone" not in scaler
    assert scaler["target"].endswith(f"/regions/{REGION}/instanceGroupManagers/{group}")
    assert scaler["autoscalingPolicy"]["cpuUtilization"]["utilizationTarget"] == 0.7
    gcloud("compute", "instance-groups", "managed", "delete", group, "--region", REGION)
    left = gce.regionAutoscalers().list(project=PROJECT, region=REGION).execute().get("items", [])
    assert not [a for a in left if a["target"].endswith(f"/instanceGroupManagers/{group}")]
    gone = gcloud("compute", "instance-groups", "managed", "list-instances", group, "--region", REGION, check=False)
    assert gone.returncode != 0 and "was not found" in gone.stderr
    left = json.loads(gcloud("compute", "instances", "list", "--format=json").stdout)
    assert not [i for i in left if i["name"].startswith(f"{group}-")]
    gcloud("compute", "instance-templates", "delete", template)
