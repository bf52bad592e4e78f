"""Helpers of the compute API tests: links on the server's base URL, a refused call's error
envelope, a fresh project of one's own (so quotas and project metadata can change without touching
demo-project), google-cloud-compute clients and disks."""

from __future__ import annotations

import os

import pytest
from googleapiclient.errors import HttpError

from tests.conftest import CLOUD_PLATFORM, PROJECT, ZONE, error_of, unique, wait_op


def link(server, path: str) -> str:
    """A selfLink on the server's own base URL."""
    return server.api + path


def expect_error(request, status: int, reason: str, message: str | None = None) -> dict:
    """Execute a googleapiclient request that must fail; return the error envelope."""
    with pytest.raises(HttpError) as exc:
        request.execute()
    assert exc.value.resp.status == status, exc.value.content
    err = error_of(exc.value)
    assert err["code"] == status
    assert err["errors"][0]["reason"] == reason, err
    assert err["errors"][0]["message"] == err["message"]
    if message is not None:
        assert err["message"] == message
    return err


_FRESH: dict = {}


def fresh_project(server, prefix: str = "proj"):
    """(name, googleapiclient client) of a new project owned by a new key; one per prefix and server."""
    key = (server.data_dir, prefix)
    if key not in _FRESH:
        name = unique(prefix)
        server.admin("project", "create", name)
        path = os.path.join(server.data_dir, f"{name}-key.json")
        server.admin("service-account-key", "--project", name, "--output", path, "--base-url", server.base)
        from google.oauth2 import service_account

        creds = service_account.Credentials.from_service_account_file(path, scopes=[CLOUD_PLATFORM])
        _FRESH[key] = (name, server.gce(creds))
    return _FRESH[key]


def disk_link(server, name: str, zone: str = ZONE, project: str = PROJECT) -> str:
    return link(server, f"projects/{project}/zones/{zone}/disks/{name}")


def make_disk(gce, name: str | None = None, zone: str = ZONE, project: str = PROJECT, **fields) -> dict:
    """Insert a disk, wait for its operation, return the disk."""
    name = name or unique("disk")
    op = wait_op(gce, gce.disks().insert(project=project, zone=zone, body={"name": name, **fields}).execute())
    assert op["status"] == "DONE" and "error" not in op, op
    return gce.disks().get(project=project, zone=zone, disk=name).execute()


def compute_client(server, client_class):
    """``server.compute(client_class)`` whose ``ExtendedOperation.result()`` polls this server too.

    google-cloud-compute builds the operation clients behind ``result()`` on compute.googleapis.com,
    ignoring ``api_endpoint``; give the client ones on our endpoint.
    """
    from google.cloud import compute_v1

    client = server.compute(client_class)
    services = client._transport._extended_operations_services
    for key, op_class in (("zone_operations", compute_v1.ZoneOperationsClient),
                          ("region_operations", compute_v1.RegionOperationsClient),
                          ("global_operations", compute_v1.GlobalOperationsClient)):
        services[key] = server.compute(op_class)
    return client


def group_template(gce, project: str = PROJECT) -> str:
    """The name of a new global instance template (e2-micro, debian-12, the default network), as
    the managed group tests make their groups from."""
    name = unique("igmt")
    body = {"name": name, "properties": {
        "machineType": "e2-micro", "networkInterfaces": [{"network": "global/networks/default"}],
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
            "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}}
    op = gce.instanceTemplates().insert(project=project, body=body).execute()
    op = wait_op(gce, op)
    assert op["status"] == "DONE" and "error" not in op, op
    return name
