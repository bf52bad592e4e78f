"""Unit tests for gstack.gce.fields: Google partial-response (``fields=``) selection."""

from __future__ import annotations

import pytest

from core.errors import Invalid
from gstack.gce.fields import Selector, apply_fields, compile_fields

INSTANCE = {
    "kind": "compute#instance",
    "id": "123",
    "name": "vm1",
    "status": "RUNNING",
    "labels": {"env": "prod"},
    "scheduling": {"automaticRestart": True, "preemptible": False},
    "networkInterfaces": [
        {"name": "nic0", "networkIP": "10.0.0.2", "accessConfigs": [{"name": "ext", "natIP": "1.2.3.4"}]},
        {"name": "nic1", "networkIP": "10.1.0.9"},
    ],
    "disks": [{"source": "d1", "deviceName": "boot", "boot": True}],
}
LIST = {
    "kind": "compute#instanceList",
    "id": "projects/p/zones/z/instances",
    "items": [INSTANCE, {"kind": "compute#instance", "name": "vm2", "status": "TERMINATED"}],
    "nextPageToken": "tok",
    "selfLink": "https://host/compute/v1/projects/p/zones/z/instances",
}
AGGREGATED = {
    "kind": "compute#instanceAggregatedList",
    "items": {
        "zones/us-central1-a": {"instances": [{"name": "vm1", "status": "RUNNING", "id": "1"}]},
        "zones/us-central1-b": {
            "warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results"},
        },
        "zones/europe-west1-b": {"instances": [{"name": "vm3", "status": "STOPPED", "id": "3"}]},
    },
    "nextPageToken": "tok",
}


def select(obj: dict, spec: str) -> dict:
    sel = compile_fields(spec)
    assert sel is not None
    return apply_fields(obj, sel)


@pytest.mark.parametrize("spec", [None, "", "   "])
def test_empty_spec_is_none(spec):
    assert compile_fields(spec) is None


def test_top_level_fields():
    assert select(INSTANCE, "name,status") == {"name": "vm1", "status": "RUNNING"}


def test_key_order_follows_object_not_spec():
    out = select(INSTANCE, "status,name,id")
    assert list(out) == ["id", "name", "status"]


def test_whole_subobject():
    assert select(INSTANCE, "scheduling") == {"scheduling": {"automaticRestart": True, "preemptible": False}}


def test_slash_sub_field():
    assert select(INSTANCE, "scheduling/preemptible") == {"scheduling": {"preemptible": False}}


def test_slash_through_list_applies_to_each_element():
    assert select(LIST, "items/name") == {"items": [{"name": "vm1"}, {"name": "vm2"}]}


def test_parenthesised_sub_selection():
    assert select(LIST, "items(name,status)") == {
        "items": [{"name": "vm1", "status": "RUNNING"}, {"name": "vm2", "status": "TERMINATED"}],
    }


def test_sub_selection_with_slash_inside():
    assert select(LIST, "items(name,networkInterfaces/networkIP)") == {
        "items": [
            {"name": "vm1", "networkInterfaces": [{"networkIP": "10.0.0.2"}, {"networkIP": "10.1.0.9"}]},
            {"name": "vm2"},
        ],
    }


def test_nested_parentheses():
    out = select(LIST, "items(name,networkInterfaces(name,accessConfigs(natIP)))")
    assert out == {
        "items": [
            {
                "name": "vm1",
                "networkInterfaces": [
                    {"name": "nic0", "accessConfigs": [{"natIP": "1.2.3.4"}]},
                    {"name": "nic1"},
                ],
            },
            {"name": "vm2"},
        ],
    }


def test_gcloud_style_list_spec():
    assert select(LIST, "nextPageToken,items(name)") == {
        "items": [{"name": "vm1"}, {"name": "vm2"}],
        "nextPageToken": "tok",
    }


def test_parentheses_after_slash_path():
    assert select(LIST, "items/networkInterfaces(networkIP)") == {
        "items": [{"networkInterfaces": [{"networkIP": "10.0.0.2"}, {"networkIP": "10.1.0.9"}]}],
    }


def test_wildcard_top_level_returns_everything():
    assert select(INSTANCE, "*") == INSTANCE


def test_wildcard_inside_sub_selection():
    assert select(INSTANCE, "scheduling(*)") == {"scheduling": INSTANCE["scheduling"]}
    assert select(LIST, "items/*") == {"items": LIST["items"]}


def test_wildcard_merges_with_named_siblings():
    obj = {"a": {"x": 1, "y": 2}, "b": {"x": 3, "y": 4, "z": 5}}
    assert select(obj, "*/x,b/z") == {"a": {"x": 1}, "b": {"x": 3, "z": 5}}


def test_aggregated_map_with_wildcard_key():
    assert select(AGGREGATED, "items/*/instances(name)") == {
        "items": {
            "zones/us-central1-a": {"instances": [{"name": "vm1"}]},
            "zones/europe-west1-b": {"instances": [{"name": "vm3"}]},
        },
    }


def test_aggregated_map_with_parenthesised_wildcard():
    out = select(AGGREGATED, "nextPageToken,items/*(instances(name,status),warning/code)")
    assert out == {
        "items": {
            "zones/us-central1-a": {"instances": [{"name": "vm1", "status": "RUNNING"}]},
            "zones/us-central1-b": {"warning": {"code": "NO_RESULTS_ON_PAGE"}},
            "zones/europe-west1-b": {"instances": [{"name": "vm3", "status": "STOPPED"}]},
        },
        "nextPageToken": "tok",
    }
    assert list(out["items"]) == list(AGGREGATED["items"])


def test_absent_fields_are_omitted():
    assert select(INSTANCE, "name,nope,scheduling/nope") == {"name": "vm1"}
    assert select(LIST, "items(nope)") == {}


def test_sub_selection_of_scalar_is_omitted():
    assert select(INSTANCE, "name/sub") == {}
    assert select(INSTANCE, "name(sub),status") == {"status": "RUNNING"}


def test_whole_selection_wins_over_partial():
    assert select(INSTANCE, "scheduling/preemptible,scheduling") == {"scheduling": INSTANCE["scheduling"]}
    assert select(INSTANCE, "scheduling,scheduling/preemptible") == {"scheduling": INSTANCE["scheduling"]}


def test_repeated_paths_merge():
    assert select(LIST, "items/name,items/status,kind") == {
        "kind": "compute#instanceList",
        "items": [{"name": "vm1", "status": "RUNNING"}, {"name": "vm2", "status": "TERMINATED"}],
    }


def test_whitespace_between_tokens_is_tolerated():
    assert select(LIST, " nextPageToken , items( name ) ") == select(LIST, "nextPageToken,items(name)")


def test_empty_values_selected_whole_are_kept():
    assert select({"items": [], "labels": {}}, "items,labels") == {"items": [], "labels": {}}


def test_apply_does_not_mutate_input():
    import copy

    before = copy.deepcopy(LIST)
    select(LIST, "items(name)")
    assert before == LIST


def test_compile_is_cached_and_returns_selector():
    a = compile_fields("items(name)")
    assert isinstance(a, Selector)
    assert compile_fields("items(name)") is a


@pytest.mark.parametrize("spec", [
    "items(name",
    "items(name))",
    "items)",
    "items()",
    "(name)",
    "items//name",
    "/name",
    "name/",
    ",name",
    "name,",
    "name,,status",
    "na me",
    "name!",
    "items(name)/status",
    "na*",
    "*x",
    "items((name))",
])
def test_syntax_errors(spec):
    with pytest.raises(Invalid) as exc:
        compile_fields(spec)
    assert exc.value.message == f"Invalid field selection {spec}"
    assert exc.value.field == "fields"
