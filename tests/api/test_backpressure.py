"""Backpressure (issue 16, defect 10): a project that floods the job queue is refused with GCE's
per-project rate-limit answer (403 ``rateLimitExceeded``), which Google's clients back off and
retry on; another project's calls are served meanwhile, and the refused call committed nothing.

The server bounds each project at ``GSTACK_MAX_QUEUED_OPERATIONS=3`` unfinished Operations, and
its simulator takes 5 s per VM start, so three inserts keep the flooding project's queue full
while the test looks (with 1.5 s a loaded machine took that long between the flood and the
retried call, and the queue had drained before it).
"""

from __future__ import annotations

import json
import time

import pytest
import requests
from googleapiclient.errors import HttpError

from tests.conftest import PROJECT, project_credentials, running_server, unique, wait_op

ZONE = "us-central1-a"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


def _instance(name: str) -> dict:
    return {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}


@pytest.fixture(scope="module")
def bounded():
    with running_server("sqlite", GSTACK_MAX_QUEUED_OPERATIONS="3", GSTACK_SIM_LATENCY="5") as srv:
        yield srv


def test_a_flooding_project_is_refused_and_no_other(bounded):
    gce = bounded.gce()
    other = unique("calm")
    other_gce = bounded.gce(project_credentials(bounded, other))
    number = gce.projects().get(project=PROJECT).execute()["id"]  # GCE's project id is its number
    prefix = unique("flood")
    ops = [gce.instances().insert(project=PROJECT, zone=ZONE, body=_instance(f"{prefix}-{n}"),
                                  requestId=f"00000000-0000-4000-8000-00000000000{n}").execute() for n in range(3)]
    assert all(op["status"] != "DONE" for op in ops)

    with pytest.raises(HttpError) as refused:
        gce.instances().insert(project=PROJECT, zone=ZONE, body=_instance(f"{prefix}-3")).execute()
    error = json.loads(refused.value.content)["error"]
    assert refused.value.resp.status == 403
    assert error["errors"] == [{"message": error["message"], "domain": "usageLimits", "reason": "rateLimitExceeded"}]
    assert error["message"] == ("Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service "
                                f"'compute.googleapis.com' for consumer 'project_number:{number}'.")
    assert error["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"

    # another project is never refused for this one's flood
    calm = other_gce.instances().insert(project=other, zone=ZONE, body=_instance("calm-0")).execute()
    # a retried request (its requestId) answers its Operation, not the refusal
    again = gce.instances().insert(project=PROJECT, zone=ZONE, body=_instance(f"{prefix}-0"),
                                   requestId="00000000-0000-4000-8000-000000000000").execute()
    assert again["name"] == ops[0]["name"]
    # the refused call committed nothing
    with pytest.raises(HttpError) as missing:
        gce.instances().get(project=PROJECT, zone=ZONE, instance=f"{prefix}-3").execute()
    assert missing.value.resp.status == 404

    # Google's client backs off on rateLimitExceeded and retries: served once the queue drains
    started = time.monotonic()
    late = gce.instances().insert(project=PROJECT, zone=ZONE, body=_instance(f"{prefix}-3")).execute(num_retries=6)
    assert time.monotonic() - started > 0.3  # it was refused at least once before
    for op in (*ops, late):
        assert "error" not in wait_op(gce, op)
    assert "error" not in wait_op(other_gce, calm)

    metrics = requests.get(bounded.base + "/metrics", timeout=10).text
    refusals = [line for line in metrics.splitlines()
                if line.startswith('gstack_ratelimit_refusals_total{kind="queue"}')]
    assert refusals and float(refusals[0].split()[-1]) >= 2
