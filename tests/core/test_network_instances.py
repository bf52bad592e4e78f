"""A network's instances as a router's full render and a sync that names no instance read them
(core.systemvms.guests.network_instances), on both databases: the holders of its subnetworks'
addresses (in a region, or in all), with the users of the static internal addresses among them;
and, on SQLite's own plans, by reads that never walk the cloud's instances. They tested every
instance's body of the region (of the cloud, for the sync) for the network's URL."""

from __future__ import annotations

import uuid

import pytest

from core.resources import store
from core.resources.context import Call
from core.services import addresses, seed
from core.systemvms.guests import network_instances
from tests.helpers.core import new_instance
from tests.helpers.databases import sqlite_reads

PROJECT = "demo-project"
NETWORK = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/default"


def _instance(session, project: str = PROJECT, zone: str = "us-central1-a", **nic) -> str:
    return new_instance(session, project=project, zone=zone, prefix="net", nic=nic)


def _names(rows) -> set[str]:
    return {row.name for row in rows}


def test_the_networks_instances_in_a_region_and_in_all(session):
    before = _names(network_instances(session, NETWORK))
    central = [_instance(session), _instance(session, zone="us-central1-b")]
    europe = _instance(session, zone="europe-west1-b")
    seed.ensure_project(session, "other-net-project")
    elsewhere = _instance(session, project="other-net-project")  # another project's default network
    assert _names(network_instances(session, NETWORK, "us-central1")) - before == set(central)
    assert _names(network_instances(session, NETWORK, "europe-west1")) - before == {europe}
    assert _names(network_instances(session, NETWORK)) - before == {*central, europe}
    other = NETWORK.replace(PROJECT, "other-net-project")
    assert elsewhere in _names(network_instances(session, other)) and not set(central) & _names(network_instances(session, other))
    rows = network_instances(session, NETWORK)
    assert [row.pk for row in rows] == sorted(row.pk for row in rows)
    assert network_instances(session, NETWORK.replace("/networks/", "/firewalls/")) == []


def test_an_instance_on_a_static_internal_address_is_one_of_them(session):
    name = f"st-{uuid.uuid4().hex[:8]}"
    addresses.insert(Call(session, PROJECT, "test"), "regions/us-central1", {
        "name": name, "addressType": "INTERNAL", "subnetwork": "regions/us-central1/subnetworks/default",
        "address": "10.128.13.9"})
    session.flush()
    assert "users" not in store.body_of(store.find(session, PROJECT, "addresses", "regions/us-central1", name))
    user = _instance(session, networkIP="10.128.13.9")
    holder = addresses.holder(session, "subnet:" + str(store.find(session, PROJECT, "subnetworks",
                                                                  "regions/us-central1", "default").uid), "10.128.13.9")
    assert holder is not None and holder.collection == "addresses"  # the address holds it, the instance uses it
    assert user in _names(network_instances(session, NETWORK, "us-central1"))


def test_the_reads_never_walk_the_clouds_instances(engine, session):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    _instance(session)
    found: list[list] = []
    plans, reads = sqlite_reads(session, lambda: found.extend(
        [network_instances(session, NETWORK, "us-central1"), network_instances(session, NETWORK)]))
    assert all(found) and reads, plans
    # the network's subnetworks by (project, collection); each address's holder by uid
    assert all(line.startswith("SEARCH resources USING ") and ("(project=? AND collection=?" in line or "(uid=?)" in line)
               for line in reads), plans
    assert any(line.startswith("SEARCH ip_allocations USING ") and "(pool=?)" in line for plan in plans for line in plan)
