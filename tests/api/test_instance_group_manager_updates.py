"""Managed groups changing their members: rolling updates (maxSurge/maxUnavailable observed while they
run), canaries, applyUpdatesToInstances, recreateInstances, createInstances, autohealing, bad input,
and a rolling update surviving ``kill -9``. google-api-python-client against ``gstack serve`` on
SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from tests.conftest import BACKENDS, PROJECT, ZONE, running_server, unique, wait_op
from tests.helpers.compute import fresh_project
from tests.helpers.managed_groups import (
    create,
    delete,
    get,
    managed,
    managers,
    members,
    template,
    wait_stable,
)
from tests.helpers.networks import done, fails

TPL = f"projects/{PROJECT}/global/instanceTemplates/"


def tpl_url(server, name: str) -> str:
    return f"{server.api}{TPL}{name}"


def patch(gce, name: str, body: dict) -> dict:
    op = managers(gce).patch(project=PROJECT, zone=ZONE, instanceGroupManager=name, body=body).execute()
    assert op["operationType"] == "compute.instanceGroupManagers.patch" and op["status"] == "DONE", op
    return op


def proactive(surge: dict | None = None, unavailable: dict | None = None, **extra) -> dict:
    return {"type": "PROACTIVE", "minimalAction": "REPLACE", "maxSurge": surge or {"fixed": 1},
            "maxUnavailable": unavailable or {"fixed": 0}, **extra}


def converge(gce, name: str, size: int, timeout: float = 90) -> tuple[dict, list[dict], list[list[dict]]]:
    """Wait until the group is stable with its version target reached, sampling listManagedInstances
    all along: (group, members, samples)."""
    samples: list[list[dict]] = []
    deadline = time.monotonic() + timeout
    while True:
        samples.append(managed(gce, name))
        group = get(gce, name)
        if group["status"]["isStable"] and group["status"]["versionTarget"]["isReached"]:
            items = managed(gce, name)
            if len(items) == size:
                return group, items, samples
        assert time.monotonic() < deadline, (group, samples[-1])
        time.sleep(0.1)


def on(items: list[dict], template_name: str) -> list[str]:
    return sorted(i["name"] for i in items if i["version"]["instanceTemplate"].endswith("/" + template_name))


def available(items: list[dict]) -> int:
    return sum(1 for i in items if (i["currentAction"], i.get("instanceStatus")) == ("NONE", "RUNNING"))


def test_rolling_update_keeps_within_surge_and_unavailable(gce, server):
    name, _ = create(gce, 3)
    first = sorted(i["name"] for i in managed(gce, name)) if wait_stable(gce, name) else []
    t2 = template(gce)
    patch(gce, name, {"versions": [{"instanceTemplate": f"global/instanceTemplates/{t2}"}], "updatePolicy": proactive()})
    group = get(gce, name)
    assert group["instanceTemplate"] == tpl_url(server, t2) and group["versions"] == [{"instanceTemplate": tpl_url(server, t2)}]
    policy = group["updatePolicy"]
    assert (policy["type"], policy["minimalAction"], policy["replacementMethod"]) == ("PROACTIVE", "REPLACE", "SUBSTITUTE")
    assert policy["maxSurge"] == {"fixed": 1, "calculated": 1} and policy["maxUnavailable"] == {"fixed": 0, "calculated": 0}
    assert not group["status"]["isStable"] and not group["status"]["versionTarget"]["isReached"]
    group, items, samples = converge(gce, name, 3)
    # never more than targetSize + maxSurge members, never fewer than targetSize - maxUnavailable available
    assert max(len(s) for s in samples) == 4
    assert min(available(s) for s in samples) >= 3
    assert on(items, t2) == sorted(i["name"] for i in items) and not set(first) & {i["name"] for i in items}
    assert {i["instanceStatus"] for i in items} == {"RUNNING"} and members(gce, name) == sorted(i["name"] for i in items)
    assert group["currentActions"]["none"] == 3
    left = {i["name"] for i in gce.instances().list(project=PROJECT, zone=ZONE).execute().get("items", [])}
    assert not set(first) & left
    # maxUnavailable alone: members go down first, never more than one at a time
    t3 = template(gce)
    patch(gce, name, {"versions": [{"instanceTemplate": f"global/instanceTemplates/{t3}"}],
                      "updatePolicy": proactive({"fixed": 0}, {"fixed": 1})})
    group, items, samples = converge(gce, name, 3)
    assert max(len(s) for s in samples) <= 3 and min(available(s) for s in samples) >= 2
    assert on(items, t3) == sorted(i["name"] for i in items)
    delete(gce, name)


def test_recreate_method_keeps_names_and_restart_keeps_instances(gce, server):
    name, _ = create(gce, 2)
    wait_stable(gce, name)
    before = {i["name"]: i["id"] for i in managed(gce, name)}
    t2 = template(gce)
    patch(gce, name, {"instanceTemplate": f"global/instanceTemplates/{t2}", "updatePolicy": proactive(
        {"fixed": 0}, {"fixed": 1}, replacementMethod="RECREATE")})
    _, items, samples = converge(gce, name, 2)
    assert {i["name"] for i in items} == set(before) and on(items, t2) == sorted(before)
    assert all(i["id"] != before[i["name"]] for i in items)
    assert any(i["currentAction"] == "RECREATING" for s in samples for i in s)
    # same template, a new version name, minimalAction RESTART: restarted in place, same instances
    before = {i["name"]: i["id"] for i in items}
    patch(gce, name, {"versions": [{"instanceTemplate": f"global/instanceTemplates/{t2}", "name": "v2"}],
                      "updatePolicy": {"minimalAction": "RESTART"}})
    _, items, _ = converge(gce, name, 2)
    assert {i["name"]: i["id"] for i in items} == before
    assert {i["version"].get("name") for i in items} == {"v2"}
    delete(gce, name)


def test_canary_fixed_then_percent(gce, server):
    name, _ = create(gce, 4)
    wait_stable(gce, name)
    t1 = get(gce, name)["instanceTemplate"].rsplit("/", 1)[1]
    t2 = template(gce)
    patch(gce, name, {"versions": [
        {"instanceTemplate": f"global/instanceTemplates/{t1}", "name": "stable"},
        {"instanceTemplate": f"global/instanceTemplates/{t2}", "name": "canary", "targetSize": {"fixed": 1}}],
        "updatePolicy": proactive()})
    group, items, _ = converge(gce, name, 4)
    assert group["versions"][1] == {"instanceTemplate": tpl_url(server, t2), "name": "canary",
                                    "targetSize": {"fixed": 1, "calculated": 1}}
    assert group["instanceTemplate"] == tpl_url(server, t1)
    assert len(on(items, t2)) == 1 and len(on(items, t1)) == 3
    assert {i["version"]["name"] for i in items if i["version"]["instanceTemplate"].endswith(t2)} == {"canary"}
    # 50 % of 5, rounded up: 3 on the canary
    patch(gce, name, {"targetSize": 5, "versions": [
        {"instanceTemplate": f"global/instanceTemplates/{t1}", "name": "stable"},
        {"instanceTemplate": f"global/instanceTemplates/{t2}", "name": "canary", "targetSize": {"percent": 50}}]})
    group, items, _ = converge(gce, name, 5)
    assert group["versions"][1]["targetSize"] == {"percent": 50, "calculated": 3}
    assert len(on(items, t2)) == 3 and len(on(items, t1)) == 2
    delete(gce, name)


def test_opportunistic_updates_only_what_is_asked(gce, server):
    name, _ = create(gce, 3)
    wait_stable(gce, name)
    a, b, c = sorted(i["name"] for i in managed(gce, name))
    t1 = get(gce, name)["instanceTemplate"].rsplit("/", 1)[1]
    t2 = template(gce)
    op = managers(gce).setInstanceTemplate(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "instanceTemplate": f"global/instanceTemplates/{t2}"}).execute()
    assert op["operationType"] == "compute.instanceGroupManagers.setInstanceTemplate" and op["status"] == "DONE"
    time.sleep(1)
    group = get(gce, name)
    assert group["status"]["isStable"] and not group["status"]["versionTarget"]["isReached"]
    assert on(managed(gce, name), t1) == [a, b, c]
    url = f"zones/{ZONE}/instances/"
    # REPLACE needed, RESTART at most: nothing happens
    op = managers(gce).applyUpdatesToInstances(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "instances": [url + b], "mostDisruptiveAllowedAction": "RESTART"}).execute()
    assert op["operationType"] == "compute.instanceGroupManagers.applyUpdatesToInstances" and op["status"] == "DONE"
    time.sleep(1)
    assert on(wait_stable(gce, name) and managed(gce, name), t1) == [a, b, c]
    # one member replaced (SUBSTITUTE: a new name), the others left alone
    managers(gce).applyUpdatesToInstances(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "instances": [url + a], "minimalAction": "REPLACE"}).execute()
    group = wait_stable(gce, name)
    items = managed(gce, name)
    assert len(items) == 3 and on(items, t1) == [b, c] and len(on(items, t2)) == 1 and a not in on(items, t2)
    assert not group["status"]["versionTarget"]["isReached"]
    # recreateInstances: same name, a new instance, on the intended version
    old_id = next(i["id"] for i in items if i["name"] == b)
    op = managers(gce).recreateInstances(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "instances": [url + b]}).execute()
    assert op["operationType"] == "compute.instanceGroupManagers.recreateInstances" and op["status"] == "DONE"
    group = wait_stable(gce, name)
    items = managed(gce, name)
    assert b in on(items, t2) and next(i["id"] for i in items if i["name"] == b) != old_id and on(items, t1) == [c]
    # allInstances
    managers(gce).applyUpdatesToInstances(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "allInstances": True, "minimalAction": "REPLACE"}).execute()
    group, items, _ = converge(gce, name, 3)
    assert on(items, t2) == sorted(i["name"] for i in items) and group["status"]["versionTarget"]["isReached"]
    delete(gce, name)


def test_create_instances_with_names(gce, server):
    name, base = create(gce, 1)
    wait_stable(gce, name)
    wanted = [unique("named"), unique("named")]
    op = managers(gce).createInstances(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "instances": [{"name": n} for n in wanted]}).execute()
    assert op["operationType"] == "compute.instanceGroupManagers.createInstances" and op["status"] == "DONE"
    assert get(gce, name)["targetSize"] == 3
    group = wait_stable(gce, name)
    names = sorted(i["name"] for i in managed(gce, name))
    assert group["currentActions"]["none"] == 3 and set(wanted) < set(names) and members(gce, name) == names
    # a name taken (a member's, or any instance's of the zone) is refused and nothing changes
    fails(managers(gce).createInstances(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "instances": [{"name": unique("ok")}, {"name": wanted[0]}]}), 409, "alreadyExists")
    assert get(gce, name)["targetSize"] == 3 and sorted(i["name"] for i in managed(gce, name)) == names
    delete(gce, name)


def test_bad_input_changes_nothing(gce, server):
    name, _ = create(gce, 0)
    before = get(gce, name)
    t2 = f"global/instanceTemplates/{template(gce)}"
    bad = [
        ({"updatePolicy": proactive({"fixed": 0}, {"fixed": 0})}, "resource.updatePolicy.maxUnavailable",
         "At least one of either maxSurge or maxUnavailable must be greater than 0."),
        ({"updatePolicy": proactive({"fixed": 1}, {"fixed": 1}, replacementMethod="RECREATE")},
         "resource.updatePolicy.maxSurge", "maxSurge must be equal to 0 when replacement method is set to RECREATE"),
        ({"updatePolicy": proactive({"percent": 20})}, "resource.updatePolicy.maxSurge.percent",
         "Percent value is only allowed for managed instance groups with size at least 10."),
        ({"updatePolicy": {"minimalAction": "REPLACE", "mostDisruptiveAllowedAction": "RESTART"}},
         "resource.updatePolicy.mostDisruptiveAllowedAction", None),
        ({"versions": [{"instanceTemplate": t2}, {"instanceTemplate": before["instanceTemplate"]}]},
         "resource.versions", None),
        ({"autoHealingPolicies": [{"initialDelaySec": 4000}]}, "resource.autoHealingPolicies[0].initialDelaySec", None),
    ]
    for body, field, why in bad:
        err = fails(managers(gce).patch(project=PROJECT, zone=ZONE, instanceGroupManager=name, body=body), 400, "invalid")
        assert err["message"].startswith(f"Invalid value for field '{field}'"), err
        if why:
            assert err["message"].endswith(why), err
    err = fails(managers(gce).patch(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "updatePolicy": {"type": "SOMETIMES"}}), 400, "invalid")
    assert err["message"].startswith("Invalid value at 'resource.updatePolicy.type'")
    fails(managers(gce).patch(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "instanceTemplate": "global/instanceTemplates/nope"}), 404, "notFound")
    fails(managers(gce).patch(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "autoHealingPolicies": [{"healthCheck": "global/healthChecks/nope"}]}), 404, "notFound")
    fails(managers(gce).applyUpdatesToInstances(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "allInstances": True, "minimalAction": "REPLACE", "mostDisruptiveAllowedAction": "REFRESH"}), 400, "invalid")
    fails(managers(gce).recreateInstances(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "instances": [f"zones/{ZONE}/instances/nobody"]}), 400, "invalid")
    fails(managers(gce).patch(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
        "fingerprint": "AAAAAAAAAAA=", "targetSize": 2}), 412, "conditionNotMet")
    assert get(gce, name) == before
    delete(gce, name)


def test_percent_arithmetic(server):
    project, gce = fresh_project(server, "migp")  # a group of 10 and more: a quota of its own
    name, _ = create(gce, 0, project)

    def policy() -> dict:
        return get(gce, name, project)["updatePolicy"]

    op = managers(gce).patch(project=project, zone=ZONE, instanceGroupManager=name, body={
        "targetSize": 10, "updatePolicy": {"maxSurge": {"percent": 25}, "maxUnavailable": {"percent": 25}}}).execute()
    assert op["status"] == "DONE"
    # maxSurge rounds up, maxUnavailable down: 2.5 of 10
    assert policy()["maxSurge"] == {"percent": 25, "calculated": 3}
    assert policy()["maxUnavailable"] == {"percent": 25, "calculated": 2}
    managers(gce).resize(project=project, zone=ZONE, instanceGroupManager=name, size=14).execute()
    assert (policy()["maxSurge"]["calculated"], policy()["maxUnavailable"]["calculated"]) == (4, 3)
    delete(gce, name, project)


def health_check(gce) -> str:
    hc = unique("hc")
    done(gce, gce.healthChecks().insert(project=PROJECT, body={"name": hc, "type": "TCP", "tcpHealthCheck": {"port": 80}}))
    return f"global/healthChecks/{hc}"


def ids(gce, name: str) -> dict[str, str]:
    return {i["name"]: i.get("id", "") for i in managed(gce, name)}


def wait_for(predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_autohealing_recreates_unhealthy_and_stopped_members(gce, server):
    hc = health_check(gce)
    name, _ = create(gce, 2)
    patch(gce, name, {"autoHealingPolicies": [{"healthCheck": hc, "initialDelaySec": 3600}]})
    assert get(gce, name)["autoHealingPolicies"] == [{"healthCheck": f"{server.api}projects/{PROJECT}/{hc}",
                                                      "initialDelaySec": 3600}]
    wait_stable(gce, name)
    first = ids(gce, name)
    a, b = sorted(first)
    server.admin("health", "set", "--project", PROJECT, "--zone", ZONE, a, "UNHEALTHY")
    # targetPools.getHealth reads the same health model
    pool = unique("tp")
    done(gce, gce.targetPools().insert(project=PROJECT, region="us-central1", body={
        "name": pool, "instances": [f"zones/{ZONE}/instances/{a}"]}))
    health = gce.targetPools().getHealth(project=PROJECT, region="us-central1", targetPool=pool, body={
        "instance": f"zones/{ZONE}/instances/{a}"}).execute()
    assert health["healthStatus"][0]["healthState"] == "UNHEALTHY"
    done(gce, gce.targetPools().delete(project=PROJECT, region="us-central1", targetPool=pool))
    time.sleep(4)  # within initialDelaySec: left alone
    assert ids(gce, name) == first and get(gce, name)["status"]["isStable"]
    patch(gce, name, {"autoHealingPolicies": [{"healthCheck": hc, "initialDelaySec": 0}]})
    assert wait_for(lambda: ids(gce, name).get(a) not in ("", first[a]) and get(gce, name)["status"]["isStable"])
    healed = ids(gce, name)
    assert set(healed) == {a, b} and healed[b] == first[b]
    assert gce.instances().get(project=PROJECT, zone=ZONE, instance=a).execute()["status"] == "RUNNING"
    # stopped behind the group's back: recreated (as GCE recreates any member that stops RUNNING)
    wait_op(gce, gce.instances().stop(project=PROJECT, zone=ZONE, instance=b).execute())
    assert wait_for(lambda: ids(gce, name).get(b) not in ("", first[b]) and get(gce, name)["status"]["isStable"])
    assert gce.instances().get(project=PROJECT, zone=ZONE, instance=b).execute()["status"] == "RUNNING"
    assert ids(gce, name)[a] == healed[a]
    delete(gce, name)


def test_stopped_member_without_autohealing_is_recreated(gce, server):
    name, _ = create(gce, 1)
    wait_stable(gce, name)
    (a, first), = ids(gce, name).items()
    wait_op(gce, gce.instances().stop(project=PROJECT, zone=ZONE, instance=a).execute())
    assert wait_for(lambda: ids(gce, name).get(a) not in ("", first) and get(gce, name)["status"]["isStable"])
    assert gce.instances().get(project=PROJECT, zone=ZONE, instance=a).execute()["status"] == "RUNNING"
    delete(gce, name)


@pytest.fixture(params=BACKENDS)
def slow_server(request):
    with running_server(request.param, GSTACK_SIM_LATENCY='{"spawn": 1.0}') as server:
        yield server


@pytest.mark.xdist_group("restart")
def test_rolling_update_survives_kill(slow_server):
    srv = slow_server
    gce = srv.gce()
    name, base = create(gce, 3)
    wait_stable(gce, name)
    t2 = template(gce)
    patch(gce, name, {"instanceTemplate": f"global/instanceTemplates/{t2}", "updatePolicy": proactive()})
    time.sleep(1.5)  # a substitute is being made
    srv.kill()
    srv.start()
    gce = srv.gce()
    group, items, samples = converge(gce, name, 3, timeout=120)
    assert max(len(s) for s in samples) <= 4 and on(items, t2) == sorted(i["name"] for i in items)
    with srv.engine().connect() as conn:
        made = conn.execute(text("SELECT name FROM resources WHERE collection = 'instances' AND name LIKE :p"),
                            {"p": f"{base}-%"}).scalars().all()
    assert sorted(made) == sorted(i["name"] for i in items) == members(gce, name)
    delete(gce, name)


def test_regional_group_rolls_and_recreates(gce, server):
    """regionInstanceGroupManagers route to the same use cases: a rolling update within maxSurge
    keeps the group spread over its zones; recreateInstances keeps a member's name and zone."""
    rigm, region = gce.regionInstanceGroupManagers(), "us-central1"
    name = unique("rmig")
    t1, t2 = template(gce), template(gce)
    op = rigm.insert(project=PROJECT, region=region, body={
        "name": name, "baseInstanceName": unique("rweb"), "targetSize": 3,
        "instanceTemplate": f"global/instanceTemplates/{t1}"}).execute()
    assert op["status"] == "DONE"

    def items() -> list[dict]:
        return rigm.listManagedInstances(project=PROJECT, region=region, instanceGroupManager=name).execute().get(
            "managedInstances", [])

    def settled() -> dict:
        return wait_for(lambda: (lambda g: g if g["status"]["isStable"] and g["status"]["versionTarget"]["isReached"]
                                 else None)(rigm.get(project=PROJECT, region=region, instanceGroupManager=name).execute()),
                        90)

    assert settled()
    zones = {i["instance"].split("/zones/")[1].split("/")[0] for i in items()}
    assert len(zones) == 3
    op = rigm.patch(project=PROJECT, region=region, instanceGroupManager=name, body={
        "instanceTemplate": f"global/instanceTemplates/{t2}", "updatePolicy": proactive({"fixed": 3})}).execute()
    assert op["operationType"] == "compute.regionInstanceGroupManagers.patch" and op["status"] == "DONE"
    group = settled()
    assert group["updatePolicy"]["maxSurge"] == {"fixed": 3, "calculated": 3}
    after = items()
    assert len(after) == 3 and on(after, t2) == sorted(i["name"] for i in after)
    assert {i["instance"].split("/zones/")[1].split("/")[0] for i in after} == zones
    one = after[0]
    op = rigm.recreateInstances(project=PROJECT, region=region, instanceGroupManager=name, body={
        "instances": [one["instance"]]}).execute()
    assert op["operationType"] == "compute.regionInstanceGroupManagers.recreateInstances"
    assert settled()
    again = next(i for i in items() if i["name"] == one["name"])
    assert again["instance"] == one["instance"] and again["id"] != one["id"]
    wait_op(gce, rigm.delete(project=PROJECT, region=region, instanceGroupManager=name).execute())
