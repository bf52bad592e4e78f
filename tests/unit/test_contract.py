"""The response contract checker (gstack/gce/contract.py) on bodies built here: it refuses what the
discovery document does not describe and accepts what it does."""

from __future__ import annotations

import os

import orjson
import pytest

from gstack.gce.contract import (
    ENV_FLAG,
    ERROR_ENVELOPE,
    LOG_NAME,
    install,
    kinds,
    response_violations,
    violations,
)
from gstack.gce.errors import envelope

BASE = "https://www.googleapis.com/compute/v1/projects/p/"
OPERATION = {
    "kind": "compute#operation", "id": "123", "name": "operation-1", "operationType": "insert",
    "targetLink": BASE + "zones/z/instances/vm", "targetId": "456", "status": "DONE", "user": "a@b", "progress": 100,
    "insertTime": "2024-01-01T00:00:00.000-08:00", "selfLink": BASE + "zones/z/operations/operation-1",
    "zone": BASE + "zones/z",
    "error": {"errors": [{"code": "QUOTA_EXCEEDED", "message": "no"}]}, "httpErrorStatusCode": 403,
}
INSTANCE = {
    "kind": "compute#instance", "id": "456", "name": "vm", "status": "RUNNING", "machineType": BASE + "x",
    "labels": {"env": "prod", "team": "a"}, "tags": {"items": ["web"], "fingerprint": "abc="},
    "networkInterfaces": [{"kind": "compute#networkInterface", "name": "nic0", "networkIP": "10.0.0.2",
                           "accessConfigs": [{"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT"}]}],
    "disks": [{"kind": "compute#attachedDisk", "index": 0, "boot": True, "diskSizeGb": "10"}],
    "scheduling": {"automaticRestart": True, "preemptible": False},
}


def test_valid_operation_and_instance():
    assert violations(OPERATION) == []
    assert violations(INSTANCE) == []
    assert violations(INSTANCE, "Instance") == []


def test_valid_list_and_aggregated_list():
    listing = {"kind": "compute#instanceList", "id": "projects/p/zones/z/instances", "items": [INSTANCE],
               "selfLink": BASE + "zones/z/instances", "nextPageToken": "t"}
    assert violations(listing) == []
    aggregated = {"kind": "compute#instanceAggregatedList", "id": "projects/p/aggregated/instances",
                  "items": {"zones/z": {"instances": [INSTANCE]},
                            "zones/y": {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "none",
                                                    "data": [{"key": "scope", "value": "zones/y"}]}}},
                  "unreachables": []}
    assert violations(aggregated) == []


def test_unknown_property_refused_at_any_depth():
    assert violations({**OPERATION, "selfLinkWithId": BASE + "x"}) == [
        "$.selfLinkWithId (Operation): unknown property"]
    nested = {**INSTANCE, "networkInterfaces": [{"name": "nic0", "bogus": 1}]}
    assert violations(nested) == ["$.networkInterfaces[0].bogus (NetworkInterface): unknown property"]
    aggregated = {"kind": "compute#instanceAggregatedList", "items": {"zones/z": {"instances": [], "extra": 1}}}
    assert violations(aggregated) == ["$.items['zones/z'].extra (InstancesScopedList): unknown property"]


def test_wrong_types_refused():
    assert violations({**OPERATION, "progress": "100"}) == [
        "$.progress (Operation): expected integer, got str '100'"]
    assert violations({**OPERATION, "id": 123}) == ["$.id (Operation): expected string, got int 123"]
    assert violations({**OPERATION, "id": "abc"}) == [
        "$.id (Operation): expected a uint64 string of digits, got 'abc'"]
    assert violations({**INSTANCE, "labels": {"env": 1}}) == ["$.labels['env'] (Instance): expected string, got int 1"]
    assert violations({**INSTANCE, "disks": [{"boot": "true"}]}) == [
        "$.disks[0].boot (AttachedDisk): expected boolean, got str 'true'"]
    assert violations({**INSTANCE, "status": None}) == ["$.status (Instance): expected string, got NoneType None"]
    assert violations({**INSTANCE, "status": "BOOTING"}) == ["$.status (Instance): 'BOOTING' is not one of the enum values"]


def test_kind_must_match_the_schema():
    assert violations({**INSTANCE, "kind": "compute#disk"}, "Instance") == [
        "$.kind (Instance): 'compute#disk', the schema's kind is 'compute#instance'"]
    assert violations({"kind": "compute#nothing"}) == ["$: no schema for kind 'compute#nothing'"]
    assert kinds()["compute#crossSiteNetwork"] == "CrossSiteNetwork"  # the element, not its list


def test_error_envelope():
    body = envelope(404, "notFound", "The resource 'x' was not found")
    assert violations(body, ERROR_ENVELOPE) == []
    assert response_violations("compute.instances.get", 404, body) == []
    scoped = envelope(403, "insufficientPermissions", "no", details=[{"@type": "type.googleapis.com/x", "a": {}}])
    assert violations(scoped, ERROR_ENVELOPE) == []
    assert violations({"error": {**body["error"], "trace": "x"}}, ERROR_ENVELOPE) == [
        "$.error.trace (object): unknown property"]
    wrong = response_violations("compute.instances.get", 200, OPERATION)  # checked as the method's response
    assert wrong[0] == "$.kind (Instance): 'compute#operation', the schema's kind is 'compute#instance'"


def test_install_is_off_unless_asked(tmp_path, monkeypatch):
    from flask import Flask

    monkeypatch.delenv(ENV_FLAG, raising=False)
    assert install(Flask("off"), str(tmp_path)) is False
    monkeypatch.setenv(ENV_FLAG, "1")
    app = Flask("on")
    assert install(app, str(tmp_path))
    app.add_url_rule("/compute/v1/projects/p/zones/z/operations/o", "compute.zoneOperations.get",
                     lambda: {**OPERATION, "creationTimestamp": 5})
    resp = app.test_client().get("/compute/v1/projects/p/zones/z/operations/o")
    assert resp.status_code == 500
    message = orjson.loads(resp.data)["error"]["message"]
    assert "$.creationTimestamp (Operation): expected string, got int 5" in message
    with open(os.path.join(tmp_path, LOG_NAME)) as f:
        assert "GET /compute/v1/projects/p/zones/z/operations/o 200: $.creationTimestamp" in f.read()


@pytest.mark.parametrize("path", ["/token", "/compute/v1/ok"])
def test_out_of_scope_and_valid_bodies_pass(tmp_path, monkeypatch, path):
    from flask import Flask

    monkeypatch.setenv(ENV_FLAG, "1")
    app = Flask("scope")
    install(app, str(tmp_path))
    app.add_url_rule(path, "x", lambda: {"access_token": "t"} if path == "/token" else OPERATION)
    assert app.test_client().get(path).status_code == 200
    assert not os.path.exists(os.path.join(tmp_path, LOG_NAME))
