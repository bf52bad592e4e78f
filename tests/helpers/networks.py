"""Helpers of the network API tests (networks, subnetworks, routes, firewalls, addresses, load
balancing): a mutating call that must end DONE, one that must fail with Google's error, and lookups."""

from __future__ import annotations

import re

import pytest
from googleapiclient.errors import HttpError

from tests.conftest import error_of, unique, wait_op

ROUTE_NAME = re.compile(r"^default-route-[0-9a-f]{16}$")


def done(gce, request, op_type: str | None = None) -> dict:
    """Execute a mutating request; its operation must be global and end DONE without error."""
    op = request.execute()
    assert op["kind"] == "compute#operation"
    if op_type:
        assert op["operationType"] == op_type
    op = wait_op(gce, op)
    assert op["status"] == "DONE" and "error" not in op, op
    return op


def fails(request, status: int, reason: str, message: str | None = None) -> dict:
    with pytest.raises(HttpError) as info:
        request.execute()
    assert info.value.resp.status == status, info.value.content
    err = error_of(info.value)
    assert err["code"] == status and err["errors"][0]["reason"] == reason, err
    assert err["errors"][0]["domain"] == "global"
    if message is not None:
        assert err["message"] == message
    return err


def names(listing: dict) -> list[str]:
    return [i["name"] for i in listing.get("items", [])]


def network_names(gce, project: str) -> list[str]:
    return names(gce.networks().list(project=project).execute())


def routes_of(gce, project: str, network: str) -> list[dict]:
    items = gce.routes().list(project=project).execute().get("items", [])
    return [r for r in items if r["network"].endswith(f"/global/networks/{network}")]


def subnets_of(gce, project: str, network: str) -> dict[str, dict]:
    """{region: subnetwork} of a network."""
    agg = gce.subnetworks().aggregatedList(project=project).execute()["items"]
    return {scope.split("/")[1]: s for scope, v in agg.items() for s in v.get("subnetworks", [])
            if s["network"].endswith(f"/global/networks/{network}")}


def custom(gce, project: str, name: str | None = None) -> str:
    name = name or unique("cnet")
    done(gce, gce.networks().insert(project=project, body={"name": name, "autoCreateSubnetworks": False}))
    return name
