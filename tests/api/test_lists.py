"""List conventions end to end: paging, orderBy, both filter dialects, fields=, prettyPrint and the
standard parameters every Google API accepts, through google-api-python-client and raw HTTP."""

from __future__ import annotations

import json

import pytest
import requests
from googleapiclient.errors import HttpError

from tests.conftest import PROJECT, ZONE, error_of, unique, wait_op

ZONE_B = "us-central1-b"
N_DISKS = 7


@pytest.fixture(scope="module")
def auth(server) -> dict:
    return {"Authorization": "Bearer " + server.token()}


def _insert_disks(gce, zone: str, names: list[str]) -> None:
    ops = [gce.disks().insert(project=PROJECT, zone=zone, body={"name": n, "sizeGb": "10"}).execute()
           for n in names]
    for op in ops:
        done = wait_op(gce, op)
        assert "error" not in done, done


@pytest.fixture(scope="module")
def disks(server):
    """Seven disks named <prefix>-0..6 in us-central1-a and two in us-central1-b, created in order."""
    gce = server.gce()
    prefix = unique("lst")
    names = [f"{prefix}-{i}" for i in range(N_DISKS)]
    _insert_disks(gce, ZONE, names)
    other = [f"{prefix}-b{i}" for i in range(2)]
    _insert_disks(gce, ZONE_B, other)
    return prefix, names, other


@pytest.fixture(scope="module")
def labelled(server, disks):
    """Labels on two of the disks: env=prod on -1, env=dev on -2."""
    gce = server.gce()
    _, names, _ = disks
    for name, env in ((names[1], "prod"), (names[2], "dev")):
        disk = gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()
        op = gce.disks().setLabels(project=PROJECT, zone=ZONE, resource=name, body={
            "labels": {"env": env}, "labelFingerprint": disk["labelFingerprint"]}).execute()
        wait_op(gce, op)
    return names


def _walk(gce, max_results: int, **kw) -> list[dict]:
    """Every page of disks.list; asserts the page sizes and that only non-final pages carry a token."""
    pages = []
    token = None
    while True:
        resp = gce.disks().list(project=PROJECT, zone=ZONE, maxResults=max_results, pageToken=token, **kw).execute()
        assert resp["kind"] == "compute#diskList"
        pages.append(resp)
        token = resp.get("nextPageToken")
        if not token:
            break
        assert len(resp["items"]) == max_results
        assert len(pages) < 1000
    return pages


def _names(resp: dict) -> list[str]:
    return [i["name"] for i in resp.get("items", [])]


def _list(gce, filter_: str, zone: str = ZONE) -> list[str]:
    return _names(gce.disks().list(project=PROJECT, zone=zone, filter=filter_).execute())


# --------------------------------------------------------------------------- paging and order

def test_paging_walks_every_item_once(server, disks):
    gce = server.gce()
    prefix, names, _ = disks
    pages = _walk(gce, 3, filter=f'name eq "{prefix}-[0-9]"')
    got = [n for p in pages for n in _names(p)]
    assert got == sorted(names)  # default order is by name, each exactly once
    assert len(pages) == 3
    assert [len(p.get("items", [])) for p in pages] == [3, 3, 1]
    assert "nextPageToken" not in pages[-1]


def test_paging_without_filter_and_exact_page(server, disks):
    """Pages of an unfiltered list hold exactly maxResults items; our disks appear once each."""
    gce = server.gce()
    _, names, _ = disks
    got = [n for p in _walk(gce, 2) for n in _names(p)]
    assert len(got) == len(set(got))
    assert set(names) <= set(got)
    assert got == sorted(got)


def test_order_by_creation_desc(server, disks):
    gce = server.gce()
    prefix, names, _ = disks
    pages = _walk(gce, 3, filter=f"name = {prefix}-*", orderBy="creationTimestamp desc")
    got = [n for p in pages for n in _names(p)]
    assert got == list(reversed(names))  # created in order 0..6, newest first


def test_order_by_name_explicit(server, disks):
    gce = server.gce()
    prefix, names, _ = disks
    resp = gce.disks().list(project=PROJECT, zone=ZONE, orderBy="name", filter=f"name = {prefix}-*").execute()
    assert _names(resp) == sorted(names)


@pytest.mark.parametrize("params, field", [
    ({"orderBy": "foo"}, "orderBy"),
    ({"orderBy": "creationTimestamp"}, "orderBy"),
    ({"maxResults": "501"}, "maxResults"),
    ({"maxResults": "-1"}, "maxResults"),
    ({"maxResults": "many"}, "maxResults"),
    ({"pageToken": "not-a-token"}, "pageToken"),
])
def test_bad_list_params_are_400(server, auth, params, field):
    r = requests.get(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", params=params, headers=auth)
    assert r.status_code == 400, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT"
    assert err["errors"][0]["reason"] == "invalid"
    assert f"'{field}'" in err["message"]


def _token(order: str, key: list) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps({"o": order, "k": key}).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path, order, key", [
    ("zones/us-central1-a/disks", "name", []),
    ("zones/us-central1-a/disks", "name", [5]),
    ("zones/us-central1-a/disks", "name", ["a", "b"]),
    ("zones/us-central1-a/disks", "name", [{"a": 1}]),
    ("zones/us-central1-a/disks", "name", ["nul\u0000"]),
    ("zones/us-central1-a/disks", "created", ["x", "y"]),
    ("zones/us-central1-a/disks", "created", [1.5, 10**19]),
    ("zones/us-central1-a/disks", "created", [1.5, True]),
    ("aggregated/disks", "name", ["x"]),
    ("zones/us-central1-a/operations", "created", [1.5, "x"]),
    ("aggregated/operations", "name", [["global"], "x"]),
    ("aggregated/disks", "created", [5, 1.5, 3]),
    ("aggregated/disks", "created", ["zones/us-central1-a", 1.5]),
    ("aggregated/operations", "created", [["global"], 1.5, 3]),
])
def test_forged_page_token_is_400(server, auth, path, order, key):
    """A token whose key does not fit the list's sort columns is refused before it reaches SQL."""
    params = {"pageToken": _token(order, key)}
    if order == "created":
        params["orderBy"] = "creationTimestamp desc"
    r = requests.get(f"{server.api}projects/{PROJECT}/{path}", params=params, headers=auth)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == (f"Invalid value for field 'pageToken': '{params['pageToken']}'. "
                                            "The page token is invalid or does not belong to this list.")


def test_page_token_of_other_order_is_400(server, disks):
    gce = server.gce()
    first = gce.disks().list(project=PROJECT, zone=ZONE, maxResults=1).execute()
    with pytest.raises(HttpError) as e:
        gce.disks().list(project=PROJECT, zone=ZONE, maxResults=1, orderBy="creationTimestamp desc",
                         pageToken=first["nextPageToken"]).execute()
    assert e.value.resp.status == 400
    assert "pageToken" in error_of(e.value)["message"]


def test_max_results_zero_means_default(server, disks):
    gce = server.gce()
    prefix, names, _ = disks
    resp = gce.disks().list(project=PROJECT, zone=ZONE, maxResults=0, filter=f"name = {prefix}-*").execute()
    assert _names(resp) == sorted(names)
    assert "nextPageToken" not in resp


def test_aggregated_list_pages_across_zones(server, disks):
    gce = server.gce()
    prefix, names, other = disks
    seen: list[tuple[str, str]] = []
    token = None
    pages = 0
    while True:
        resp = gce.disks().aggregatedList(project=PROJECT, maxResults=2, pageToken=token,
                                          filter=f"name = {prefix}-*", includeAllScopes=True).execute()
        pages += 1
        assert resp["kind"] == "compute#diskAggregatedList"
        assert resp["id"] == f"projects/{PROJECT}/aggregated/disks"
        assert resp["unreachables"] == []
        count = 0
        for scope, scoped in resp["items"].items():
            assert scope.startswith(("zones/", "regions/"))  # regional disks are listed under their region
            if "disks" in scoped:
                for d in scoped["disks"]:
                    assert d["zone"].endswith("/" + scope)
                    seen.append((scope, d["name"]))
                    count += 1
            else:
                assert scoped["warning"]["code"] == "NO_RESULTS_ON_PAGE"
                assert scoped["warning"]["data"] == [{"key": "scope", "value": scope}]
        # every zone appears on every page, with items or a warning
        assert {f"zones/{z}" for z in ("us-central1-a", "us-central1-b")} <= set(resp["items"])
        token = resp.get("nextPageToken")
        if not token:
            break
        assert count == 2
        assert pages < 20
    expected = [(f"zones/{ZONE}", n) for n in names] + [(f"zones/{ZONE_B}", n) for n in other]
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(set(seen))
    assert pages == 5  # 9 items, 2 a page


def test_aggregated_list_newest_first_pages_scope_after_scope(server, disks):
    """aggregatedList with orderBy=creationTimestamp desc, read a scope at a time on the server:
    pages of two hold what one page holds, in the same order, each scope's items newest first."""
    gce = server.gce()
    prefix, names, other = disks

    def listed(max_results: int) -> list[tuple[str, str, str]]:
        seen, token = [], None
        while True:
            resp = gce.disks().aggregatedList(project=PROJECT, maxResults=max_results, pageToken=token,
                                              orderBy="creationTimestamp desc").execute()
            seen += [(scope, d["creationTimestamp"], d["name"]) for scope, scoped in resp["items"].items()
                     for d in scoped.get("disks", [])]
            token = resp.get("nextPageToken")
            if not token:
                return seen

    whole = listed(500)
    assert listed(2) == whole
    assert [s for s, _, _ in whole] == sorted(s for s, _, _ in whole)
    for scope in {s for s, _, _ in whole}:
        stamps = [t for s, t, _ in whole if s == scope]
        assert stamps == sorted(stamps, reverse=True), scope
    assert [n for _, _, n in whole if n in names] == names[::-1]
    assert [n for _, _, n in whole if n in other] == other[::-1]


# --------------------------------------------------------------------------- filters: AIP-160

def test_filter_status_eq(server, disks):
    gce = server.gce()
    prefix, names, _ = disks
    assert set(names) <= set(_list(gce, "status = READY"))
    assert not set(names) & set(_list(gce, "status = RUNNING"))
    assert not set(names) & set(_list(gce, "status != READY"))


def test_filter_status_running_on_instances(server):
    gce = server.gce()
    name = unique("lstvm")
    op = gce.instances().insert(project=PROJECT, zone=ZONE, body={
        "name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-small",
        "disks": [{"boot": True, "autoDelete": True,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}]}).execute()
    assert "error" not in wait_op(gce, op)
    running = gce.instances().list(project=PROJECT, zone=ZONE, filter="status = RUNNING").execute()
    assert name in _names(running)
    assert all(i["status"] == "RUNNING" for i in running["items"])
    stopped = gce.instances().list(project=PROJECT, zone=ZONE, filter="status = TERMINATED").execute()
    assert name not in _names(stopped)
    legacy = gce.instances().list(project=PROJECT, zone=ZONE, filter=f"(name eq {name}) (status eq RUNNING)").execute()
    assert _names(legacy) == [name]


def test_filter_labels(server, labelled):
    gce = server.gce()
    names = labelled
    prod = _list(gce, "labels.env = prod")
    assert names[1] in prod and names[2] not in prod
    assert set(names[1:3]) <= set(_list(gce, "labels.env:*"))
    assert names[0] not in _list(gce, "labels.env:*")
    prefix = names[0].rsplit("-", 1)[0]
    assert _list(gce, f'name = "{prefix}-*" AND labels.env != prod') == sorted(set(names) - {names[1]})


def test_filter_name_wildcard(server, disks):
    gce = server.gce()
    prefix, names, other = disks
    assert _list(gce, f'name = "{prefix}-*"') == sorted(names)
    assert _list(gce, f"name = {prefix}-3") == [names[3]]
    assert _list(gce, f'name = "{prefix}-b*"', zone=ZONE_B) == sorted(other)


def test_filter_or_and_not(server, disks):
    gce = server.gce()
    prefix, names, _ = disks
    assert _list(gce, f"(name = {names[0]}) OR (name = {names[4]})") == [names[0], names[4]]
    assert _list(gce, f"name = {names[0]} OR name = {names[4]}") == [names[0], names[4]]
    assert _list(gce, f'name = "{prefix}-*" NOT name = {names[0]}') == sorted(names[1:])
    assert _list(gce, f'name = "{prefix}-*" -name = {names[0]}') == sorted(names[1:])
    assert _list(gce, f'(name = "{prefix}-*") AND NOT (name = {names[0]} OR name = {names[1]})') == sorted(names[2:])
    # OR binds tighter than AND in AIP-160
    assert _list(gce, f"(name = {names[0]}) OR (name = {names[1]}) AND (sizeGb = 10)") == names[:2]
    assert _list(gce, f"(name = {names[0]}) OR (name = {names[1]}) AND (sizeGb = 20)") == []


def test_filter_numeric_and_has(server, disks):
    gce = server.gce()
    prefix, names, _ = disks
    assert _list(gce, f'name = "{prefix}-*" sizeGb >= 10 sizeGb < 11') == sorted(names)
    assert _list(gce, f'name:"{prefix}-" sizeGb > 10') == []


# --------------------------------------------------------------------------- filters: legacy regex

def test_legacy_filter_word_regex(server, disks):
    """gcloud's rewrite of --filter=name:foo: a full-match regex with word boundaries."""
    gce = server.gce()
    prefix, names, _ = disks
    suffix = prefix.split("-", 1)[1]
    assert _list(gce, f'name eq ".*\\b{suffix}\\b.*"') == sorted(names)
    assert _list(gce, f"name eq {suffix}") == []  # a full match, not a search
    assert _list(gce, f"name eq '{prefix}-[0-2]'") == names[:3]


def test_legacy_filter_conjunction(server, labelled):
    gce = server.gce()
    names = labelled
    prefix = names[0].rsplit("-", 1)[0]
    assert _list(gce, f"(name eq {prefix}-.*) (status ne READY)") == []
    assert _list(gce, f"(name eq {prefix}-.*) (status eq READY)") == sorted(names)
    assert _list(gce, f"(name eq {prefix}-.*) (name ne .*-[0-5])") == [names[6]]
    assert _list(gce, f"(name eq {prefix}-.*) (labels.env eq prod)") == [names[1]]


def test_legacy_filter_zone_url(server, disks):
    """gcloud's --filter=zone:us-central1-a becomes a regex over the zone URL."""
    gce = server.gce()
    prefix, names, _ = disks
    resp = gce.disks().aggregatedList(project=PROJECT, filter='zone eq ".*\\bus\\-central1\\-a\\b.*"').execute()
    assert set(names) <= {d["name"] for d in resp["items"][f"zones/{ZONE}"]["disks"]}
    assert "disks" not in resp["items"][f"zones/{ZONE_B}"]


@pytest.mark.parametrize("expr, fragment", [
    ("nosuchfield = 1", "Invalid field name 'nosuchfield'"),
    ("labels = x AND bogus.deep = 2", "Invalid field name 'bogus.deep'"),
    ("nosuch eq .*", "Invalid field name 'nosuch'"),
])
def test_filter_unknown_field_is_400(server, expr, fragment):
    gce = server.gce()
    with pytest.raises(HttpError) as e:
        gce.disks().list(project=PROJECT, zone=ZONE, filter=expr).execute()
    assert e.value.resp.status == 400
    err = error_of(e.value)
    assert err["errors"][0]["reason"] == "invalid"
    assert err["message"] == f"Invalid value for field 'filter': '{expr}'. {fragment}."


@pytest.mark.parametrize("expr", [
    "(name = x", "name =", "name eq", "= x", "name = x)", "(name eq x) OR (name eq y)",
    "name eq x AND status = READY", 'name = "unterminated', "name eq (", "name ~ x",
])
def test_filter_syntax_error_is_400(server, expr):
    gce = server.gce()
    with pytest.raises(HttpError) as e:
        gce.disks().list(project=PROJECT, zone=ZONE, filter=expr).execute()
    assert e.value.resp.status == 400
    err = error_of(e.value)
    assert err["status"] == "INVALID_ARGUMENT"
    assert err["message"] == f"Invalid value for field 'filter': '{expr}'. Invalid list filter expression."


def test_zones_list_legacy_filter(server):
    gce = server.gce()
    resp = gce.zones().list(project=PROJECT, filter="name eq us-central1-.*").execute()
    got = _names(resp)
    assert got == sorted(got) and got
    assert all(n.startswith("us-central1-") for n in got)
    assert "europe-west1-b" not in got
    everything = _names(gce.zones().list(project=PROJECT).execute())
    assert "europe-west1-b" in everything
    paged = gce.zones().list(project=PROJECT, filter="name eq us-central1-.*", maxResults=1).execute()
    assert _names(paged) == got[:1] and paged["nextPageToken"]
    rest = gce.zones().list(project=PROJECT, filter="name eq us-central1-.*", maxResults=500,
                            pageToken=paged["nextPageToken"]).execute()
    assert _names(rest) == got[1:]
    assert "nextPageToken" not in rest


def test_operations_aggregated_gcloud_filter(server, auth, labelled):
    """What `gcloud compute operations list --filter=operationType=setLabels --limit 1` sends."""
    r = requests.get(f"{server.api}projects/{PROJECT}/aggregated/operations",
                     params={"alt": "json", "filter": 'operationType eq ".*\\bsetLabels\\b.*"', "maxResults": "1",
                             "returnPartialSuccess": "True"},
                     headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "compute#operationAggregatedList"
    ops = [op for scoped in body["items"].values() for op in scoped.get("operations", [])]
    assert len(ops) == 1
    assert ops[0]["operationType"] == "setLabels"
    assert body.get("nextPageToken")  # at least two setLabels ops exist


# --------------------------------------------------------------------------- fields=, prettyPrint, alt

def test_fields_on_list(server, disks):
    gce = server.gce()
    prefix, names, _ = disks
    resp = gce.disks().list(project=PROJECT, zone=ZONE, filter=f"name = {prefix}-*", maxResults=3,
                            fields="items(name,status),nextPageToken").execute()
    assert set(resp) == {"items", "nextPageToken"}
    assert resp["items"] == [{"name": n, "status": "READY"} for n in sorted(names)[:3]]
    slash = gce.disks().list(project=PROJECT, zone=ZONE, filter=f"name = {prefix}-*", fields="items/name").execute()
    assert slash == {"items": [{"name": n} for n in sorted(names)]}


def test_fields_on_get(server, disks):
    gce = server.gce()
    _, names, _ = disks
    full = gce.disks().get(project=PROJECT, zone=ZONE, disk=names[0]).execute()
    resp = gce.disks().get(project=PROJECT, zone=ZONE, disk=names[0], fields="name,id").execute()
    assert resp == {"name": names[0], "id": full["id"]}
    assert list(resp) == ["id", "name"] or list(resp) == ["name", "id"]


def test_fields_on_aggregated(server, disks):
    gce = server.gce()
    prefix, names, other = disks
    resp = gce.disks().aggregatedList(project=PROJECT, filter=f"name = {prefix}-*",
                                      fields="items/*/disks(name),nextPageToken").execute()
    assert set(resp) == {"items"}
    assert resp["items"][f"zones/{ZONE}"] == {"disks": [{"name": n} for n in sorted(names)]}
    assert resp["items"][f"zones/{ZONE_B}"] == {"disks": [{"name": n} for n in sorted(other)]}
    # scopes whose only content is a warning vanish from the projection
    assert "zones/europe-west1-b" not in resp["items"]
    kinds = gce.disks().aggregatedList(project=PROJECT, filter=f"name = {prefix}-*", fields="kind,id").execute()
    assert kinds == {"kind": "compute#diskAggregatedList", "id": f"projects/{PROJECT}/aggregated/disks"}


def test_fields_on_operation_response(server):
    gce = server.gce()
    name = unique("lstf")
    op = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name, "sizeGb": "10"},
                            fields="name,status,zone,selfLink").execute()
    assert set(op) == {"name", "status", "zone", "selfLink"}
    wait_op(gce, op)


def test_bad_fields_on_insert_changes_nothing(server, auth):
    name = unique("lstbf")
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", params={"fields": "name,(("},
                      headers=auth, json={"name": name, "sizeGb": "10"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Invalid field selection name,(("
    r = requests.get(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks/{name}", headers=auth)
    assert r.status_code == 404


def test_bad_fields_is_400(server, auth):
    r = requests.get(f"{server.api}projects/{PROJECT}/zones/{ZONE}", params={"fields": "name,(id"}, headers=auth)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Invalid field selection name,(id"


def test_pretty_print_and_alt(server, auth):
    headers = auth
    url = f"{server.api}projects/{PROJECT}/zones/{ZONE}"
    pretty = requests.get(url, headers=headers)
    assert pretty.status_code == 200
    assert pretty.text.startswith("{\n  ")
    compact = requests.get(url, params={"prettyPrint": "false", "alt": "json"}, headers=headers)
    assert compact.status_code == 200
    assert compact.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert "\n" not in compact.text and ": " not in compact.text
    assert json.loads(compact.text) == pretty.json()
    lst = requests.get(url + "/disks", params={"prettyPrint": "false", "maxResults": "2"}, headers=headers)
    assert "\n" not in lst.text
    assert lst.json()["kind"] == "compute#diskList"


@pytest.mark.parametrize("params", [
    {"returnPartialSuccess": "true"},
    {"includeAllScopes": "True", "returnPartialSuccess": "True", "maxResults": "500"},
    {"serviceProjectNumber": "123"},
    {"quotaUser": "x", "userIp": "10.0.0.1", "$.xgafv": "1", "key": "AIzaSyFake", "alt": "json"},
])
def test_unknown_standard_params_accepted(server, auth, params):
    headers = auth
    for path in ("zones/us-central1-a/disks", "aggregated/disks", "zones"):
        r = requests.get(f"{server.api}projects/{PROJECT}/{path}", params=params, headers=headers)
        assert r.status_code == 200, (path, r.text)


def test_empty_list_has_no_items(server):
    gce = server.gce()
    resp = gce.disks().list(project=PROJECT, zone=ZONE, filter=f"name = {unique('none')}").execute()
    assert "items" not in resp
    assert "nextPageToken" not in resp
    assert resp["selfLink"].endswith(f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/disks")
    assert resp["id"] == f"projects/{PROJECT}/zones/{ZONE}/disks"


def test_long_filter_uses_method_override(server, disks):
    """google-api-python-client sends a GET longer than 2048 bytes as POST + X-HTTP-Method-Override."""
    gce = server.gce()
    prefix, names, _ = disks
    decoys = " OR ".join(f"name = {prefix}-decoy-{i:03d}" for i in range(120))
    expr = f"name = {names[2]} OR {decoys} OR name = {names[5]}"
    req = gce.disks().list(project=PROJECT, zone=ZONE, filter=expr)
    assert len(req.uri) > 2048
    assert _names(req.execute()) == [names[2], names[5]]


def test_method_override_raw(server, auth):
    r = requests.post(f"{server.api}projects/{PROJECT}/zones", data="filter=name+eq+us-central1-a&maxResults=1",
                      headers={**auth, "X-HTTP-Method-Override": "GET",
                               "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert _names(r.json()) == ["us-central1-a"]
