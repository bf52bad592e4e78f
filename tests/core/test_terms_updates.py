"""The filter terms of a resource stay exact when its row is updated (core.terms): whatever an
UPDATE changes (its status alone, as most jobs do, which PostgreSQL's trigger answers by moving the
status term alone; its labels, its NICs' addresses, the policies it follows, its name or its scope), the row's terms are
those a new row with the same name, scope and body gets. Hypothesis draws the row before and after,
on SQLite and PostgreSQL; the oracle is the INSERT's terms, which tests/core/test_filter_pushdown.py
checks against the filters themselves."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import write_session
from core.models import Resource, ResourceTerm
from core.resources import store

PROJECT, ORACLE = "terms-project", "terms-oracle"
SCOPES = ["zones/tu-a", "zones/tu-b"]

statuses = st.sampled_from(["PROVISIONING", "STAGING", "RUNNING", "TERMINATED", None, 7])
labels = st.dictionaries(st.sampled_from(["env", "tier", "a-b"]), st.sampled_from(["prod", "dev", "", 3]), max_size=3)
nics = st.lists(st.fixed_dictionaries({}, optional={"networkIP": st.sampled_from(["10.0.0.1", "10.0.0.2", 5])}),
                max_size=2)
# The policies a disk or instance follows: each string link is a term (a number is none).
policies = st.lists(st.sampled_from([f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/regions/tu/resourcePolicies/{p}"
                                     for p in ("daily", "weekly")] + [9]), max_size=2, unique=True)
state = st.fixed_dictionaries({
    "name": st.sampled_from(["vm", "vm-1", "web-vm-2", "v.x"]),
    "scope": st.sampled_from(SCOPES),
    "status": statuses,
    "labels": labels,
    "networkInterfaces": nics,
    "resourcePolicies": policies,
    "sourceSnapshotSchedulePolicyId": st.sampled_from(["77", "78", None, 5]),  # a scheduled snapshot's
    "description": st.sampled_from(["", "a", "b"]),  # no term: an UPDATE of it alone changes none
})
# An update that changes the status alone half the time: the trigger's short way on PostgreSQL.
change = st.one_of(st.builds(lambda s: {"status": s}, statuses), state)


def _body(draw: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in draw.items() if k not in ("name", "scope") and v is not None}
    body.update(name=draw["name"], zone=f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/{draw['scope']}")
    return body


def _terms(session: Session, pk: int) -> list[tuple[str, str, str, str]]:
    rows = session.execute(select(ResourceTerm.field, ResourceTerm.value, ResourceTerm.scope, ResourceTerm.name)
                           .where(ResourceTerm.resource_pk == pk))
    return sorted((f, v.replace(ORACLE, PROJECT), s, n) for f, v, s, n in rows)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=state, changes=st.lists(change, min_size=1, max_size=3))
def test_an_updated_rows_terms_are_a_new_rows(engine: Engine, before: dict[str, Any], changes: list[dict[str, Any]]):
    factory = sessionmaker(engine)
    try:
        with write_session(factory) as session:
            res = store.new_resource(session, project=PROJECT, collection="instances", scope=before["scope"],
                                     name=before["name"], kind="compute#instance", body=_body(before))
            pk, now = res.pk, dict(before)
        for update in changes:
            now = {**now, **update}
            with write_session(factory) as session:
                row = session.get(Resource, pk)
                assert row is not None
                row.name, row.scope, row.status = now["name"], now["scope"], str(now["status"] or "")
                store.save(row, {**store.body_of(row), **_body(now)} if set(update) == {"status"} else
                           {"kind": "compute#instance", "id": str(row.uid), **_body(now)})
                if now["status"] is None:  # the status field gone from the body, not only changed
                    body = store.body_of(row)
                    body.pop("status", None)
                    store.save(row, body)
        with write_session(factory) as session:
            oracle = store.new_resource(session, project=ORACLE, collection="instances", scope=now["scope"],
                                        name=now["name"], kind="compute#instance",
                                        body={**store.body_of(session.get(Resource, pk)),
                                              "zone": _body(now)["zone"].replace(PROJECT, ORACLE)})
            oracle_pk = oracle.pk
        with Session(engine) as session:
            assert _terms(session, pk) == _terms(session, oracle_pk), (before, changes)
    finally:
        with write_session(factory) as session:
            session.execute(delete(Resource).where(Resource.project.in_([PROJECT, ORACLE])))




_MARK = ("marker", "kept")  # a term no body has: only a trigger that derives them all again drops it


def _terms_with_mark(session: Session, pk: int) -> set[tuple[str, str]]:
    return {(f, v) for f, v in session.execute(select(ResourceTerm.field, ResourceTerm.value)
                                                 .where(ResourceTerm.resource_pk == pk))}


def test_a_status_change_moves_the_status_term_alone(engine: Engine):
    """The short way of both databases' triggers: a job's status change (its body's other fields
    may change too, as a job's do, but none with terms) moves the status term and leaves every
    other one (the marker too, which the long way would drop); a change of a label derives them
    all again."""
    factory = sessionmaker(engine)
    body = {"name": "web-1", "status": "PROVISIONING", "labels": {"env": "prod"}, "zone": f"{PROJECT}-zone",
            "networkInterfaces": [{"networkIP": "10.0.0.9"}]}
    try:
        with write_session(factory) as session:
            pk = store.new_resource(session, project=PROJECT, collection="instances", scope=SCOPES[0], name="web-1",
                                    kind="compute#instance", body=body).pk
            session.add(ResourceTerm(resource_pk=pk, field=_MARK[0], value=_MARK[1], project=PROJECT,
                                     collection="instances", scope=SCOPES[0], name="web-1"))
        with Session(engine) as session:
            before = _terms_with_mark(session, pk)
        with write_session(factory) as session:
            row = session.get(Resource, pk)
            assert row is not None
            store.save(row, {**store.body_of(row), "status": "RUNNING", "cpuPlatform": "Intel Broadwell"})
        with Session(engine) as session:
            assert _terms_with_mark(session, pk) == before - {("status", "PROVISIONING")} | {("status", "RUNNING")}
        with write_session(factory) as session:
            row = session.get(Resource, pk)
            assert row is not None
            store.save(row, {**store.body_of(row), "labels": {"env": "dev"}})
        with Session(engine) as session:
            relabelled = _terms_with_mark(session, pk)
        assert ("labels.env", "dev") in relabelled and ("labels.env", "prod") not in relabelled
        assert _MARK not in relabelled and ("name", "web-1") in relabelled  # the long way: derived again
    finally:
        with write_session(factory) as session:
            session.execute(delete(Resource).where(Resource.project == PROJECT))
