"""Unit tests for gstack.gce.filters: both GCE filter dialects, field validation and error messages."""

from __future__ import annotations

import pytest

from core.errors import Invalid
from gstack.gce.filters import compile_filter

VM1 = {
    "name": "vm1",
    "status": "RUNNING",
    "labels": {"env": "prod", "team": "web"},
    "scheduling": {"automaticRestart": True, "preemptible": False},
    "cpuPlatform": "Intel Skylake",
    "networkInterfaces": [{"networkIP": "10.0.0.2"}, {"networkIP": "10.1.0.9"}],
    "tags": {"items": ["http-server", "ssh"]},
    "zone": "https://host/compute/v1/projects/p/zones/us-central1-a",
    "id": "123",
    "creationTimestamp": "2024-06-26T11:42:22.006-07:00",
}
VM2 = {
    "name": "web-frontend",
    "status": "TERMINATED",
    "labels": {"env": "dev", "owner": "alice"},
    "scheduling": {"automaticRestart": False},
    "cpuPlatform": "Intel Broadwell",
    "networkInterfaces": [{"networkIP": "10.0.0.3"}],
    "zone": "https://host/compute/v1/projects/p/zones/europe-west1-b",
    "id": "9000",
    "creationTimestamp": "2023-01-02T00:00:00.000-07:00",
}
VM3 = {
    "name": "web-backend",
    "status": "RUNNING",
    "scheduling": {"automaticRestart": True},
    "cpuPlatform": "Intel Broadwell",
    "zone": "https://host/compute/v1/projects/p/zones/us-central1-b",
    "id": "18446744073709551615",
    "creationTimestamp": "2025-03-01T08:00:00.000Z",
}
ALL = [VM1, VM2, VM3]


def names(expr: str, schema: str | None = "Instance", items: list[dict] = ALL) -> list[str]:
    pred = compile_filter(expr, schema)
    assert pred is not None
    return [r["name"] for r in items if pred(r)]


def syntax_message(expr: str) -> str:
    return f"Invalid value for field 'filter': '{expr}'. Invalid list filter expression."


# --------------------------------------------------------------------------- empty


@pytest.mark.parametrize("expr", [None, "", "   ", "\t\n"])
def test_empty_filter_is_none(expr):
    assert compile_filter(expr) is None
    assert compile_filter(expr, "Instance") is None


# --------------------------------------------------------------------------- AIP dialect: basics


def test_enum_equality():
    assert names("status = RUNNING") == ["vm1", "web-backend"]
    assert names("status=TERMINATED") == ["web-frontend"]


def test_string_equality_is_exact_and_case_sensitive():
    assert names('name = "vm1"') == ["vm1"]
    assert names("name = 'vm1'") == ["vm1"]
    assert names("name = VM1") == []
    assert names("name = vm") == []
    assert names("status = running") == []


def test_not_equal():
    assert names("status != RUNNING") == ["web-frontend"]


def test_nested_boolean_field():
    assert names("scheduling.automaticRestart = false") == ["web-frontend"]
    assert names("scheduling.automaticRestart = true") == ["vm1", "web-backend"]
    assert names("scheduling.automaticRestart = TRUE") == ["vm1", "web-backend"]
    assert names("scheduling.preemptible = false") == ["vm1"]


def test_boolean_field_does_not_equal_other_literals():
    assert names("scheduling.automaticRestart = 1") == []
    assert names("scheduling.automaticRestart = yes") == []


def test_label_value():
    assert names("labels.env = prod") == ["vm1"]
    assert names('labels.env = "dev"') == ["web-frontend"]


def test_label_presence():
    assert names("labels.owner:*") == ["web-frontend"]
    assert names("labels.env:*") == ["vm1", "web-frontend"]
    assert names("labels:*") == ["vm1", "web-frontend"]


def test_label_presence_negated():
    assert names("-labels.owner:*") == ["vm1", "web-backend"]
    assert names("NOT labels.owner:*") == ["vm1", "web-backend"]


def test_presence_counts_empty_string_values():
    assert names("labels.x:*", items=[{"name": "a", "labels": {"x": ""}}, {"name": "b", "labels": {}}]) == ["a"]


def test_has_on_string_is_substring():
    assert names("name:web") == ["web-frontend", "web-backend"]
    assert names('zone:"us-central1"') == ["vm1", "web-backend"]
    assert names("name:front") == ["web-frontend"]
    assert names("name:WEB") == []


def test_has_on_map_tests_key():
    assert names("labels:owner") == ["web-frontend"]
    assert names("labels:team") == ["vm1"]


def test_wildcards_in_equality():
    assert names('name = "web-*"') == ["web-frontend", "web-backend"]
    assert names("name = web-*") == ["web-frontend", "web-backend"]
    assert names("name = *end") == ["web-frontend", "web-backend"]
    assert names('name = "*-back*"') == ["web-backend"]
    assert names("name = web-") == []


def test_wildcard_must_match_whole_value_under_equality():
    # "web" alone is not the whole name; only the '*' makes a prefix match.
    assert names("name = web") == []
    assert names("name = *") == ["vm1", "web-frontend", "web-backend"]


def test_wildcards_in_has():
    assert names("name:web-f*d") == ["web-frontend"]
    assert names("zone:us-*-a") == ["vm1"]


def test_escaped_star_is_literal():
    items = [{"name": "a*b"}, {"name": "axxb"}]
    assert names(r'name = "a\*b"', schema=None, items=items) == ["a*b"]
    assert names('name = "a*b"', schema=None, items=items) == ["a*b", "axxb"]


def test_quoted_string_escapes():
    items = [{"name": 'say "hi"'}, {"name": "it's"}]
    assert names(r'name = "say \"hi\""', schema=None, items=items) == ['say "hi"']
    assert names(r"name = 'it\'s'", schema=None, items=items) == ["it's"]
    assert names("name = \"it's\"", schema=None, items=items) == ["it's"]


# --------------------------------------------------------------------------- AIP dialect: numbers & ordering


def test_numeric_string_fields_compare_numerically():
    assert names("id = 123") == ["vm1"]
    assert names('id = "123"') == ["vm1"]
    assert names("id = 0123") == ["vm1"]  # numerically equal, not string equal
    assert names("id > 200") == ["web-frontend", "web-backend"]  # "9000" > "200" only numerically
    assert names("id < 1000") == ["vm1"]
    assert names("id <= 123") == ["vm1"]
    assert names("id >= 9000") == ["web-frontend", "web-backend"]


def test_uint64_ids_keep_full_precision():
    assert names("id = 18446744073709551615") == ["web-backend"]
    assert names("id = 18446744073709551614") == []
    assert names("id > 18446744073709551614") == ["web-backend"]


def test_json_number_fields():
    ops = [{"name": "a", "progress": 100}, {"name": "b", "progress": 40}, {"name": "c"}]
    assert names("progress = 100", "Operation", ops) == ["a"]
    assert names("progress < 50", "Operation", ops) == ["b"]
    assert names("progress >= 40.0", "Operation", ops) == ["a", "b"]
    assert names("progress != 100", "Operation", ops) == ["b", "c"]


def test_float_literals():
    items = [{"name": "a", "v": "1.5"}, {"name": "b", "v": "2"}]
    assert names("v > 1.75", schema=None, items=items) == ["b"]
    assert names("v = 1.50", schema=None, items=items) == ["a"]


def test_non_numeric_words_are_not_numbers():
    items = [{"name": "nan"}, {"name": "inf"}, {"name": "1_000"}]
    assert names("name = 1000", schema=None, items=items) == []
    assert names("name = nan", schema=None, items=items) == ["nan"]


def test_string_ordering_is_lexicographic_for_timestamps():
    assert names('creationTimestamp > "2024-01-01"') == ["vm1", "web-backend"]
    assert names("creationTimestamp < 2024-01-01T00:00:00Z") == ["web-frontend"]
    assert names('creationTimestamp >= "2024-06-26T11:42:22.006-07:00"') == ["vm1", "web-backend"]
    assert names("name < w") == ["vm1"]


def test_ordering_on_booleans_never_matches():
    assert names("scheduling.automaticRestart > false") == []


# --------------------------------------------------------------------------- AIP dialect: missing & repeated


def test_missing_field_never_equals_and_not_equal_is_true():
    assert names("labels.env = prod") == ["vm1"]
    assert names("labels.env != prod") == ["web-frontend", "web-backend"]
    assert names("labels.owner != alice") == ["vm1", "web-backend"]
    assert names("labels.owner < zzz") == ["web-frontend"]
    assert names("labels.owner:ali") == ["web-frontend"]


def test_json_null_is_missing():
    items = [{"name": "a", "description": None}, {"name": "b", "description": "x"}]
    assert names("description:*", items=items) == ["b"]
    assert names("description != x", items=items) == ["a"]


def test_repeated_field_matches_if_any_element_matches():
    assert names("networkInterfaces.networkIP = 10.1.0.9") == ["vm1"]
    assert names('networkInterfaces.networkIP = "10.0.0.*"') == ["vm1", "web-frontend"]
    assert names("networkInterfaces.networkIP:10.0") == ["vm1", "web-frontend"]
    assert names("networkInterfaces:*") == ["vm1", "web-frontend"]


def test_repeated_field_not_equal_means_no_element_equal():
    assert names("networkInterfaces.networkIP != 10.1.0.9") == ["web-frontend", "web-backend"]


def test_repeated_scalar_field():
    assert names("tags.items = ssh") == ["vm1"]
    assert names("tags.items:http") == ["vm1"]


def test_equality_against_an_object_is_false():
    assert names("scheduling = true") == []
    assert names("labels = prod") == []


# --------------------------------------------------------------------------- AIP dialect: boolean structure


def test_parenthesised_expressions_are_implicitly_anded():
    assert names("(scheduling.automaticRestart = true) (cpuPlatform = \"Intel Skylake\")") == ["vm1"]
    assert names("(status = RUNNING) (name = web-*)") == ["web-backend"]


def test_juxtaposed_terms_without_parentheses_are_anded():
    assert names("status = RUNNING name = web-*") == ["web-backend"]


def test_explicit_and():
    assert names("status = RUNNING AND name:web") == ["web-backend"]
    assert names("(status = RUNNING) AND (name:web)") == ["web-backend"]


def test_explicit_or():
    assert names("name = vm1 OR name = web-backend") == ["vm1", "web-backend"]


def test_gce_documented_or_and_example():
    expr = ('(cpuPlatform = "Intel Skylake") OR (cpuPlatform = "Intel Broadwell") '
            "AND (scheduling.automaticRestart = true)")
    # AIP-160: OR binds tighter than AND -> (Skylake OR Broadwell) AND automaticRestart.
    # web-frontend is Broadwell without automatic restart; vm1 is Skylake with it.
    assert names(expr) == ["vm1", "web-backend"]


def test_or_binds_tighter_than_and():
    items = [{"name": "a", "x": "1", "y": "0"}, {"name": "b", "x": "0", "y": "0"}, {"name": "c", "x": "0", "y": "1"}]
    # x = 1 AND (y = 9 OR name = c): nobody; with AND binding tighter "c" would match.
    assert names("x = 1 AND y = 9 OR name = c", schema=None, items=items) == []
    assert names("(x = 1 AND y = 9) OR name = c", schema=None, items=items) == ["c"]


def test_not_and_minus_negation():
    assert names("NOT status = RUNNING") == ["web-frontend"]
    assert names("NOT (status = RUNNING)") == ["web-frontend"]
    assert names("-status = RUNNING") == ["web-frontend"]
    assert names("-(status = RUNNING OR name = web-frontend)") == []
    assert names("(status = RUNNING) -(name = vm1)") == ["web-backend"]
    assert names("NOT NOT status = RUNNING") == ["vm1", "web-backend"]


def test_nested_parentheses():
    assert names("((status = RUNNING) AND ((name = vm1) OR (labels.env = dev)))") == ["vm1"]


def test_keywords_are_whole_words():
    items = [{"name": "a", "ORDER": "1", "NOTE": "x"}]
    assert names("ORDER = 1", schema=None, items=items) == ["a"]
    assert names("NOTE = x", schema=None, items=items) == ["a"]


def test_hyphenated_label_keys():
    items = [{"name": "a", "labels": {"cost-center": "42"}}, {"name": "b", "labels": {}}]
    assert names("labels.cost-center = 42", items=items) == ["a"]


def test_predicate_is_reusable_and_cached():
    p1 = compile_filter("status = RUNNING", "Instance")
    p2 = compile_filter("status = RUNNING", "Instance")
    assert p1 is p2
    assert [p1(r) for r in ALL] == [True, False, True]
    assert [p1(r) for r in ALL] == [True, False, True]


# --------------------------------------------------------------------------- legacy regex dialect


def test_legacy_gcloud_name_word_regex():
    assert names(r'name eq ".*\bvm1\b.*"') == ["vm1"]
    assert names(r'name eq ".*\bweb\b.*"') == ["web-frontend", "web-backend"]


def test_legacy_gcloud_zone_regex():
    assert names(r'zone eq ".*\bus\-central1\-a\b.*"') == ["vm1"]
    assert names(r'zone eq ".*\bus\-central1\-.*"') == ["vm1", "web-backend"]


def test_legacy_gcloud_operation_type():
    ops = [{"name": "op1", "operationType": "setLabels"}, {"name": "op2", "operationType": "insert"}]
    assert names(r'operationType eq ".*\bsetLabels\b.*"', "Operation", ops) == ["op1"]


def test_legacy_unquoted_literal():
    assert names("status eq RUNNING") == ["vm1", "web-backend"]
    assert names("status ne RUNNING") == ["web-frontend"]


def test_legacy_single_quoted_literal():
    assert names("name eq 'web-.*'") == ["web-frontend", "web-backend"]


def test_legacy_regex_must_match_entire_value():
    assert names("name eq web") == []
    assert names("name eq vm") == []
    assert names("name eq vm.") == ["vm1"]
    assert names("status eq RUN") == []


def test_legacy_is_case_sensitive():
    assert names("status eq running") == []
    assert names('status eq "(?i)running"') == ["vm1", "web-backend"]


def test_legacy_multiple_constraints_are_anded():
    assert names('(status eq RUNNING) (name ne "vm1")') == ["web-backend"]
    assert names("(status eq RUNNING)(name eq web-.*)") == ["web-backend"]
    assert names("  (status eq RUNNING)   (name eq vm1)  ") == ["vm1"]


def test_legacy_booleans_and_numbers_compare_by_string_form():
    assert names("scheduling.automaticRestart eq true") == ["vm1", "web-backend"]
    assert names("scheduling.automaticRestart eq false") == ["web-frontend"]
    ops = [{"name": "a", "progress": 100}, {"name": "b", "progress": 5}]
    assert names("progress eq 100", "Operation", ops) == ["a"]
    assert names(r"progress eq \d", "Operation", ops) == ["b"]
    assert names("id eq 9000") == ["web-frontend"]


def test_legacy_ne_on_missing_field_is_true():
    assert names("labels.owner ne alice") == ["vm1", "web-backend"]
    assert names("labels.owner eq .*") == ["web-frontend"]


def test_legacy_repeated_field():
    assert names(r"networkInterfaces.networkIP eq 10\.1\..*") == ["vm1"]
    assert names(r"networkInterfaces.networkIP ne 10\.1\..*") == ["web-frontend", "web-backend"]


def test_legacy_regex_with_parentheses_and_alternation():
    assert names("name eq (vm1|web-backend)") == ["vm1", "web-backend"]
    assert names("(name eq (vm1|web-backend)) (status eq RUNNING)") == ["vm1", "web-backend"]
    assert names('(name eq "vm1|web-frontend")') == ["vm1", "web-frontend"]


def test_legacy_quoted_literal_with_spaces_and_escaped_quote():
    items = [{"name": "a", "description": 'my "big" vm'}, {"name": "b", "description": "other"}]
    assert names(r'description eq "my \"big\" vm"', items=items) == ["a"]
    assert names('description eq "my .* vm"', items=items) == ["a"]


def test_eq_inside_quotes_does_not_select_legacy_dialect():
    items = [{"name": "a", "description": "x eq y"}]
    assert names('description = "x eq y"', items=items) == ["a"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("expr", [
    "status",
    "status =",
    "= RUNNING",
    "status == RUNNING",
    "(status = RUNNING",
    "status = RUNNING)",
    "()",
    "status = \"RUNNING",
    "status = RUNNING AND",
    "OR status = RUNNING",
    "status = RUNNING OR",
    "NOT",
    "status = RUN\"NING",
    "status ~ RUNNING",
    "labels. = x",
    "1abc = 2",
])
def test_aip_syntax_errors(expr):
    with pytest.raises(Invalid) as exc:
        compile_filter(expr, "Instance")
    assert exc.value.message == syntax_message(expr)
    assert exc.value.field == "filter"


@pytest.mark.parametrize("expr", [
    "name eq",
    'name eq "unterminated',
    "(name eq foo",
    "(name eq foo) name eq bar",
    "name eq foo bar",
    "name eq (unbalanced",
    "name eq [unclosed",
    'name eq "a(b"',
])
def test_legacy_syntax_errors(expr):
    with pytest.raises(Invalid) as exc:
        compile_filter(expr, "Instance")
    assert exc.value.message == syntax_message(expr)


@pytest.mark.parametrize("expr", [
    "(name eq foo) (status = RUNNING)",
    "(status = RUNNING) (name eq foo)",
    "name eq foo AND status eq RUNNING",
    "(name eq foo) OR (status eq RUNNING)",
    "NOT name eq foo",
    "-name eq foo",
    "status = RUNNING name ne foo",
])
def test_mixing_dialects_is_an_error(expr):
    with pytest.raises(Invalid) as exc:
        compile_filter(expr, "Instance")
    assert exc.value.message == syntax_message(expr)


@pytest.mark.parametrize(("expr", "field"), [
    ("bogus = 1", "bogus"),
    ("scheduling.bogus = true", "scheduling.bogus"),
    ("status = RUNNING AND nmae = vm1", "nmae"),
    ("networkInterfaces.bogus = 1", "networkInterfaces.bogus"),
    ("name.sub = x", "name.sub"),
    ("bogus eq foo", "bogus"),
    ("(name eq foo) (bogus ne bar)", "bogus"),
    ("-bogus:*", "bogus"),
])
def test_unknown_field(expr, field):
    with pytest.raises(Invalid) as exc:
        compile_filter(expr, "Instance")
    assert exc.value.message == f"Invalid value for field 'filter': '{expr}'. Invalid field name '{field}'."


def test_known_fields_through_refs_arrays_and_maps():
    for expr in [
        "scheduling.automaticRestart = true",  # $ref
        "networkInterfaces.accessConfigs.natIP = 1.2.3.4",  # array of $ref, twice
        "tags.items = ssh",  # array of strings
        "labels.anything = x",  # additionalProperties
        "metadata.items.key = startup-script",
        "disks.initializeParams.diskSizeGb > 10",
    ]:
        assert compile_filter(expr, "Instance") is not None


def test_field_validation_depends_on_schema():
    assert compile_filter("operationType = insert", "Operation") is not None
    assert compile_filter("sizeGb > 10", "Disk") is not None
    with pytest.raises(Invalid):
        compile_filter("operationType = insert", "Instance")
    with pytest.raises(Invalid):
        compile_filter("sizeGb > 10", "Zone")


def test_no_schema_means_no_field_validation():
    pred = compile_filter("bogus = 1")
    assert pred is not None
    assert pred({"bogus": "1"}) is True
    assert pred({}) is False


def test_unknown_schema_is_a_programming_error():
    with pytest.raises(ValueError):
        compile_filter("name = x", "NoSuchSchema")


def test_syntax_error_reported_before_field_error():
    expr = "bogus = 1 AND"
    with pytest.raises(Invalid) as exc:
        compile_filter(expr, "Instance")
    assert exc.value.message == syntax_message(expr)


def test_evaluation_speed_smoke():
    pred = compile_filter('(status = RUNNING) (labels.env = prod) (name = "vm*")', "Instance")
    assert pred is not None
    rows = [dict(VM1, name=f"vm{i}") for i in range(5000)]
    assert sum(1 for r in rows if pred(r)) == 5000
