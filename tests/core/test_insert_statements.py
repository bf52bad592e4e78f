"""What one instances.insert sends to the database, on both: its names read with its network, the
region's subnetworks, its boot image and the project with its quota counters in one statement; the
instance's row and its new disks' in one INSERT (on PostgreSQL the same statement as its
Operation's), and a name taken since the checks (a concurrent insert won) refused with the
instance's clash before its disk's."""

from __future__ import annotations

import uuid

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import quotas
from core.errors import AlreadyExists, ComputeError, QuotaExceeded
from core.models import Operation, Project, Resource
from core.resources import store
from core.resources.context import Call
from core.services import instances, topology
from core.services.instances import lifecycle, reads
from tests.helpers.databases import statements_sent

PROJECT = "demo-project"
ZONE = "us-central1-a"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


def _body(name: str) -> dict:
    return {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}},
                      {"initializeParams": {"diskSizeGb": "10"}}, {"initializeParams": {"diskSizeGb": "20"}}]}


def _rows(session: Session, name: str) -> set[tuple[str, str]]:
    rows = session.execute(select(Resource.collection, Resource.name)
                           .where(Resource.project == PROJECT, Resource.name.like(f"{name}%")))
    return {(collection, found) for collection, found in rows}


def test_the_instance_and_its_new_disks_are_one_insert(engine, session):
    name = f"rows-{uuid.uuid4().hex[:6]}"
    zone = topology.zone(session, PROJECT, ZONE)
    with statements_sent(engine) as sent:
        instances.insert(Call(session, PROJECT, "test"), zone, _body(name))
    inserts = [q for q in sent if "INSERT INTO resources" in q]
    assert len(inserts) == 1, inserts
    # PostgreSQL: the Operation in the same statement, after its rows (a CTE); SQLite: the next one
    with_operation = [q for q in sent if "INSERT INTO operations" in q]
    assert (with_operation == inserts) == (engine.dialect.name == "postgresql"), with_operation
    assert _rows(session, name) == {("instances", name), ("disks", name), ("disks", f"{name}-1"),
                                    ("disks", f"{name}-2")}
    url = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/{name}"
    for disk in (name, f"{name}-1", f"{name}-2"):
        body = store.body_of(store.find(session, PROJECT, "disks", f"zones/{ZONE}", disk))
        assert body["users"] == [url] and body["status"] == "CREATING"


_SUBNET = "regions/us-central1/subnetworks/default"


@pytest.mark.parametrize("nic", [None, {"network": "global/networks/default"},
                                 {"network": f"projects/{PROJECT}/global/networks/default"},
                                 {"network": "global/networks/default", "subnetwork": _SUBNET},
                                 {"network": f"projects/{PROJECT}/global/networks/default", "subnetwork": f"projects/{PROJECT}/{_SUBNET}"}])
def test_the_names_are_read_with_the_network_and_its_subnetworks(engine, session, nic):
    """The subnetwork a NIC names with its network is one of those read with the network."""
    name = f"read-{uuid.uuid4().hex[:6]}"
    zone = topology.zone(session, PROJECT, ZONE)
    body = {**_body(name), **({"networkInterfaces": [nic]} if nic else {})}
    with statements_sent(engine) as sent:
        instances.insert(Call(session, PROJECT, "test"), zone, body)
    reads_of_resources = [q for q in sent if q.startswith("SELECT") and "FROM resources" in q]
    assert len(reads_of_resources) == 1, reads_of_resources  # the names with the network and the boot image
    assert reads_of_resources[0].count("UNION ALL") == 6  # a branch per name (the instance's, its 3 disks')
    nic_json = store.body_of(store.find(session, PROJECT, "instances", f"zones/{ZONE}", name))["networkInterfaces"][0]
    assert nic_json["subnetwork"].endswith(f"projects/{PROJECT}/{_SUBNET}")
    assert nic_json["network"].endswith(f"projects/{PROJECT}/global/networks/default")


@pytest.mark.parametrize("subnet", [_SUBNET, f"projects/{PROJECT}/{_SUBNET}",
                                    f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/{_SUBNET}"])
def test_a_subnetwork_named_alone_is_read_with_the_names(engine, session, subnet):
    """A NIC that names a subnetwork alone: the region's subnetworks of its project come with the
    names (the subnetwork among them); its network, which the subnetwork's body names, is the one
    other read of resources."""
    name = f"sub-{uuid.uuid4().hex[:6]}"
    zone = topology.zone(session, PROJECT, ZONE)
    with statements_sent(engine) as sent:
        instances.insert(Call(session, PROJECT, "test"), zone, {**_body(name), "networkInterfaces": [{"subnetwork": subnet}]})
    reads_of_resources = [q for q in sent if q.startswith("SELECT") and "FROM resources" in q]
    assert len(reads_of_resources) == 2, reads_of_resources
    assert reads_of_resources[0].count("UNION ALL") == 5 and "UNION ALL" not in reads_of_resources[1]
    nic_json = store.body_of(store.find(session, PROJECT, "instances", f"zones/{ZONE}", name))["networkInterfaces"][0]
    assert nic_json["subnetwork"].endswith(f"projects/{PROJECT}/{_SUBNET}")
    assert nic_json["network"].endswith(f"projects/{PROJECT}/global/networks/default")


@pytest.mark.parametrize("nic, message", [
    ({"subnetwork": "regions/us-central1/subnetworks/nowhere"},
     f"The resource 'projects/{PROJECT}/regions/us-central1/subnetworks/nowhere' was not found"),
    ({"network": "global/networks/default", "subnetwork": "regions/us-central1/subnetworks/nowhere"},
     f"The resource 'projects/{PROJECT}/regions/us-central1/subnetworks/nowhere' was not found"),
    ({"subnetwork": "regions/europe-west1/subnetworks/default"}, "Subnetwork must be in region 'us-central1'."),
])
def test_a_subnetwork_not_among_those_read_is_refused_as_before(engine, session, nic, message):
    """Not found among the region's subnetworks read with the names: looked up alone (a numeric id
    would be found there), and refused with the same error as without the read."""
    name = f"bad-{uuid.uuid4().hex[:6]}"
    zone = topology.zone(session, PROJECT, ZONE)
    with pytest.raises(ComputeError) as refused, session.begin_nested():
        instances.insert(Call(session, PROJECT, "test"), zone, {**_body(name), "networkInterfaces": [nic]})
    assert message in refused.value.message
    assert not _rows(session, name)


def test_a_subnetwork_named_by_its_id_is_found(engine, session):
    name = f"byid-{uuid.uuid4().hex[:6]}"
    zone = topology.zone(session, PROJECT, ZONE)
    uid = store.find(session, PROJECT, "subnetworks", "regions/us-central1", "default").uid
    instances.insert(Call(session, PROJECT, "test"), zone,
                     {**_body(name), "networkInterfaces": [{"subnetwork": f"regions/us-central1/subnetworks/{uid}"}]})
    nic_json = store.body_of(store.find(session, PROJECT, "instances", f"zones/{ZONE}", name))["networkInterfaces"][0]
    assert nic_json["subnetwork"].endswith(f"projects/{PROJECT}/{_SUBNET}")


def test_the_project_is_read_with_its_quota_counters_in_the_names_read(engine, session):
    name = f"quota-{uuid.uuid4().hex[:6]}"
    zone = topology.zone(session, PROJECT, ZONE)
    with statements_sent(engine) as sent:
        instances.insert(Call(session, PROJECT, "test"), zone, _body(name))
    project_reads = [q for q in sent if "FROM projects" in q]
    assert len(project_reads) == 1, project_reads
    assert "FROM resource_usage" in project_reads[0] and project_reads[0].count("UNION ALL") == 6, project_reads
    # PostgreSQL: the usual transaction checks its quotas again once its rows hold the project's
    # usage lock (core.quotas.recheck_region): after the rows' statement, the counters alone
    rechecks = [i for i, q in enumerate(sent) if "FROM resource_usage" in q and "FROM projects" not in q]
    written = next(i for i, q in enumerate(sent) if "INSERT INTO resources" in q)
    assert [i > written for i in rechecks] == ([True] if engine.dialect.name == "postgresql" else []), sent
    # PostgreSQL: the pool's lock goes with the address's take (no statement of its own)
    assert not [q for q in sent if q.startswith("SELECT pg_advisory_xact_lock")], sent


def test_a_project_named_by_its_number_is_read_apart(engine, session):
    """The joined read finds no project row by name: the names are read again alone (the insert
    then reads the project by its number), and the project found by name comes with its counters."""
    name = f"number-{uuid.uuid4().hex[:6]}"
    zone = topology.zone(session, PROJECT, ZONE)
    instances.insert(Call(session, PROJECT, "test"), zone, {**_body(name), "disks": _body(name)["disks"][:1]})
    number = session.scalars(select(Project.number).where(Project.name == PROJECT)).one()
    with statements_sent(engine) as sent:
        apart = reads.names_taken(Call(session, str(number), "test"), f"zones/{ZONE}", "us-central1", name, [name],
                                  None)
    assert apart.project is None and apart.counters is None and not apart.instance
    assert len(sent) == 2 and "FROM projects" in sent[0] and "FROM projects" not in sent[1], sent
    joined = reads.names_taken(Call(session, PROJECT, "test"), f"zones/{ZONE}", "us-central1", name, [name], None)
    assert joined.instance and joined.disks == {name: True}
    assert joined.project is not None and joined.project.name == PROJECT
    assert {(c.region, c.collection) for c in joined.counters or ()} >= {("us-central1", "instances")}


@pytest.mark.parametrize("room, refused", [(2, False), (1, True)])
def test_the_counters_read_with_the_project_decide_the_quota(engine, session, room, refused):
    """An e2-micro (2 vCPUs) fits with 2 CPUs of room left in the region, not with 1: the usage
    counted is the one the merged read brought (instances in the region, and in every region)."""
    zone = topology.zone(session, PROJECT, ZONE)
    used = quotas.region_usage(session, PROJECT, "us-central1", ["CPUS"])["CPUS"]
    project = session.scalars(select(Project).where(Project.name == PROJECT)).one()
    project.quota_limits = orjson.dumps({"regions": {"us-central1": {"CPUS": used + room}}}).decode()
    session.flush()
    name = f"fits-{uuid.uuid4().hex[:6]}"
    if not refused:
        instances.insert(Call(session, PROJECT, "test"), zone, _body(name))
        return
    with pytest.raises(QuotaExceeded) as info, session.begin_nested():
        instances.insert(Call(session, PROJECT, "test"), zone, _body(name))
    assert info.value.message == f"Quota 'CPUS' exceeded.  Limit: {used + room:.1f} in region us-central1."


@pytest.mark.parametrize("taken, clash", [
    ([("instances", "{name}")], "instances/{name}"),
    ([("instances", "{name}"), ("disks", "{name}")], "instances/{name}"),  # not its boot disk's
    ([("disks", "{name}-2")], "disks/{name}-2"),
])
def test_a_name_taken_since_the_checks_is_the_clash_reported(engine, session, monkeypatch, taken, clash):
    """A concurrent insert committed between the name check and the INSERT (the check saw nothing):
    the instance's clash first, else its disk's; the transaction stays usable for the rollback."""
    name = f"race-{uuid.uuid4().hex[:6]}"
    zone = topology.zone(session, PROJECT, ZONE)
    for collection, pattern in taken:
        store.new_resource(session, project=PROJECT, collection=collection, scope=f"zones/{ZONE}",
                           name=pattern.format(name=name), kind="compute#thing", body={})
    monkeypatch.setattr(reads, "names_taken", lambda call, zone, region, name, disk_names, nics, image, alone=False: reads.Taken(
        False, dict.fromkeys(disk_names, False), reads.RegionReads()))
    made: list[int] = []  # the insert's Operations when the clash is seen, before the rollback
    taken_as_it_was = lifecycle._taken

    def counted(call, res, clashed):
        made.append(session.scalar(select(func.count()).select_from(Operation)
                                   .where(Operation.target_link.endswith(f"/{name}"))))
        taken_as_it_was(call, res, clashed)

    monkeypatch.setattr(lifecycle, "_taken", counted)
    with pytest.raises(AlreadyExists) as refused, session.begin_nested():
        instances.insert(Call(session, PROJECT, "test"), zone, _body(name))
    assert made == [0]  # nothing of the Operation, on PostgreSQL too, where it shares the rows' statement
    assert refused.value.message == \
        f"The resource 'projects/{PROJECT}/zones/{ZONE}/{clash.format(name=name)}' already exists"
    assert _rows(session, name) == {(collection, pattern.format(name=name)) for collection, pattern in taken}
