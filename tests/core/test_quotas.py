"""core.quotas on a real database: the limits a project has, the usage the triggers of core.usage
count as instances and disks change, and the refusals (403 quotaExceeded, Google's message) that
leave everything as it was."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core import quotas, usage
from core.catalog import DEFAULT_GLOBAL_QUOTAS, DEFAULT_REGION_QUOTAS
from core.errors import ComputeError, QuotaExceeded
from core.models import IpAllocation, Operation, Project, Resource, ResourceUsage
from core.resources.context import Call
from core.services import disks, topology
from tests.helpers.core import add_resource

PROJECT = "demo-project"
REGION = "us-central1"


def project(session: Session, limits: dict | None = None) -> Project:
    p = session.scalars(select(Project).where(Project.name == PROJECT)).one()
    if limits is not None:
        p.quota_limits = orjson.dumps(limits).decode()
        session.flush()
    return p


def counters(session: Session) -> set[tuple]:
    """The project's usage rows, as the triggers keep them."""
    rows = session.execute(select(ResourceUsage.region, ResourceUsage.collection, ResourceUsage.subtype,
                                  ResourceUsage.count, ResourceUsage.cpus, ResourceUsage.size_gb)
                           .where(ResourceUsage.project == PROJECT))
    return {tuple(r) for r in rows if r[3]}  # a row whose last resource went stays at zero


def refusal(session: Session, region: str, demand: dict[str, float]) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as info:
        quotas.check_region(session, project(session), region, demand)
    return info.value


# -- limits ----------------------------------------------------------------------------------------


def test_limits_are_the_defaults_overlaid_with_the_project_overrides(session):
    assert quotas.limits(project(session), REGION) == DEFAULT_REGION_QUOTAS
    assert quotas.limits(project(session), None) == DEFAULT_GLOBAL_QUOTAS
    p = project(session, {"regions": {"*": {"CPUS": 10, "INSTANCES": 5}, "europe-west1": {"CPUS": 20}},
                          "global": {"NETWORKS": 3}})
    assert quotas.limits(p, REGION) == {**DEFAULT_REGION_QUOTAS, "CPUS": 10, "INSTANCES": 5}
    assert quotas.limits(p, "europe-west1") == {**DEFAULT_REGION_QUOTAS, "CPUS": 20, "INSTANCES": 5}
    assert quotas.limits(p, None) == {**DEFAULT_GLOBAL_QUOTAS, "NETWORKS": 3}


# -- usage, counted by the database ----------------------------------------------------------------


def test_instances_and_disks_are_counted_per_region_type_and_status(session):
    add_resource(session, "instances", subtype="e2-standard-4", vcpus=4)
    add_resource(session, "instances", subtype="e2-small", vcpus=2, status="TERMINATED")
    add_resource(session, "disks", subtype="pd-standard", size_gb=100, status="READY")
    add_resource(session, "disks", subtype="pd-ssd", size_gb=30, status="READY")
    add_resource(session, "disks", subtype="pd-balanced", size_gb=20, status="READY")
    add_resource(session, "instances", zone="europe-west1-b", subtype="e2-standard-8", vcpus=8)
    add_resource(session, "instances", project="other-project", subtype="e2-small", vcpus=2)
    assert quotas.region_usage(session, PROJECT, REGION) == {
        "CPUS": 4.0, "INSTANCES": 2.0, "DISKS_TOTAL_GB": 100.0, "SSD_TOTAL_GB": 50.0,
        "STATIC_ADDRESSES": 0.0, "IN_USE_ADDRESSES": 0.0, "INSTANCE_GROUPS": 0.0, "INSTANCE_GROUP_MANAGERS": 0.0,
        "REGIONAL_INSTANCE_GROUP_MANAGERS": 0.0, "INSTANCE_TEMPLATES": 0.0}
    assert quotas.region_usage(session, PROJECT, "europe-west1")["CPUS"] == 8.0
    assert quotas.all_regions_cpus(session, PROJECT) == 12.0
    assert quotas.global_usage(session, PROJECT)["CPUS_ALL_REGIONS"] == 12.0


def test_the_counters_follow_every_change_of_the_rows(session):
    """Updates and deletes made with plain SQL move the counts too: the triggers keep them."""
    vm = add_resource(session, "instances", subtype="e2-standard-4", vcpus=4)
    disk = add_resource(session, "disks", subtype="pd-standard", size_gb=10, status="READY")
    assert counters(session) == {(REGION, "instances", "e2-standard-4", 1, 4, 0),
                                 (REGION, "disks", "pd-standard", 1, 0, 10)}
    session.execute(update(Resource).where(Resource.uid == vm.uid).values(status="TERMINATED"))
    session.execute(update(Resource).where(Resource.uid == disk.uid).values(size_gb=25))
    assert counters(session) == {(REGION, "instances", "e2-standard-4", 1, 0, 0),
                                 (REGION, "disks", "pd-standard", 1, 0, 25)}
    session.execute(update(Resource).where(Resource.uid == vm.uid).values(status="RUNNING", vcpus=8,
                                                                           subtype="e2-standard-8"))
    session.execute(delete(Resource).where(Resource.uid == disk.uid))
    assert counters(session) == {(REGION, "instances", "e2-standard-8", 1, 8, 0)}
    assert quotas.region_usage(session, PROJECT, REGION)["CPUS"] == 8.0
    assert quotas.region_usage(session, PROJECT, REGION)["DISKS_TOTAL_GB"] == 0.0


def test_addresses_in_use_are_the_ephemeral_ones_held_and_the_static_ones_used(session):
    vm = add_resource(session, "instances", subtype="e2-small", vcpus=2)
    add_resource(session, "addresses", zone=REGION, region=REGION, subtype="EXTERNAL", status="RESERVED")
    add_resource(session, "addresses", zone=REGION, region=REGION, subtype="EXTERNAL", status="IN_USE")
    add_resource(session, "addresses", zone=REGION, region=REGION, subtype="INTERNAL", status="RESERVED")
    session.add(IpAllocation(pool=f"external:{REGION}", address=0x22000001, owner_uid=vm.uid, project=PROJECT))
    session.add(IpAllocation(pool="external:europe-west1", address=0x23000001, owner_uid=vm.uid, project=PROJECT))
    session.flush()
    usage = quotas.region_usage(session, PROJECT, REGION)
    assert (usage["STATIC_ADDRESSES"], usage["IN_USE_ADDRESSES"]) == (2.0, 2.0)
    # A check that asks for no address metric skips their queries: they read as zero.
    assert quotas.region_usage(session, PROJECT, REGION, ["CPUS"])["STATIC_ADDRESSES"] == 0.0


def test_the_ephemeral_addresses_are_counted_by_triggers(session):
    """An address that names a project counts in that project's region (its pool's); a delete, and a
    change of its project (a promotion to a static address clears it) move the count. One that names
    none (a static address's) counts nowhere, nor does an internal one."""

    def counted() -> dict[tuple[str, str], int]:
        return {(row.project, row.region): row.count for row in session.scalars(
            select(ResourceUsage).where(ResourceUsage.collection == usage.ADDRESSES))}

    held = [IpAllocation(pool=f"external:{REGION}", address=1, owner_uid=1, project=PROJECT),
            IpAllocation(pool=f"external:{REGION}", address=2, owner_uid=2, project=PROJECT),
            IpAllocation(pool="external:europe-west1", address=3, owner_uid=3, project="other-project"),
            IpAllocation(pool=f"external:{REGION}", address=4, owner_uid=4),
            IpAllocation(pool="subnet:1", address=5, owner_uid=5, project=PROJECT)]
    session.add_all(held)
    session.flush()
    assert counted() == {(PROJECT, REGION): 2, ("other-project", "europe-west1"): 1}
    held[1].project, held[2].project = None, PROJECT
    session.flush()
    assert counted() == {(PROJECT, REGION): 1, ("other-project", "europe-west1"): 0, (PROJECT, "europe-west1"): 1}
    session.delete(held[0])
    session.delete(held[2])
    session.flush()
    assert counted() == {(PROJECT, REGION): 0, ("other-project", "europe-west1"): 0, (PROJECT, "europe-west1"): 0}
    assert quotas.region_usage(session, PROJECT, REGION)["IN_USE_ADDRESSES"] == 0.0


def test_global_usage_counts_the_project_resources(session):
    """demo-project is seeded with its default VPC: a network, its two subnetworks (one per
    region), three routes (the default route and one per subnetwork) and four firewall rules."""
    assert quotas.global_usage(session, PROJECT) == {
        "SNAPSHOTS": 0.0, "NETWORKS": 1.0, "FIREWALLS": 4.0, "IMAGES": 0.0, "ROUTES": 3.0,
        "SUBNETWORKS": 2.0, "ROUTERS": 0.0, "CPUS_ALL_REGIONS": 0.0, "MACHINE_IMAGES": 0.0,
        "INSTANCE_TEMPLATES": 0.0}


def test_group_and_template_counts(session):
    """Zonal groups and managers count in their zone's region, regional managers and templates in
    their region; global templates only globally."""
    add_resource(session, "instanceGroups")
    add_resource(session, "instanceGroups", zone="us-central1-b")
    add_resource(session, "instanceGroupManagers")
    add_resource(session, "instanceGroups", zone="europe-west1-b")
    for collection in ("instanceGroupManagers", "instanceTemplates"):
        row = add_resource(session, collection)
        row.scope = f"regions/{REGION}"
    add_resource(session, "instanceTemplates").scope = "global"
    session.flush()
    usage = quotas.region_usage(session, PROJECT, REGION)
    assert {m: usage[m] for m in quotas.REGION_COUNTS} == {
        "INSTANCE_GROUPS": 2.0, "INSTANCE_GROUP_MANAGERS": 1.0, "REGIONAL_INSTANCE_GROUP_MANAGERS": 1.0,
        "INSTANCE_TEMPLATES": 1.0}
    assert quotas.global_usage(session, PROJECT)["INSTANCE_TEMPLATES"] == 1.0


# -- checks and refusals ---------------------------------------------------------------------------


def test_a_demand_up_to_the_limit_passes_and_one_more_is_refused(session):
    add_resource(session, "instances", subtype="e2-standard-8", vcpus=90)
    quotas.check_region(session, project(session), REGION, {"CPUS": 6, "INSTANCES": 1})
    err = refusal(session, REGION, {"CPUS": 7, "INSTANCES": 1})
    assert isinstance(err, ComputeError)
    assert (err.status, err.reason, err.op_code, err.metric) == (403, "quotaExceeded", "QUOTA_EXCEEDED", "CPUS")
    assert err.message == str(err) == "Quota 'CPUS' exceeded.  Limit: 96.0 in region us-central1."


def test_each_region_is_checked_against_its_own_limit_and_usage(session):
    project(session, {"regions": {"*": {"SSD_TOTAL_GB": 100}, "europe-west1": {"SSD_TOTAL_GB": 500}}})
    add_resource(session, "disks", subtype="pd-ssd", size_gb=80, status="READY")
    add_resource(session, "disks", zone="europe-west1-b", subtype="pd-ssd", size_gb=80, status="READY")
    assert refusal(session, REGION, {"SSD_TOTAL_GB": 21}).message == (
        "Quota 'SSD_TOTAL_GB' exceeded.  Limit: 100.0 in region us-central1.")
    quotas.check_region(session, project(session), REGION, {"SSD_TOTAL_GB": 20})
    quotas.check_region(session, project(session), "europe-west1", {"SSD_TOTAL_GB": 420})
    assert refusal(session, "europe-west1", {"SSD_TOTAL_GB": 421}).metric == "SSD_TOTAL_GB"


def test_cpus_are_also_checked_across_all_regions(session):
    project(session, {"global": {"CPUS_ALL_REGIONS": 130}})
    add_resource(session, "instances", subtype="e2-standard-8", vcpus=60)
    add_resource(session, "instances", zone="europe-west1-b", subtype="e2-standard-8", vcpus=60)
    quotas.check_region(session, project(session), REGION, {"CPUS": 10})
    err = refusal(session, REGION, {"CPUS": 11})
    assert err.metric == "CPUS_ALL_REGIONS"
    assert err.message == "Quota 'CPUS_ALL_REGIONS' exceeded.  Limit: 130.0 globally."


def test_nothing_asked_is_never_refused(session):
    project(session, {"regions": {"*": {"CPUS": 0, "INSTANCES": 0}}})
    quotas.check_region(session, project(session), REGION, {"CPUS": 0, "INSTANCES": 0})
    assert refusal(session, REGION, {"CPUS": 0, "INSTANCES": 1}).metric == "INSTANCES"


def test_global_quotas_count_the_project_resources(session):
    project(session, {"global": {"NETWORKS": 2, "FIREWALLS": 4}})
    quotas.check_global(session, project(session), "NETWORKS")
    with pytest.raises(QuotaExceeded) as info:
        quotas.check_global(session, project(session), "NETWORKS", 2)
    assert info.value.message == "Quota 'NETWORKS' exceeded.  Limit: 2.0 globally."
    with pytest.raises(QuotaExceeded) as info:
        quotas.check_global(session, project(session), "FIREWALLS")
    assert (info.value.metric, info.value.status) == ("FIREWALLS", 403)


def test_a_refused_check_changes_nothing(session):
    add_resource(session, "instances", subtype="e2-standard-8", vcpus=96)
    before = counters(session)
    refusal(session, REGION, {"CPUS": 1})
    assert not (session.new or session.dirty or session.deleted)
    assert counters(session) == before


def test_a_refused_disk_insert_creates_nothing(session):
    """disks.insert checks the quota before it writes: a refusal leaves no disk and no usage."""
    add_resource(session, "disks", subtype="pd-standard", size_gb=20000, status="READY")
    before = counters(session)
    operations = session.scalar(select(func.count()).select_from(Operation))
    call = Call(session, PROJECT)
    with pytest.raises(QuotaExceeded) as info:
        disks.insert(call, topology.zone(session, PROJECT, "us-central1-a"), {"name": "too-big", "sizeGb": "481"})
    assert info.value.message == "Quota 'DISKS_TOTAL_GB' exceeded.  Limit: 20480.0 in region us-central1."
    assert session.scalar(select(Resource).where(Resource.name == "too-big")) is None
    assert counters(session) == before
    assert session.scalar(select(func.count()).select_from(Operation)) == operations
