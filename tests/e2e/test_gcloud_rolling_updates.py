"""gcloud compute instance-groups managed: rolling-action start-update/replace, set-instance-template,
recreate-instances, update-instances, create-instance and update (autohealing) with the real CLI."""

from __future__ import annotations

import json
import time

from tests.conftest import PROJECT, ZONE, unique
from tests.helpers.managed_groups import delete, listed, managed, ready


def group_of(gce, group: str) -> dict:
    return gce.instanceGroupManagers().get(project=PROJECT, zone=ZONE, instanceGroupManager=group).execute()


def templates(items: list[dict]) -> set[str]:
    """The names of the templates the members run."""
    return {i["version"]["instanceTemplate"].rsplit("/", 1)[1] for i in items}


def settled(gce, gcloud, group: str, size: int, template: str) -> list[dict]:
    """gcloud's list-instances once every member is RUNNING on ``template`` and the group is stable
    (waited for with the Python client: see ``converged``)."""
    deadline = time.monotonic() + 90
    while True:
        status = group_of(gce, group)["status"]
        members = managed(gce, group)
        if (status["isStable"] and status["versionTarget"]["isReached"] and ready(members, size)
                and templates(members) == {template}):
            break
        assert time.monotonic() < deadline, (status, members)
        time.sleep(0.2)
    items = listed(gcloud, group)
    assert ready(items, size) and templates(items) == {template}
    return items


def names(items: list[dict]) -> set[str]:
    return {i["instance"].rsplit("/", 1)[1] for i in items}


def test_rolling_updates_with_gcloud(gcloud, gce):
    t1, t2, t3, group, hc = unique("rt"), unique("rt"), unique("rt"), unique("rg"), unique("hc")
    for t in (t1, t2, t3):
        gcloud("compute", "instance-templates", "create", t, "--machine-type", "e2-micro",
               "--image-family", "debian-12", "--image-project", "debian-cloud")
    gcloud("compute", "instance-groups", "managed", "create", group, "--template", t1, "--size", "2", "--zone", ZONE)
    first = names(settled(gce, gcloud, group, 2, t1))

    gcloud("compute", "instance-groups", "managed", "rolling-action", "start-update", group, "--version",
           f"template={t2}", "--max-surge", "1", "--max-unavailable", "0", "--zone", ZONE)
    got = group_of(gce, group)
    assert got["updatePolicy"]["type"] == "PROACTIVE" and got["updatePolicy"]["maxSurge"]["calculated"] == 1
    updated = names(settled(gce, gcloud, group, 2, t2))
    assert not updated & first

    gcloud("compute", "instance-groups", "managed", "rolling-action", "replace", group, "--max-surge", "1",
           "--max-unavailable", "0", "--zone", ZONE)
    replaced = names(settled(gce, gcloud, group, 2, t2))
    assert not replaced & updated

    one = sorted(replaced)[0]
    before = {i["instance"].rsplit("/", 1)[1]: i["id"] for i in listed(gcloud, group)}
    gcloud("compute", "instance-groups", "managed", "recreate-instances", group, "--instances", one, "--zone", ZONE)
    items = settled(gce, gcloud, group, 2, t2)
    after = {i["instance"].rsplit("/", 1)[1]: i["id"] for i in items}
    assert set(after) == replaced and after[one] != before[one]

    gcloud("compute", "instance-groups", "managed", "update-instances", group, "--instances", one,
           "--minimal-action", "restart", "--zone", ZONE)
    items = settled(gce, gcloud, group, 2, t2)
    assert {i["instance"].rsplit("/", 1)[1]: i["id"] for i in items} == after  # restarted in place

    gcloud("compute", "instance-groups", "managed", "set-instance-template", group, "--template", t3, "--zone", ZONE)
    got = group_of(gce, group)
    assert got["instanceTemplate"].endswith(f"/instanceTemplates/{t3}")
    # the policy is still PROACTIVE (start-update set it): the members follow
    settled(gce, gcloud, group, 2, t3)

    named = unique("byname")
    gcloud("compute", "instance-groups", "managed", "create-instance", group, "--instance", named, "--zone", ZONE)
    assert named in names(settled(gce, gcloud, group, 3, t3)) and group_of(gce, group)["targetSize"] == 3

    gcloud("compute", "health-checks", "create", "tcp", hc, "--port", "80")
    gcloud("compute", "instance-groups", "managed", "update", group, "--health-check", hc, "--initial-delay", "120",
           "--zone", ZONE)
    policy = group_of(gce, group)["autoHealingPolicies"]
    assert policy[0]["healthCheck"].endswith(f"/global/healthChecks/{hc}") and policy[0]["initialDelaySec"] == 120
    out = json.loads(gcloud("compute", "instance-groups", "managed", "list-instances", group, "--zone", ZONE,
                            "--format=json").stdout)
    assert len(out) == 3
    delete(gce, group)
    gcloud("compute", "health-checks", "delete", hc)
    for t in (t1, t2, t3):
        gcloud("compute", "instance-templates", "delete", t)
