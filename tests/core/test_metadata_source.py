"""Who asks the metadata server (core.services.instance_metadata.instance_at): the instance whose NIC
on the router's network holds the request's source address, on both databases, found through the
address's allocation in its subnetwork's pool (the instance, or the static internal address it
uses), and, on SQLite's own plans, by reads that never walk the cloud's instances: it was a LIKE
over every instance's body, for every request of every guest."""

from __future__ import annotations

import uuid

import pytest

from core.resources import store
from core.resources.context import Call
from core.services import addresses
from core.services.instance_metadata import instance_at
from tests.helpers.core import new_instance
from tests.helpers.databases import sqlite_reads

PROJECT, ZONE, REGION = "demo-project", "us-central1-a", "us-central1"
NETWORK = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/default"


def _instance(session, **nic) -> tuple[str, str]:
    """A new instance on the default network (its NIC's fields ``nic``): its name and address."""
    name = new_instance(session, zone=ZONE, prefix="md", nic=nic)
    found = store.body_of(store.find(session, PROJECT, "instances", f"zones/{ZONE}", name))
    return name, found["networkInterfaces"][0]["networkIP"]


def _static(session, ip: str) -> dict:
    """A static internal address of the default subnetwork at ``ip``."""
    name = f"st-{uuid.uuid4().hex[:8]}"
    addresses.insert(Call(session, PROJECT, "test"), f"regions/{REGION}", {
        "name": name, "addressType": "INTERNAL", "subnetwork": f"regions/{REGION}/subnetworks/default", "address": ip})
    session.flush()
    return store.body_of(store.find(session, PROJECT, "addresses", f"regions/{REGION}", name))


def test_the_instance_holding_the_address_on_the_network(session):
    first, first_ip = _instance(session)
    second, second_ip = _instance(session)
    assert instance_at(session, NETWORK, first_ip) == (PROJECT, ZONE, first)
    assert instance_at(session, NETWORK, second_ip) == (PROJECT, ZONE, second)
    other_network = NETWORK.rsplit("/", 1)[0] + "/elsewhere"
    assert instance_at(session, other_network, first_ip) is None  # addresses are unique within a network only
    assert instance_at(session, NETWORK, "10.128.15.250") is None  # in the range, held by no one
    assert instance_at(session, NETWORK, "192.0.2.1") is None  # in no subnetwork of the network
    assert instance_at(session, NETWORK, "not-an-address") is None
    assert instance_at(session, "https://www.googleapis.com/compute/v1/projects/x/zones/z/instances/i", first_ip) is None


def test_an_instance_using_a_static_internal_address(session):
    promoted, ip = _instance(session)
    assert _static(session, ip)["users"][0].endswith(f"/instances/{promoted}")  # its ephemeral address promoted
    assert instance_at(session, NETWORK, ip) == (PROJECT, ZONE, promoted)

    reserved = _static(session, "10.128.14.7")
    assert instance_at(session, NETWORK, reserved["address"]) is None  # reserved, used by no instance yet
    user, user_ip = _instance(session, networkIP=reserved["address"])
    assert user_ip == reserved["address"]
    assert instance_at(session, NETWORK, user_ip) == (PROJECT, ZONE, user)


def test_the_lookup_never_walks_the_clouds_instances(engine, session):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    _, ip = _instance(session)
    session.flush()
    found: list[object] = []
    plans, reads_of_resources = sqlite_reads(session, lambda: found.append(instance_at(session, NETWORK, ip)))
    assert found[0] is not None and reads_of_resources, plans
    # each read of resources a seek by its project and collection (the network's subnetworks) or by uid
    assert all(line.startswith("SEARCH resources USING ") and ("(project=? AND collection=?" in line or "(uid=?)" in line)
               for line in reads_of_resources), plans
