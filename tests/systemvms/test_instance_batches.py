"""A burst of inserts runs as batches (one transaction per step for many VMs) with the outcome each
VM would have had alone: a VM whose spawn fails in the batch starts on another host."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from core.db import write_session
from core.models import Host, Operation, Resource, Zone

pytestmark = pytest.mark.xdist_group("systemvms-batches")


def test_a_burst_runs_together_and_a_failed_spawn_moves_on(cloud):
    with write_session(cloud.factory) as s:
        zone_id = s.scalar(select(Zone.id).where(Zone.name == "us-central1-a"))
        first = s.scalar(select(Host).where(Host.zone_id == zone_id, Host.status == "Up").order_by(Host.id).limit(1))
        first.fail_next_spawns = 1
        first_id = first.id
    names = [f"burst-{i}" for i in range(6)]
    for name in names:
        cloud.instance(name, run=False)
    cloud.run_jobs()

    with cloud.factory() as s:
        rows = {r.name: r for r in s.scalars(select(Resource).where(
            Resource.project == cloud.project, Resource.collection == "instances"))}
        ops = list(s.scalars(select(Operation).where(Operation.project == cloud.project,
                                                     Operation.operation_type == "insert")))
        left = s.scalar(select(Host.fail_next_spawns).where(Host.id == first_id))
    assert sorted(rows) == names and {r.status for r in rows.values()} == {"RUNNING"}
    assert len(ops) == 6 and all(op.status == "DONE" and op.error is None for op in ops)
    # the injected failure was spent on one VM, which then started on another host
    assert left == 0
    moved = [r for r in rows.values() if r.host_id != first_id]
    assert len(moved) == 1 and moved[0].last_host_id == moved[0].host_id
    # the others ended in one transaction: their Operations share one end time
    batch_ends = [op.end_time for op in ops if op.target_id != moved[0].uid]
    assert len(set(batch_ends)) == 1
    for name in names:
        cloud.delete_instance(name)
    with write_session(cloud.factory) as s:
        s.execute(update(Host).where(Host.id == first_id).values(fail_next_spawns=0))
