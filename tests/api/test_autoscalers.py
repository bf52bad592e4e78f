"""autoscalers (and regionAutoscalers) against a ``gstack serve`` of their own on SQLite and
PostgreSQL, with google-api-python-client: the configuration's defaults and errors, and the decisions
the autoscaler makes on a CPU signal driven through the simulator's knob
(``gstack admin simulator set-cpu``). The server runs an autoscaler round every 0.3 s and, for
policies that name none, a stabilisation window of 2 s (GCE's is 10 minutes)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import BACKENDS, PROJECT, ZONE, running_server, unique, wait_op
from tests.helpers.autoscaled_groups import (
    create_group,
    group_of,
    managed,
    regional_group,
    regional_managed,
    wait_stable,
)
from tests.helpers.networks import fails

STABILIZATION = 2.0


@pytest.fixture(scope="module", params=BACKENDS)
def fast(request) -> Iterator:
    with running_server(request.param, GSTACK_AUTOSCALER_INTERVAL="0.3",
                        GSTACK_AUTOSCALER_STABILIZATION=str(STABILIZATION)) as srv:
        yield srv


@pytest.fixture(scope="module")
def gce(fast):
    return fast.gce()


def scalers(gce):
    return gce.autoscalers()


def insert(gce, group: str, name: str | None = None, **policy) -> str:
    name = name or unique("as")
    body = {"name": name, "target": f"zones/{ZONE}/instanceGroupManagers/{group}",
            "autoscalingPolicy": {"coolDownPeriodSec": 0, **policy}}
    op = scalers(gce).insert(project=PROJECT, zone=ZONE, body=body).execute()
    assert op["operationType"] == "compute.autoscalers.insert" and op["status"] == "DONE" and "error" not in op, op
    return name


def get(gce, name: str) -> dict:
    return scalers(gce).get(project=PROJECT, zone=ZONE, autoscaler=name).execute()


def until(what: Callable[[], dict], ok: Callable[[dict], bool], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if ok(got):
            return got
        assert time.monotonic() < deadline, f"never reached: {got}"
        time.sleep(0.2)


def size_becomes(gce, group: str, size: int) -> dict:
    """The group once its targetSize is ``size`` and it is stable (every member RUNNING)."""
    until(lambda: group_of(gce, group), lambda g: g["targetSize"] == size)
    return wait_stable(gce, group)


def load(fast, gce, group: str, utilisation: float) -> None:
    """Every member of the group keeps ``utilisation`` of its vCPUs busy from now on (a member the
    group deleted meanwhile, scaling in, is refused by the knob)."""
    for item in managed(gce, group):
        done = fast.admin("simulator", "set-cpu", "--project", PROJECT, "--zone", ZONE, "--instance", item["name"],
                          str(utilisation), check=False)
        assert done.returncode == 0 or "does not exist" in done.stderr, done.stderr


def remove(gce, autoscaler: str, group: str) -> None:
    op = scalers(gce).delete(project=PROJECT, zone=ZONE, autoscaler=autoscaler).execute()
    assert op["operationType"] == "compute.autoscalers.delete" and op["status"] == "DONE"
    op = wait_op(gce, gce.instanceGroupManagers().delete(project=PROJECT, zone=ZONE, instanceGroupManager=group)
                 .execute())
    assert "error" not in op, op


def test_configuration_defaults_patch_update_and_delete(gce, fast):
    group = create_group(gce, 1)
    name = unique("as")
    body = {"name": name, "target": f"{fast.api}projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/{group}",
            "autoscalingPolicy": {"maxNumReplicas": 3}}
    op = scalers(gce).insert(project=PROJECT, zone=ZONE, body=body).execute()
    assert op["operationType"] == "compute.autoscalers.insert" and op["status"] == "DONE"
    got = get(gce, name)
    assert got["kind"] == "compute#autoscaler" and got["status"] in ("PENDING", "ACTIVE")
    assert got["autoscalingPolicy"] == {
        "minNumReplicas": 1, "maxNumReplicas": 3, "coolDownPeriodSec": 60, "mode": "ON",
        "cpuUtilization": {"utilizationTarget": 0.6, "predictiveMethod": "NONE"}}
    assert got["zone"] == f"{fast.api}projects/{PROJECT}/zones/{ZONE}" and "region" not in got
    assert got["target"] == f"{fast.api}projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/{group}"
    assert got["selfLink"] == f"{fast.api}projects/{PROJECT}/zones/{ZONE}/autoscalers/{name}"
    active = until(lambda: get(gce, name), lambda a: a["status"] == "ACTIVE")
    assert active["recommendedSize"] == 1 and "statusDetails" not in active
    assert group_of(gce, group)["status"]["autoscaler"] == got["selfLink"]
    assert name in [a["name"] for a in scalers(gce).list(project=PROJECT, zone=ZONE).execute()["items"]]
    agg = scalers(gce).aggregatedList(project=PROJECT).execute()["items"]
    assert name in [a["name"] for a in agg[f"zones/{ZONE}"]["autoscalers"]]

    # patch merges (mode OFF, the rest kept); the autoscaler is PENDING until it reads it
    op = scalers(gce).patch(project=PROJECT, zone=ZONE, autoscaler=name,
                            body={"autoscalingPolicy": {"mode": "OFF", "minNumReplicas": 0}}).execute()
    assert op["operationType"] == "compute.autoscalers.patch" and op["status"] == "DONE"
    off = until(lambda: get(gce, name), lambda a: a["status"] == "ACTIVE" and "statusDetails" in a)
    assert off["autoscalingPolicy"]["maxNumReplicas"] == 3 and off["autoscalingPolicy"]["minNumReplicas"] == 0
    assert [d["type"] for d in off["statusDetails"]] == ["MODE_OFF"]
    # update replaces: what it leaves out takes its default again
    op = scalers(gce).update(project=PROJECT, zone=ZONE, autoscaler=name,
                             body={"name": name, "target": got["target"],
                                   "autoscalingPolicy": {"maxNumReplicas": 2, "minNumReplicas": 2}}).execute()
    assert op["operationType"] == "compute.autoscalers.update"
    same = until(lambda: get(gce, name), lambda a: a["status"] == "ACTIVE"
                 and [d["type"] for d in a.get("statusDetails", [])] == ["MIN_EQUALS_MAX"])
    assert same["autoscalingPolicy"]["mode"] == "ON" and same["autoscalingPolicy"]["minNumReplicas"] == 2
    assert size_becomes(gce, group, 2)["targetSize"] == 2  # below min: scaled out with no signal

    # the group cannot go while its autoscaler scales it
    fails(gce.instanceGroupManagers().delete(project=PROJECT, zone=ZONE, instanceGroupManager=group), 400,
          "resourceInUseByAnotherResource",
          f"The instance_group_manager resource 'projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/{group}' "
          f"is already being used by 'projects/{PROJECT}/zones/{ZONE}/autoscalers/{name}'")
    remove(gce, name, group)
    fails(scalers(gce).get(project=PROJECT, zone=ZONE, autoscaler=name), 404, "notFound")


def test_bad_input_is_refused_and_changes_nothing(gce):
    group = create_group(gce, 0)
    target = f"zones/{ZONE}/instanceGroupManagers/{group}"
    p = "resource.autoscalingPolicy"
    cases = [
        ({"target": target, "autoscalingPolicy": {"minNumReplicas": 3, "maxNumReplicas": 2}}, 400, "invalid",
         f"Invalid value for field '{p}.maxNumReplicas': '2'. Maximum number of replicas must be greater than or "
         "equal to minimum number of replicas."),
        ({"autoscalingPolicy": {"maxNumReplicas": 2}}, 400, "required", "Required field 'resource.target' not specified"),
        ({"target": target, "autoscalingPolicy": {"minNumReplicas": 1}}, 400, "required",
         f"Required field '{p}.maxNumReplicas' not specified"),
        ({"target": target, "autoscalingPolicy": {"maxNumReplicas": 2, "cpuUtilization": {"utilizationTarget": 1.5}}},
         400, "invalid", f"Invalid value for field '{p}.cpuUtilization.utilizationTarget': '1.5'. CPU utilization "
                         "target must be greater than 0.0 and less than or equal to 1.0."),
        ({"target": target, "autoscalingPolicy": {"maxNumReplicas": 2, "cpuUtilization": {"utilizationTarget": 0}}},
         400, "invalid", None),
        ({"target": f"zones/{ZONE}/instanceGroupManagers/{group}-gone", "autoscalingPolicy": {"maxNumReplicas": 2}},
         404, "notFound",
         f"The resource 'projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/{group}-gone' was not found"),
    ]
    for body, status, reason, message in cases:
        name = unique("bad")
        fails(scalers(gce).insert(project=PROJECT, zone=ZONE, body={"name": name, **body}), status, reason, message)
        fails(scalers(gce).get(project=PROJECT, zone=ZONE, autoscaler=name), 404, "notFound")
    assert "autoscaler" not in group_of(gce, group)["status"]
    # one autoscaler per group
    first = insert(gce, group, maxNumReplicas=2, minNumReplicas=0)
    second = unique("as")
    fails(scalers(gce).insert(project=PROJECT, zone=ZONE, body={
        "name": second, "target": target, "autoscalingPolicy": {"maxNumReplicas": 4}}), 400,
        "resourceInUseByAnotherResource",
        f"The instance_group_manager resource 'projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/{group}' is "
        f"already being used by 'projects/{PROJECT}/zones/{ZONE}/autoscalers/{first}'")
    fails(scalers(gce).get(project=PROJECT, zone=ZONE, autoscaler=second), 404, "notFound")
    # a bad patch changes nothing either
    before = get(gce, first)["autoscalingPolicy"]
    fails(scalers(gce).patch(project=PROJECT, zone=ZONE, autoscaler=first,
                             body={"autoscalingPolicy": {"minNumReplicas": 5}}), 400, "invalid")
    assert get(gce, first)["autoscalingPolicy"] == before
    remove(gce, first, group)


def test_scales_out_to_max_on_load_and_in_to_min_after_the_window(gce, fast):
    group = create_group(gce, 1)
    wait_stable(gce, group)
    name = insert(gce, group, minNumReplicas=1, maxNumReplicas=3, cpuUtilization={"utilizationTarget": 0.5})
    assert until(lambda: get(gce, name), lambda a: a["status"] == "ACTIVE")["recommendedSize"] == 1
    load(fast, gce, group, 1.0)  # ceil(1.0 / 0.5) = 2
    size_becomes(gce, group, 2)
    load(fast, gce, group, 1.0)  # ceil(2.0 / 0.5) = 4, capped at 3
    size_becomes(gce, group, 3)
    capped = until(lambda: get(gce, name), lambda a: "statusDetails" in a)
    assert capped["recommendedSize"] == 3
    assert [d["type"] for d in capped["statusDetails"]] == ["CAPPED_AT_MAX_NUM_REPLICAS"]
    idle_since = time.monotonic()
    load(fast, gce, group, 0.0)
    size_becomes(gce, group, 1)
    assert time.monotonic() - idle_since >= STABILIZATION - 0.5  # not before the window passed
    assert get(gce, name)["recommendedSize"] == 1
    remove(gce, name, group)


def test_modes_off_and_only_scale_out(gce, fast):
    group = create_group(gce, 1)
    wait_stable(gce, group)
    name = insert(gce, group, maxNumReplicas=3, mode="OFF", cpuUtilization={"utilizationTarget": 0.5})
    load(fast, gce, group, 1.0)
    off = until(lambda: get(gce, name), lambda a: a.get("recommendedSize") == 2)
    assert [d["type"] for d in off["statusDetails"]] == ["MODE_OFF"]
    time.sleep(1.0)
    assert group_of(gce, group)["targetSize"] == 1  # recommended, not done
    scalers(gce).patch(project=PROJECT, zone=ZONE, autoscaler=name,
                       body={"autoscalingPolicy": {"mode": "ONLY_SCALE_OUT"}}).execute()
    size_becomes(gce, group, 2)
    assert [d["type"] for d in get(gce, name)["statusDetails"]] == ["MODE_ONLY_SCALE_OUT"]
    load(fast, gce, group, 0.0)
    until(lambda: get(gce, name), lambda a: a.get("recommendedSize") == 1, timeout=30)
    time.sleep(1.0)
    assert group_of(gce, group)["targetSize"] == 2  # never scaled in
    remove(gce, name, group)


def test_scale_in_control_limits_each_step(gce):
    group = create_group(gce, 3)
    wait_stable(gce, group)
    name = insert(gce, group, minNumReplicas=1, maxNumReplicas=3, stabilizationPeriodSec=0,
                  scaleInControl={"maxScaledInReplicas": {"fixed": 1}, "timeWindowSec": 6})
    assert get(gce, name)["autoscalingPolicy"]["scaleInControl"] == {
        "maxScaledInReplicas": {"fixed": 1, "calculated": 1}, "timeWindowSec": 6}
    until(lambda: group_of(gce, group), lambda g: g["targetSize"] == 2)
    stepped = time.monotonic()
    until(lambda: group_of(gce, group), lambda g: g["targetSize"] == 1, timeout=30)
    assert time.monotonic() - stepped >= 4  # one step per window: 3 stayed the peak for 6 s
    remove(gce, name, group)


def test_a_regional_autoscaler_scales_a_regional_group(gce, fast):
    region = "us-central1"
    ras = gce.regionAutoscalers()
    group = create_group(gce, 1, region=region)
    until(lambda: regional_group(gce, group, region), lambda g: g["status"]["isStable"])
    name = unique("ras")
    op = ras.insert(project=PROJECT, region=region, body={
        "name": name, "target": f"regions/{region}/instanceGroupManagers/{group}", "autoscalingPolicy": {
            "minNumReplicas": 1, "maxNumReplicas": 3, "coolDownPeriodSec": 0,
            "cpuUtilization": {"utilizationTarget": 0.5}}}).execute()
    assert op["operationType"] == "compute.regionAutoscalers.insert" and op["status"] == "DONE"
    assert op["region"].endswith(f"/regions/{region}") and "zone" not in op
    got = ras.get(project=PROJECT, region=region, autoscaler=name).execute()
    assert got["region"] == f"{fast.api}projects/{PROJECT}/regions/{region}" and "zone" not in got
    assert got["selfLink"] == f"{fast.api}projects/{PROJECT}/regions/{region}/autoscalers/{name}"
    assert [a["name"] for a in ras.list(project=PROJECT, region=region).execute()["items"]] == [name]
    agg = scalers(gce).aggregatedList(project=PROJECT).execute()["items"]
    assert name in [a["name"] for a in agg[f"regions/{region}"]["autoscalers"]]
    assert regional_group(gce, group, region)["status"]["autoscaler"] == got["selfLink"]
    # the signal of a regional group's members, in whichever zone each is
    for item in regional_managed(gce, group, region):
        zone = item["instance"].split("/zones/", 1)[1].split("/", 1)[0]
        fast.admin("simulator", "set-cpu", "--project", PROJECT, "--zone", zone, "--instance", item["name"], "1.0")
    until(lambda: regional_group(gce, group, region), lambda g: g["targetSize"] == 2 and g["status"]["isStable"])
    zones = {i["instance"].split("/zones/", 1)[1].split("/", 1)[0] for i in regional_managed(gce, group, region)}
    assert len(zones) == 2  # spread as the group spreads (EVEN)
    fails(gce.regionInstanceGroupManagers().delete(project=PROJECT, region=region, instanceGroupManager=group), 400,
          "resourceInUseByAnotherResource")
    # a regional autoscaler scales regional groups only
    zonal = create_group(gce, 0)
    fails(ras.insert(project=PROJECT, region=region, body={
        "name": unique("ras"), "target": f"zones/{ZONE}/instanceGroupManagers/{zonal}",
        "autoscalingPolicy": {"maxNumReplicas": 2}}), 400, "invalid")
    op = ras.delete(project=PROJECT, region=region, autoscaler=name).execute()
    assert op["operationType"] == "compute.regionAutoscalers.delete" and op["status"] == "DONE"
    assert "autoscaler" not in regional_group(gce, group, region)["status"]
    for op in (gce.regionInstanceGroupManagers().delete(project=PROJECT, region=region, instanceGroupManager=group),
               gce.instanceGroupManagers().delete(project=PROJECT, zone=ZONE, instanceGroupManager=zonal)):
        assert "error" not in wait_op(gce, op.execute())


def test_the_cpu_knob_refuses_what_it_cannot_set(fast):
    missing = fast.admin("simulator", "set-cpu", "--project", PROJECT, "--zone", ZONE, "--instance", unique("none"),
                         "0.5", check=False)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    too_much = fast.admin("simulator", "set-cpu", "--project", PROJECT, "--zone", ZONE, "--instance", "any", "1.5",
                          check=False)
    assert too_much.returncode != 0 and "between 0 and 1" in too_much.stderr


def test_the_autoscaler_goes_on_after_kill_9(gce, fast):
    """What a decision needs lives in the database: after ``kill -9`` and a restart the rounds go on,
    and a load set while no server ran (the knob is the database's) is acted on."""
    group = create_group(gce, 1)
    wait_stable(gce, group)
    name = insert(gce, group, minNumReplicas=1, maxNumReplicas=3, cpuUtilization={"utilizationTarget": 0.5})
    load(fast, gce, group, 1.0)
    size_becomes(gce, group, 2)
    members = [i["name"] for i in managed(gce, group)]
    fast.kill()
    for member in members:
        fast.admin("simulator", "set-cpu", "--project", PROJECT, "--zone", ZONE, "--instance", member, "1.0")
    fast.start()
    gce = fast.gce()
    assert size_becomes(gce, group, 3)["currentActions"]["none"] == 3
    assert sorted(members) == sorted(set(members) & {i["name"] for i in managed(gce, group)})  # none lost
    remove(gce, name, group)
