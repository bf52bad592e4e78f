"""In-place instance updates against ``gstack serve`` (SQLite and PostgreSQL), with
google-api-python-client: setName, setMinCpuPlatform, setMachineResources,
updateShieldedInstanceConfig, instances.update (PUT) and getGuestAttributes.

Each method: it works, it is refused on a RUNNING VM where GCE needs it stopped (exact error), a stale
fingerprint gets 412, and bad input is refused with nothing changed.
"""

from __future__ import annotations

from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.compute import expect_error, link

FAMILY = "projects/debian-cloud/global/images/family/debian-12"
REGION = "us-central1"


def _create(gce, name: str, **nic) -> dict:
    body = {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}],
            "networkInterfaces": [{"network": "global/networks/default", **nic}]}
    op = wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body).execute())
    assert "error" not in op, op
    return _get(gce, name)


def _get(gce, name: str) -> dict:
    return gce.instances().get(project=PROJECT, zone=ZONE, instance=name).execute()


def _act(gce, method: str, name: str, **kw) -> dict:
    op = getattr(gce.instances(), method)(project=PROJECT, zone=ZONE, instance=name, **kw).execute()
    assert op["operationType"] == method
    done = wait_op(gce, op)
    assert done["status"] == "DONE" and "error" not in done, done
    return done


def _call(gce, method: str, name: str, **kw):
    return getattr(gce.instances(), method)(project=PROJECT, zone=ZONE, instance=name, **kw)


def _stopped(why: str, field: str, value: str) -> str:
    return f"Invalid value for field '{field}': '{value}'. {why}"


def _platforms(gce) -> list[str]:
    return gce.zones().get(project=PROJECT, zone=ZONE).execute()["availableCpuPlatforms"]


# -- setName ---------------------------------------------------------------------------------------


def test_set_name_renames_a_stopped_instance_and_its_links(server, gce):
    name, other, new = unique("ren"), unique("ren"), unique("renamed")
    vm = _create(gce, name)
    _create(gce, other)
    expect_error(_call(gce, "setName", name, body={"name": new, "currentName": name}), 400, "invalid",
                 _stopped(f"Instance '{name}' must be stopped before it can be renamed.", "name", new))
    _act(gce, "stop", name)
    expect_error(_call(gce, "setName", name, body={"name": new, "currentName": "someone-else"}), 412,
                 "conditionNotMet", f"The current name 'someone-else' given does not match the name of the "
                 f"instance '{name}'.")
    expect_error(_call(gce, "setName", name, body={"name": other, "currentName": name}), 409, "alreadyExists",
                 f"The resource 'projects/{PROJECT}/zones/{ZONE}/instances/{other}' already exists")
    expect_error(_call(gce, "setName", name, body={"name": "Bad_Name", "currentName": name}), 400, "invalid")
    assert _get(gce, name)["fingerprint"] == _get(gce, name)["fingerprint"]
    assert _get(gce, name)["name"] == name

    _act(gce, "setName", name, body={"name": new, "currentName": name})
    renamed = _get(gce, new)
    assert renamed["id"] == vm["id"] and renamed["name"] == new
    assert renamed["selfLink"] == link(server, f"projects/{PROJECT}/zones/{ZONE}/instances/{new}")
    assert renamed["hostname"] == f"{new}.{ZONE}.c.{PROJECT}.internal"
    expect_error(gce.instances().get(project=PROJECT, zone=ZONE, instance=name), 404, "notFound")
    boot = gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()  # auto-named: keeps its name
    assert boot["users"] == [renamed["selfLink"]]
    _act(gce, "start", new)
    assert _get(gce, new)["status"] == "RUNNING"
    for vm_name in (new, other):
        wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=vm_name).execute())


def _done(gce, request) -> None:
    done = wait_op(gce, request.execute())
    assert done["status"] == "DONE" and "error" not in done, done


def test_set_name_moves_every_link_other_resources_hold(server, gce):
    """Each kind of resource that holds an instance's link (core.services.instances.updates.
    link_holders, and its disks) holds the new one after the rename, and nothing else changed."""
    name, new, data = unique("held"), unique("moved"), unique("data")
    ext, internal, pool, route, image = (unique(p) for p in ("ext", "int", "pool", "route", "mi"))
    _done(gce, gce.addresses().insert(project=PROJECT, region=REGION, body={"name": ext}))
    _done(gce, gce.addresses().insert(project=PROJECT, region=REGION, body={
        "name": internal, "addressType": "INTERNAL", "subnetwork": f"regions/{REGION}/subnetworks/default"}))
    ip = {a: gce.addresses().get(project=PROJECT, region=REGION, address=a).execute()["address"] for a in (ext, internal)}
    vm = _create(gce, name, networkIP=ip[internal],
                 accessConfigs=[{"name": "External NAT", "type": "ONE_TO_ONE_NAT", "natIP": ip[ext]}])
    _done(gce, gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": data, "sizeGb": "10"}))
    _act(gce, "attachDisk", name, body={"source": f"zones/{ZONE}/disks/{data}"})
    _done(gce, gce.targetPools().insert(project=PROJECT, region=REGION, body={"name": pool, "instances": [vm["selfLink"]]}))
    _done(gce, gce.routes().insert(project=PROJECT, body={
        "name": route, "network": "global/networks/default", "destRange": "192.168.77.0/24",
        "nextHopInstance": vm["selfLink"]}))
    _done(gce, gce.machineImages().insert(project=PROJECT, body={"name": image, "sourceInstance": vm["selfLink"]}))
    _act(gce, "stop", name)

    def holders() -> dict:
        return {"boot": gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()["users"],
                "data": gce.disks().get(project=PROJECT, zone=ZONE, disk=data).execute()["users"],
                **{a: gce.addresses().get(project=PROJECT, region=REGION, address=a).execute()["users"]
                   for a in (ext, internal)},
                "pool": gce.targetPools().get(project=PROJECT, region=REGION, targetPool=pool).execute()["instances"],
                "route": [gce.routes().get(project=PROJECT, route=route).execute()["nextHopInstance"]],
                "image": [gce.machineImages().get(project=PROJECT, machineImage=image).execute()["sourceInstance"]]}

    assert holders() == dict.fromkeys(holders(), [vm["selfLink"]])
    _act(gce, "setName", name, body={"name": new, "currentName": name})
    renamed = _get(gce, new)
    assert renamed["selfLink"] == link(server, f"projects/{PROJECT}/zones/{ZONE}/instances/{new}")
    assert holders() == dict.fromkeys(holders(), [renamed["selfLink"]])
    assert renamed["networkInterfaces"][0]["networkIP"] == ip[internal]
    assert renamed["networkInterfaces"][0]["accessConfigs"][0]["natIP"] == ip[ext]
    _done(gce, gce.routes().delete(project=PROJECT, route=route))
    _done(gce, gce.targetPools().delete(project=PROJECT, region=REGION, targetPool=pool))
    _done(gce, gce.machineImages().delete(project=PROJECT, machineImage=image))
    _done(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=new))
    _done(gce, gce.disks().delete(project=PROJECT, zone=ZONE, disk=data))
    for address in (ext, internal):
        _done(gce, gce.addresses().delete(project=PROJECT, region=REGION, address=address))


# -- CPU platform, accelerators, Shielded VM ------------------------------------------------------


def test_cpu_platform_accelerators_and_shielded_config(server, gce):
    name = unique("plat")
    _create(gce, name)
    platform = _platforms(gce)[0]
    expect_error(_call(gce, "setMinCpuPlatform", name, body={"minCpuPlatform": platform}), 400, "invalid",
                 _stopped(f"Instance '{name}' must be stopped before changing its minimum CPU platform.",
                          "minCpuPlatform", platform))
    expect_error(_call(gce, "setMachineResources", name, body={"guestAccelerators": []}), 400, "invalid",
                 _stopped(f"Instance '{name}' must be stopped before changing its guest accelerators.",
                          "guestAccelerators", "[]"))
    expect_error(_call(gce, "updateShieldedInstanceConfig", name, body={"enableSecureBoot": True}), 400, "invalid",
                 _stopped(f"Instance '{name}' must be stopped before changing its Shielded VM secure boot or vTPM "
                          "settings.", "resource.enableSecureBoot", "True"))
    # integrity monitoring may change while the VM runs
    _act(gce, "updateShieldedInstanceConfig", name, body={"enableIntegrityMonitoring": False})
    assert _get(gce, name)["shieldedInstanceConfig"] == {"enableSecureBoot": False, "enableVtpm": True,
                                                         "enableIntegrityMonitoring": False}

    _act(gce, "stop", name)
    before = _get(gce, name)
    expect_error(_call(gce, "setMinCpuPlatform", name, body={"minCpuPlatform": "Intel Nonexistent"}), 400, "invalid")
    expect_error(_call(gce, "setMachineResources", name, body={"guestAccelerators": [
        {"acceleratorType": f"zones/{ZONE}/acceleratorTypes/nvidia-tesla-t4", "acceleratorCount": 1}]}),
        404, "notFound", f"The resource 'projects/{PROJECT}/zones/{ZONE}/acceleratorTypes/nvidia-tesla-t4' "
                         "was not found")
    expect_error(_call(gce, "updateShieldedInstanceConfig", name, body={"enableVtpm": False,
                                                                        "enableIntegrityMonitoring": True}),
                 400, "invalid")
    assert _get(gce, name)["fingerprint"] == before["fingerprint"]

    _act(gce, "setMinCpuPlatform", name, body={"minCpuPlatform": platform})
    assert _get(gce, name)["minCpuPlatform"] == platform
    _act(gce, "setMachineResources", name, body={"guestAccelerators": []})
    _act(gce, "updateShieldedInstanceConfig", name, body={"enableSecureBoot": True})
    after = _get(gce, name)
    assert after["shieldedInstanceConfig"]["enableSecureBoot"] is True
    assert "guestAccelerators" not in after
    _act(gce, "setMinCpuPlatform", name, body={"minCpuPlatform": "Automatic"})
    assert "minCpuPlatform" not in _get(gce, name)
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=name).execute())


# -- instances.update ------------------------------------------------------------------------------


def test_update_replaces_the_updatable_fields(server, gce):
    name = unique("upd")
    inst = _create(gce, name)
    changed = {**inst, "description": "updated", "labels": {"env": "prod"}, "deletionProtection": False,
               "metadata": {"items": [{"key": "k", "value": "v"}]}, "tags": {"items": ["web"]}}
    _act(gce, "update", name, body=changed, minimalAction="NO_EFFECT", mostDisruptiveAllowedAction="REFRESH")
    after = _get(gce, name)
    assert after["description"] == "updated" and after["labels"] == {"env": "prod"}
    assert after["metadata"]["items"] == [{"key": "k", "value": "v"}] and after["tags"]["items"] == ["web"]
    assert after["fingerprint"] != inst["fingerprint"] and after["labelFingerprint"] != inst["labelFingerprint"]

    # the fingerprint read before is stale now
    expect_error(_call(gce, "update", name, body={**inst, "description": "again"}), 412, "conditionNotMet",
                 "Invalid fingerprint.")
    new_type = f"zones/{ZONE}/machineTypes/e2-small"
    expect_error(_call(gce, "update", name, body={**after, "machineType": new_type, "description": "x"}), 400,
                 "invalid", _stopped(f"Instance '{name}' must be stopped before changing its machine type.",
                                     "resource.machineType", new_type))
    expect_error(_call(gce, "update", name, body={**after, "name": "other-name"}), 400, "invalid",
                 "Invalid value for field 'resource.name': 'other-name'. Use instances.setName to rename an "
                 "instance.")
    expect_error(_call(gce, "update", name, body={**after, "labels": {"Bad": "x"}}), 400, "invalid")
    expect_error(_call(gce, "update", name, body=after, minimalAction="RESTART",
                       mostDisruptiveAllowedAction="NO_EFFECT"), 400, "invalid")
    assert _get(gce, name) == after

    _act(gce, "stop", name)
    stopped = _get(gce, name)
    _act(gce, "update", name, body={**stopped, "machineType": new_type})
    assert _get(gce, name)["machineType"].endswith("/machineTypes/e2-small")
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=name).execute())


# -- guest attributes ------------------------------------------------------------------------------


def test_guest_attributes_are_empty_until_the_guest_writes_them(server, gce):
    name = unique("guest")
    _create(gce, name)
    got = gce.instances().getGuestAttributes(project=PROJECT, zone=ZONE, instance=name,
                                             queryPath="hostkeys/").execute()
    assert got["kind"] == "compute#guestAttributes"
    assert got["queryPath"] == "hostkeys/" and got["queryValue"] == {}
    expect_error(gce.instances().getGuestAttributes(project=PROJECT, zone=ZONE, instance=name,
                                                    variableKey="hostkeys/ssh-rsa"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/zones/{ZONE}/instances/{name}/guestAttributes/hostkeys/ssh-rsa' "
                 "was not found")
    expect_error(gce.instances().getGuestAttributes(project=PROJECT, zone=ZONE, instance="no-such-vm"), 404,
                 "notFound")
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=name).execute())
