"""Request-body validation (gstack.gce.validation) and the generated schemas/ it relies on.

Why these tests: clients see these 400s verbatim, so the ESF-style messages are pinned exactly;
and the fast accept path must never accept a body jsonschema rejects (fuzzed below).
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from core.errors import Invalid
from gstack.gce import discovery, validation
from gstack.gce.validation import validate_body

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
BASE = "http://127.0.0.1:8787/compute/v1/projects"

GCLOUD_INSERT = {
    "canIpForward": False,
    "deletionProtection": False,
    "disks": [{
        "autoDelete": True,
        "boot": True,
        "initializeParams": {"sourceImage": f"{BASE}/debian-cloud/zones/-/imageFamilyViews/debian-12"},
        "mode": "READ_WRITE",
        "type": "PERSISTENT",
    }],
    "machineType": f"{BASE}/demo-project/zones/us-central1-a/machineTypes/e2-small",
    "metadata": {},
    "name": "vm1",
    "networkInterfaces": [{
        "accessConfigs": [{"name": "external-nat", "type": "ONE_TO_ONE_NAT"}],
        "network": f"{BASE}/demo-project/global/networks/default",
    }],
    "scheduling": {"automaticRestart": True},
    "serviceAccounts": [{"email": "default", "scopes": ["https://www.googleapis.com/auth/devstorage.read_only"]}],
}

ZONE = f"{BASE}/demo-project/zones/us-central1-a"
INSTANCE_GET = {
    "kind": "compute#instance",
    "id": "4823094582309458123",
    "creationTimestamp": "2024-05-01T10:00:00.000-07:00",
    "name": "vm1",
    "description": "",
    "tags": {"items": ["http-server"], "fingerprint": "42WmSpB8rSM="},
    "machineType": f"{ZONE}/machineTypes/e2-small",
    "status": "RUNNING",
    "zone": ZONE,
    "canIpForward": False,
    "networkInterfaces": [{
        "kind": "compute#networkInterface",
        "network": f"{BASE}/demo-project/global/networks/default",
        "subnetwork": f"{BASE}/demo-project/regions/us-central1/subnetworks/default",
        "networkIP": "10.128.0.2",
        "name": "nic0",
        "accessConfigs": [{
            "kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": "external-nat",
            "natIP": "34.1.2.3", "networkTier": "PREMIUM",
        }],
        "fingerprint": "abcdefghijk=",
        "stackType": "IPV4_ONLY",
    }],
    "disks": [{
        "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE",
        "source": f"{ZONE}/disks/vm1", "deviceName": "persistent-disk-0", "index": 0, "boot": True,
        "autoDelete": True, "licenses": [f"{BASE}/debian-cloud/global/licenses/debian-12-bookworm"],
        "interface": "SCSI", "guestOsFeatures": [{"type": "UEFI_COMPATIBLE"}, {"type": "GVNIC"}],
        "diskSizeGb": "10", "architecture": "X86_64",
    }],
    "metadata": {"kind": "compute#metadata", "fingerprint": "Dm8fM8C6sNQ=",
                 "items": [{"key": "startup-script", "value": "#!/bin/sh\necho hi"}]},
    "serviceAccounts": [{"email": "123-compute@developer.gserviceaccount.com",
                         "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
    "selfLink": f"{ZONE}/instances/vm1",
    "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": True, "preemptible": False,
                   "provisioningModel": "STANDARD"},
    "cpuPlatform": "Intel Broadwell",
    "labels": {"env": "dev"},
    "labelFingerprint": "42WmSpB8rSM=",
    "startRestricted": False,
    "deletionProtection": False,
    "shieldedInstanceConfig": {"enableSecureBoot": False, "enableVtpm": True, "enableIntegrityMonitoring": True},
    "shieldedInstanceIntegrityPolicy": {"updateAutoLearnPolicy": True},
    "fingerprint": "wT1VNm0zBpw=",
    "lastStartTimestamp": "2024-05-01T10:00:10.000-07:00",
    "satisfiesPzi": True,
}


def message(method_id: str, body: object) -> str:
    with pytest.raises(Invalid) as exc:
        validate_body(method_id, body)
    assert exc.value.status == 400
    return exc.value.message


# -- accepted bodies --------------------------------------------------------------------------------

def test_gcloud_instances_insert_body_passes() -> None:
    validate_body("compute.instances.insert", copy.deepcopy(GCLOUD_INSERT))


@pytest.mark.parametrize("size", ["20", 20, "-1", 20.0])
def test_int64_accepts_digit_string_or_integer(size: object) -> None:
    validate_body("compute.disks.insert", {"name": "d1", "sizeGb": size})


def test_get_style_instance_with_output_only_fields_round_trips() -> None:
    validate_body("compute.instances.insert", copy.deepcopy(INSTANCE_GET))
    validate_body("compute.instances.update", copy.deepcopy(INSTANCE_GET))


def test_int32_accepts_digit_string_too() -> None:
    body = {"name": "vm1", "disks": [{"index": "1"}], "networkInterfaces": [{"queueCount": 4}]}
    validate_body("compute.instances.insert", body)


def test_null_means_unset_as_in_proto3_json() -> None:
    validate_body("compute.disks.insert", {"name": "d1", "sizeGb": None, "labels": None, "description": None})
    validate_body("compute.instances.insert", {"name": "vm1", "scheduling": None, "status": None})


def test_methods_without_a_body_are_a_no_op() -> None:
    validate_body("compute.instances.get", ["anything"])
    validate_body("compute.instances.delete", None)
    validate_body("compute.no.such.method", {"x": 1})


# -- refused bodies ---------------------------------------------------------------------------------

def test_unknown_field_at_root() -> None:
    with pytest.raises(Invalid) as exc:
        validate_body("compute.instances.insert", {"name": "vm1", "foo": 1})
    assert exc.value.message == 'Invalid JSON payload received. Unknown name "foo" at \'resource\': Cannot find field.'
    assert exc.value.field == "resource"


def test_unknown_field_in_nested_array_element() -> None:
    body = copy.deepcopy(GCLOUD_INSERT)
    body["disks"][0]["foo"] = "bar"
    assert message("compute.instances.insert", body) == (
        "Invalid JSON payload received. Unknown name \"foo\" at 'resource.disks[0]': Cannot find field."
    )
    body = copy.deepcopy(GCLOUD_INSERT)
    body["networkInterfaces"][0]["accessConfigs"].append({"name": "x", "natIp": "1.2.3.4"})
    assert message("compute.instances.insert", body) == (
        "Invalid JSON payload received. Unknown name \"natIp\" at "
        "'resource.networkInterfaces[0].accessConfigs[1]': Cannot find field."
    )


def test_wrong_type_bool() -> None:
    body = copy.deepcopy(GCLOUD_INSERT)
    body["disks"][0]["boot"] = "yes"
    with pytest.raises(Invalid) as exc:
        validate_body("compute.instances.insert", body)
    assert exc.value.message == "Invalid value at 'resource.disks[0].boot' (TYPE_BOOL), \"yes\""
    assert exc.value.field == "resource.disks[0].boot"


@pytest.mark.parametrize(("method", "body", "expected"), [
    ("compute.disks.insert", {"name": "d1", "sizeGb": "abc"},
     "Invalid value at 'resource.sizeGb' (TYPE_INT64), \"abc\""),
    ("compute.disks.insert", {"name": "d1", "sizeGb": 20.5},
     "Invalid value at 'resource.sizeGb' (TYPE_INT64), 20.5"),
    ("compute.disks.insert", {"name": "d1", "sizeGb": True},
     "Invalid value at 'resource.sizeGb' (TYPE_INT64), true"),
    ("compute.instances.insert", {"id": "-1"}, "Invalid value at 'resource.id' (TYPE_UINT64), \"-1\""),
    ("compute.instances.insert", {"disks": [{"index": 2**31}]},
     "Invalid value at 'resource.disks[0].index' (TYPE_INT32), 2147483648"),
    ("compute.instances.insert", {"name": 5}, "Invalid value at 'resource.name' (TYPE_STRING), 5"),
    ("compute.instances.insert", {"scheduling": "x"}, "Invalid value at 'resource.scheduling' (TYPE_MESSAGE), \"x\""),
    ("compute.instances.insert", {"disks": ["x"]}, "Invalid value at 'resource.disks[0]' (TYPE_MESSAGE), \"x\""),
    ("compute.instances.insert", {"labels": {"env": 1}}, "Invalid value at 'resource.labels.env' (TYPE_STRING), 1"),
    ("compute.instances.insert", {"tags": {"items": ["a", None]}},
     "Invalid value at 'resource.tags.items[1]' (TYPE_STRING), null"),
])
def test_wrong_types(method: str, body: dict, expected: str) -> None:
    assert message(method, body) == expected


def test_bad_enum_uses_googles_enum_type_url() -> None:
    assert message("compute.instances.insert", {"name": "vm1", "status": "BOGUS"}) == (
        "Invalid value at 'resource.status' (type.googleapis.com/google.cloud.compute.v1.Instance.Status), \"BOGUS\""
    )
    body = copy.deepcopy(GCLOUD_INSERT)
    body["disks"][0]["mode"] = "RW"
    assert message("compute.instances.insert", body) == (
        "Invalid value at 'resource.disks[0].mode' (type.googleapis.com/google.cloud.compute.v1.AttachedDisk.Mode), \"RW\""
    )


def test_list_for_a_singular_field() -> None:
    assert message("compute.instances.insert", {"scheduling": [{"automaticRestart": True}]}) == (
        "Invalid JSON payload received. Unknown name \"scheduling\" at 'resource': "
        "Proto field is not repeating, cannot start list."
    )


@pytest.mark.parametrize("body", [[GCLOUD_INSERT], "vm1", 3, None, True])
def test_non_object_body(body: object) -> None:
    with pytest.raises(Invalid) as exc:
        validate_body("compute.instances.insert", body)
    assert exc.value.message == "Invalid JSON payload received. Unexpected token."
    assert exc.value.field == "resource"


def test_first_error_is_shortest_path_then_document_order() -> None:
    body = {"disks": [{"boot": "yes"}], "zzz": 1, "name": 5, "aaa": 2}
    assert message("compute.instances.insert", body) == (
        "Invalid JSON payload received. Unknown name \"zzz\" at 'resource': Cannot find field."
    )
    body = {"disks": [{"boot": "yes"}, {"mode": "X"}], "networkInterfaces": [{"name": 1}]}
    assert message("compute.instances.insert", body) == (
        "Invalid value at 'resource.disks[0].boot' (TYPE_BOOL), \"yes\""
    )
    body = {"disks": [{"mode": "X"}, {"boot": "yes"}]}
    for _ in range(3):  # deterministic
        assert "resource.disks[0].mode" in message("compute.instances.insert", body)


def test_other_request_types() -> None:
    validate_body("compute.instances.setMetadata", {"fingerprint": "abc=", "items": [{"key": "a", "value": "b"}]})
    validate_body("compute.disks.resize", {"sizeGb": "50"})
    assert message("compute.disks.resize", {"sizeGb": "50", "size": 1}).startswith(
        "Invalid JSON payload received. Unknown name \"size\""
    )
    assert message("compute.instances.setMetadata", {"items": [{"key": "a", "value": "b"}, {"key": "c", "vale": "d"}]}) == (
        "Invalid JSON payload received. Unknown name \"vale\" at 'resource.items[1]': Cannot find field."
    )


# -- schemas/ ---------------------------------------------------------------------------------------

def test_generated_schemas_are_up_to_date() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "generate_schemas.py"), "--check"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_index_covers_every_method_with_a_body() -> None:
    index = json.loads((SCHEMAS / "index.json").read_text())
    expected = {m.id: f"{m.request}.json" for m in discovery.methods() if m.request}
    assert index == expected
    assert index["compute.instances.insert"] == "Instance.json"
    assert index["compute.disks.resize"] == "DisksResizeRequest.json"
    for name in set(index.values()):
        schema = json.loads((SCHEMAS / name).read_text())
        Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False


def test_schemas_dir_falls_back_to_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(SCHEMAS / "index.json", tmp_path / "index.json")
    shutil.copy(SCHEMAS / "DisksResizeRequest.json", tmp_path / "DisksResizeRequest.json")
    monkeypatch.setattr(validation, "__file__", str(tmp_path / "site-packages" / "gstack" / "gce" / "validation.py"))
    monkeypatch.setenv(validation.ENV_VAR, str(tmp_path))
    validation.reset_cache()
    try:
        assert validation.schemas_dir() == tmp_path
        validate_body("compute.disks.resize", {"sizeGb": "50"})
        assert "TYPE_INT64" in message("compute.disks.resize", {"sizeGb": "x"})
        monkeypatch.delenv(validation.ENV_VAR)
        with pytest.raises(RuntimeError, match="GSTACK_SCHEMAS_DIR"):
            validation.schemas_dir()
    finally:
        validation.reset_cache()


# -- fast path agrees with jsonschema ---------------------------------------------------------------

ODD_VALUES: list = [None, True, False, 0, -1, 1.0, 1.5, 2**31, -(2**31) - 1, 2**63, 2**64, "", "x", "12", "-12",
                    "1e3", "NaN", "-Infinity", ".5", [], [1], ["x"], {}, {"a": 1}, {"a": "b"}]


def _instance(schema: dict, node: dict, rng: random.Random, depth: int) -> object:
    """A random, mostly schema-shaped value with occasional wrong types and unknown fields."""
    if rng.random() < 0.08 or depth > 6:
        return copy.deepcopy(rng.choice(ODD_VALUES))
    if "$ref" in node:
        ref = node["$ref"]
        return _instance(schema, schema if ref == "#" else schema["$defs"][ref.split("/")[-1]], rng, depth)
    if "enum" in node:
        return rng.choice([*node["enum"], "BOGUS"])
    types = node.get("type")
    kind = rng.choice(types) if isinstance(types, list) else types
    if kind == "object" and "properties" in node:
        keys = rng.sample(sorted(node["properties"]), min(len(node["properties"]), rng.randint(0, 4)))
        out = {k: _instance(schema, node["properties"][k], rng, depth + 1) for k in keys}
        if rng.random() < 0.05:
            out["unknownField"] = 1
        return out
    if kind == "object":
        return {f"k{i}": _instance(schema, node.get("additionalProperties", {}), rng, depth + 1)
                for i in range(rng.randint(0, 2))}
    if kind == "array":
        return [_instance(schema, node["items"], rng, depth + 1) for _ in range(rng.randint(0, 2))]
    if kind == "string":
        return rng.choice(["x", "12", "-3", "007", "1.5", "NaN", "12\n"])
    if kind in ("integer", "number"):
        return rng.choice([0, 7, -7, 1.0, 2.5, 2**31 - 1, 2**32, 2**63 - 1, 2**64 - 1, 2**64])
    if kind == "boolean":
        return rng.choice([True, False])
    return rng.choice(ODD_VALUES)


def test_fast_path_agrees_with_jsonschema_on_fuzzed_bodies() -> None:
    rng = random.Random(20240501)
    index = json.loads((SCHEMAS / "index.json").read_text())
    checked = rejected = 0
    for name in sorted(set(index.values())):
        schema = orjson.loads((SCHEMAS / name).read_bytes())
        compiled = validation._Compiled(schema)
        assert compiled.check is not None, name
        for _ in range(60):
            body = _instance(schema, schema, rng, 0)
            if not isinstance(body, dict):
                continue
            expected = compiled.validator.is_valid(body)
            assert compiled.check(body) is expected, (name, body)
            checked += 1
            rejected += not expected
    assert checked > 3000 and 0.2 < rejected / checked < 0.9, (checked, rejected)
    for body in (GCLOUD_INSERT, INSTANCE_GET):
        assert validation._compiled_for("compute.instances.insert").check(body)
