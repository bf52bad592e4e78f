"""Finished Operations are forgotten ``GSTACK_OPERATION_RETENTION`` seconds after they ended, as
GCE forgets them (after 1 hour to 14 days), and their requestId with them; an unfinished one stays
however old. Driven through google-api-python-client on a server whose retention is 5 seconds (long
enough for the calls that look at an Operation just after it ended, on a loaded machine)."""

from __future__ import annotations

import time
import uuid

import pytest
from googleapiclient.errors import HttpError

from tests.conftest import BACKENDS, PROJECT, ZONE, running_server, unique, wait_op

RETENTION = 5.0  # seconds; the server's rounds then come every 2.5 s


@pytest.fixture(scope="module", params=BACKENDS)
def server(request):
    with running_server(request.param, GSTACK_OPERATION_RETENTION=str(RETENTION),
                        GSTACK_SIM_LATENCY='{"spawn": 12}') as srv:
        yield srv


def get_op(gce, name: str) -> dict | None:
    try:
        return gce.zoneOperations().get(project=PROJECT, zone=ZONE, operation=name).execute()
    except HttpError as exc:
        assert exc.resp.status == 404, exc
        return None


def until_gone(gce, name: str, timeout: float = 30.0) -> float:
    """Seconds until the Operation answers 404."""
    t0 = time.monotonic()
    while get_op(gce, name) is not None:
        assert time.monotonic() - t0 < timeout, f"{name} was kept past its retention"
        time.sleep(0.25)
    return time.monotonic() - t0


def test_a_finished_operation_goes_after_the_retention_with_its_request_id(server):
    gce = server.gce()
    request_id = str(uuid.uuid4())
    name = unique("ret")
    first = wait_op(gce, gce.disks().insert(project=PROJECT, zone=ZONE, requestId=request_id,
                                            body={"name": name, "sizeGb": "10"}).execute())
    # within the retention the same requestId answers the same Operation
    again = gce.disks().insert(project=PROJECT, zone=ZONE, requestId=request_id,
                               body={"name": name, "sizeGb": "10"}).execute()
    assert again["name"] == first["name"]
    later = wait_op(gce, gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": unique("ret"),
                                                                              "sizeGb": "10"}).execute())
    until_gone(gce, first["name"])
    listed = gce.zoneOperations().list(project=PROJECT, zone=ZONE).execute().get("items", [])
    assert first["name"] not in {op["name"] for op in listed}
    # the disk it made stays: only the history goes
    assert gce.disks().get(project=PROJECT, zone=ZONE, disk=name).execute()["status"] == "READY"
    # past the retention the requestId is a new request, which does what it asks again
    other = unique("ret")
    retry = wait_op(gce, gce.disks().insert(project=PROJECT, zone=ZONE, requestId=request_id,
                                            body={"name": other, "sizeGb": "10"}).execute())
    assert retry["name"] != first["name"] and "error" not in retry
    assert retry["targetLink"].endswith(f"/disks/{other}")
    until_gone(gce, later["name"])


def test_an_unfinished_operation_stays_however_old(server):
    gce = server.gce()
    body = {"name": unique("ret-vm"), "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True,
                       "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}
    op = gce.instances().insert(project=PROJECT, zone=ZONE, body=body).execute()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2 * RETENTION:  # its spawn takes 12 s: older than the retention, unfinished
        found = get_op(gce, op["name"])
        assert found is not None and found["status"] != "DONE", found
        time.sleep(0.5)
    done = wait_op(gce, op)
    assert "error" not in done
    assert get_op(gce, op["name"]) is not None  # just finished: kept for the retention from its end
    # (the newest Operation is always kept: one more comes after it)
    wait_op(gce, gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": unique("ret"), "sizeGb": "10"}).execute())
    until_gone(gce, op["name"])
    gce.instances().delete(project=PROJECT, zone=ZONE, instance=body["name"]).execute()
