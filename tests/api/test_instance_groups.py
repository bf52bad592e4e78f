"""instanceGroups (unmanaged, zonal): end to end against ``gstack serve`` (SQLite and PostgreSQL),
driven by google-api-python-client. Every test names its groups and instances uniquely."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import text

from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.compute import fresh_project
from tests.helpers.networks import custom, done, fails

IMAGE = "projects/debian-cloud/global/images/family/debian-12"
DEFAULT_NET = f"projects/{PROJECT}/global/networks/default"


def groups(gce):
    return gce.instanceGroups()


def make_instance(gce, name: str | None = None, zone: str = ZONE) -> str:
    name = name or unique("igvm")
    body = {"name": name, "machineType": f"zones/{zone}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}
    op = wait_op(gce, gce.instances().insert(project=PROJECT, zone=zone, body=body).execute())
    assert "error" not in op, op
    return name


def make_group(gce, name: str | None = None, **fields) -> str:
    name = name or unique("ig")
    done(gce, groups(gce).insert(project=PROJECT, zone=ZONE, body={"name": name, **fields}),
         "compute.instanceGroups.insert")
    return name


def get(gce, name: str) -> dict:
    return groups(gce).get(project=PROJECT, zone=ZONE, instanceGroup=name).execute()


def refs(server, *names: str, zone: str = ZONE) -> dict:
    return {"instances": [{"instance": f"{server.api}projects/{PROJECT}/zones/{zone}/instances/{n}"} for n in names]}


def add(gce, server, group: str, *names: str) -> dict:
    return done(gce, groups(gce).addInstances(project=PROJECT, zone=ZONE, instanceGroup=group,
                                              body=refs(server, *names)), "compute.instanceGroups.addInstances")


def members(gce, group: str, state: str | None = None, **kw) -> list[str]:
    body = {"instanceState": state} if state else {}
    out = groups(gce).listInstances(project=PROJECT, zone=ZONE, instanceGroup=group, body=body, **kw).execute()
    assert out["kind"] == "compute#instanceGroupsListInstances"
    return [i["instance"].rsplit("/", 1)[-1] for i in out.get("items", [])]


def test_a_group_is_created_listed_and_deleted(gce, server):
    name = make_group(gce, description="web", namedPorts=[{"name": "http", "port": 80}])
    group = get(gce, name)
    assert group["kind"] == "compute#instanceGroup"
    assert (group["name"], group["description"], group["size"]) == (name, "web", 0)
    assert group["namedPorts"] == [{"name": "http", "port": 80}]
    assert group["zone"] == f"{server.api}projects/{PROJECT}/zones/{ZONE}"
    assert group["selfLink"] == f"{server.api}projects/{PROJECT}/zones/{ZONE}/instanceGroups/{name}"
    assert group["fingerprint"] and "network" not in group
    listed = groups(gce).list(project=PROJECT, zone=ZONE, filter=f"name = {name}").execute()
    assert listed["kind"] == "compute#instanceGroupList" and [g["name"] for g in listed["items"]] == [name]
    agg = groups(gce).aggregatedList(project=PROJECT, filter=f"name = {name}").execute()
    assert [g["name"] for g in agg["items"][f"zones/{ZONE}"]["instanceGroups"]] == [name]
    done(gce, groups(gce).delete(project=PROJECT, zone=ZONE, instanceGroup=name), "compute.instanceGroups.delete")
    fails(groups(gce).get(project=PROJECT, zone=ZONE, instanceGroup=name), 404, "notFound",
          f"The resource 'projects/{PROJECT}/zones/{ZONE}/instanceGroups/{name}' was not found")


def test_members_are_added_listed_by_state_and_removed(gce, server):
    a, b = make_instance(gce), make_instance(gce)
    name = make_group(gce, namedPorts=[{"name": "http", "port": 8080}])
    add(gce, server, name, a, b)
    group = get(gce, name)
    assert group["size"] == 2
    assert group["network"] == f"{server.api}{DEFAULT_NET}"
    assert group["subnetwork"].endswith("/regions/us-central1/subnetworks/default")
    out = groups(gce).listInstances(project=PROJECT, zone=ZONE, instanceGroup=name, body={}).execute()
    assert out["items"][0] == {"instance": f"{server.api}projects/{PROJECT}/zones/{ZONE}/instances/{min(a, b)}",
                               "status": "RUNNING", "namedPorts": [{"name": "http", "port": 8080}]}
    done(gce, gce.instances().stop(project=PROJECT, zone=ZONE, instance=a))
    assert members(gce, name, "RUNNING") == [b]
    assert members(gce, name, "ALL") == sorted([a, b]) == members(gce, name)
    assert members(gce, name, filter=f"instance eq .*/{b}") == [b]
    page = groups(gce).listInstances(project=PROJECT, zone=ZONE, instanceGroup=name, body={}, maxResults=1).execute()
    rest = groups(gce).listInstances(project=PROJECT, zone=ZONE, instanceGroup=name, body={}, maxResults=1,
                                     pageToken=page["nextPageToken"]).execute()
    assert [len(page["items"]), len(rest["items"]), "nextPageToken" in rest] == [1, 1, False]
    done(gce, groups(gce).removeInstances(project=PROJECT, zone=ZONE, instanceGroup=name, body=refs(server, a)),
         "compute.instanceGroups.removeInstances")
    assert (get(gce, name)["size"], members(gce, name)) == (1, [b])
    # an instance that is not a member is ignored
    done(gce, groups(gce).removeInstances(project=PROJECT, zone=ZONE, instanceGroup=name, body=refs(server, a)))
    assert get(gce, name)["size"] == 1
    done(gce, groups(gce).delete(project=PROJECT, zone=ZONE, instanceGroup=name))
    assert gce.instances().get(project=PROJECT, zone=ZONE, instance=b).execute()["status"] == "RUNNING"


def test_an_instance_may_be_in_several_groups_and_leaves_them_when_deleted(gce, server):
    a, b = make_instance(gce), make_instance(gce)
    one, two = make_group(gce), make_group(gce)
    add(gce, server, one, a, b)
    add(gce, server, two, a)
    done(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=a))
    assert (get(gce, one)["size"], members(gce, one)) == (1, [b])
    assert (get(gce, two)["size"], members(gce, two)) == (0, [])


def test_named_ports_change_with_the_fingerprint(gce):
    name = make_group(gce)
    old = get(gce, name)["fingerprint"]
    ports = [{"name": "http", "port": 80}, {"name": "https", "port": 443}]
    done(gce, groups(gce).setNamedPorts(project=PROJECT, zone=ZONE, instanceGroup=name,
                                        body={"namedPorts": ports, "fingerprint": old}),
         "compute.instanceGroups.setNamedPorts")
    group = get(gce, name)
    assert group["namedPorts"] == ports and group["fingerprint"] != old
    fails(groups(gce).setNamedPorts(project=PROJECT, zone=ZONE, instanceGroup=name,
                                    body={"namedPorts": [], "fingerprint": old}),
          412, "conditionNotMet", "Invalid fingerprint.")
    assert get(gce, name) == group
    done(gce, groups(gce).setNamedPorts(project=PROJECT, zone=ZONE, instanceGroup=name, body={"namedPorts": []}))
    assert "namedPorts" not in get(gce, name)


@pytest.mark.parametrize(("body", "status", "reason", "message"), [
    ({}, 400, "required", "Required field 'resource.name' not specified"),
    ({"name": "Bad_Name"}, 400, "invalid", "Invalid value for field 'resource.name': 'Bad_Name'. "
                                           "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"),
    ({"name": "ig-ok", "namedPorts": [{"name": "customHTTP", "port": 80}]}, 400, "invalid",
     "Invalid value for field 'resource.namedPorts[0].name': 'customHTTP'. "
     "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"),
    ({"name": "ig-ok", "namedPorts": [{"name": "http", "port": 70000}]}, 400, "invalid",
     "Invalid value for field 'resource.namedPorts[0].port': '70000'. Must be between 1 and 65535."),
    ({"name": "ig-ok", "network": "global/networks/nope"}, 404, "notFound",
     f"The resource 'projects/{PROJECT}/global/networks/nope' was not found"),
])
def test_bad_inserts_are_refused(gce, body, status, reason, message):
    fails(groups(gce).insert(project=PROJECT, zone=ZONE, body=body), status, reason, message)
    listed = groups(gce).list(project=PROJECT, zone=ZONE, filter="name = ig-ok").execute()
    assert "items" not in listed


def test_bad_membership_changes_are_refused_and_change_nothing(gce, server):
    a = make_instance(gce)
    name = make_group(gce)
    add(gce, server, name, a)
    before = get(gce, name)
    path = f"projects/{PROJECT}/zones/{ZONE}"
    fails(groups(gce).addInstances(project=PROJECT, zone=ZONE, instanceGroup=name, body=refs(server, a)),
          400, "memberAlreadyExists",
          f"Resource '{path}/instances/{a}' is already a member of '{path}/instanceGroups/{name}'.")
    fails(groups(gce).addInstances(project=PROJECT, zone=ZONE, instanceGroup=name, body=refs(server, "ghost")),
          404, "notFound", f"The resource '{path}/instances/ghost' was not found")
    fails(groups(gce).addInstances(project=PROJECT, zone=ZONE, instanceGroup=name,
                                   body=refs(server, a, zone="us-central1-b")),
          400, "invalid")
    fails(groups(gce).addInstances(project=PROJECT, zone=ZONE, instanceGroup=name, body={"instances": [{}]}),
          400, "required", "Required field 'instances[0].instance' not specified")
    fails(groups(gce).addInstances(project=PROJECT, zone=ZONE, instanceGroup="ghost", body=refs(server, a)),
          404, "notFound", f"The resource '{path}/instanceGroups/ghost' was not found")
    assert get(gce, name) == before and members(gce, name) == [a]


def test_an_instance_of_another_network_is_refused(gce, server):
    net = custom(gce, PROJECT)
    a = make_instance(gce)
    name = make_group(gce, network=f"global/networks/{net}")
    assert get(gce, name)["network"] == f"{server.api}projects/{PROJECT}/global/networks/{net}"
    fails(groups(gce).addInstances(project=PROJECT, zone=ZONE, instanceGroup=name, body=refs(server, a)),
          400, "invalid", f"Invalid value for field 'instances[0].instance': '{server.api}projects/{PROJECT}/zones/{ZONE}"
                          f"/instances/{a}'. Instance 'projects/{PROJECT}/zones/{ZONE}/instances/{a}' is not in "
                          f"'projects/{PROJECT}/global/networks/{net}', the network of the instance group.")
    assert get(gce, name)["size"] == 0
    fails(groups(gce).listInstances(project=PROJECT, zone=ZONE, instanceGroup=name, body={"instanceState": "X"}),
          400, "invalid")


def test_the_regional_quota_of_groups(gce, server):
    project, client = fresh_project(server, "igq")
    with server.engine().begin() as conn:
        conn.execute(text("UPDATE projects SET quota_limits = :q WHERE name = :p"),
                     {"q": orjson.dumps({"regions": {"us-central1": {"INSTANCE_GROUPS": 1}}}).decode(), "p": project})
    done(client, client.instanceGroups().insert(project=project, zone=ZONE, body={"name": "first"}))
    fails(client.instanceGroups().insert(project=project, zone="us-central1-b", body={"name": "second"}),
          403, "quotaExceeded", "Quota 'INSTANCE_GROUPS' exceeded.  Limit: 1.0 in region us-central1.")
    done(client, client.instanceGroups().insert(project=project, zone="europe-west1-b", body={"name": "second"}))
