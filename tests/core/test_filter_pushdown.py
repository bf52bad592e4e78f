"""Filters pushed down to the database list exactly what the filter alone lists.

A list narrowed by the terms index (core.resources.narrowing, from gstack.gce.narrowing) must hold
every resource the filter matches, in the same order, across pages; the filter itself removes what
the narrowing lets through. Hypothesis draws the resources and the filters (both dialects, regexes
with and without a literal start, case, ``ne``, OR, NOT, labels, NIC addresses, aggregated lists over
zones; gcloud's word regexes over names with dashes, digits and characters GCE names never hold,
which the ``nameword`` terms answer), and each draw is compared with the pure-Python predicate over the same rows, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core import terms
from core.db import write_session
from core.links import scope_url
from core.resources.narrowing import filtered_rows, operation_condition
from core.resources.store import new_resource
from gstack.gce.filters import compile_filter
from gstack.gce.listing import ListParams, decode_token, paginate
from gstack.gce.narrowing import narrowing_of

PROJECT = "pushdown-project"
SCOPES = ["zones/pd-a", "zones/pd-b"]
ZONE_URL = {s: scope_url(PROJECT, s) for s in SCOPES}

# Names with dashes, digits and underscores (cut into words by the nameword terms), and a few with
# characters GCE names never hold ("." and "é": the terms' irregular names, which a word narrowing
# must still hand over).
names = st.text("ab1-", min_size=0, max_size=4).map(lambda s: "v" + s) | st.sampled_from(
    ["v_a", "v-a_1", "v.a", "va.b-1", "vé-a", "v--a", "v-", "va-va"])
statuses = st.sampled_from(["RUNNING", "STOPPED", "TERMINATED", "running"])
label_values = st.sampled_from(["prod", "dev", "1", "01", "x.y", "", "Prod"])
ips = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.10"])
resource = st.fixed_dictionaries({
    "name": names,
    "scope": st.sampled_from(SCOPES),
    "status": statuses,
    "labels": st.dictionaries(st.sampled_from(["env", "tier", "a-b"]), label_values, max_size=3),
    "networkInterfaces": st.lists(st.fixed_dictionaries({}, optional={"networkIP": ips}), max_size=2),
})

# Atoms of the AIP dialect and of gcloud's regex dialect; trees of the first, runs of the second.
aip_atom = st.one_of(
    st.builds("name = {}".format, st.sampled_from(["v", "va", "vab", "va*", "v*1", "V*", "v\\*", "*", "*a*", "*A"])),
    st.builds("status {} {}".format, st.sampled_from(["=", "!=", ":"]), statuses),
    st.builds("labels.{} {} {}".format, st.sampled_from(["env", "tier", "a-b"]), st.sampled_from(["=", "!=", ":"]),
              st.sampled_from(["prod", "dev", "1", "01", "pr*", "*", '""', "Prod"])),
    st.builds("networkInterfaces.networkIP = {}".format, st.sampled_from(["10.0.0.1", "10.0.0.1*", "10.0.0.10"])),
    st.builds("zone = {}".format, st.sampled_from([*ZONE_URL.values(), "*pd-a", "pd-a"])),
)
aip = st.recursive(aip_atom, lambda inner: st.one_of(
    st.builds("({}) OR ({})".format, inner, inner),
    st.builds("{} AND {}".format, inner, inner),
    st.builds("NOT ({})".format, inner),
), max_leaves=4)
regexes = {
    "name": ["va", "va.*", "v[ab].*", ".*\\bva\\b.*", "(?i)VA.*", "va|vb", "v", "va1?", "v.*1$",
             # gcloud's word regexes (--filter=name:WORD), and other regexes with delimited words
             ".*\\ba\\b.*", ".*\\b1\\b.*", ".*\\bv\\-a\\b.*", ".*\\ba\\-1\\b.*", ".*\\bv\\b.*", ".*\\ba_1\\b.*",
             ".*\\bb\\-1\\b.*", ".*\\bva\\.b\\b.*", ".*\\bé\\b.*", ".*\\b\\-\\b.*", "v-a-.*", ".*-a", "v\\b.*",
             ".*\\b(?i:A)\\b.*", "^v-a$"],
    "status": ["RUNNING", "run.*", "(?i)running", "RUN.*|STOP.*", "R?UNNING"],
    "labels.env": ["prod", "1", "pr.*", "(?i)PROD", ".*"],
    "networkInterfaces.networkIP": ["10\\.0\\.0\\.1", "10.0.0.1", "10\\.0\\.0\\.1.*"],
    "zone": [".*\\bpd\\-a\\b.*", ".*pd-b", "https://.*"],
}
legacy_atom = st.sampled_from(sorted(regexes)).flatmap(
    lambda f: st.builds(lambda op, rx: f'({f} {op} "{rx}")', st.sampled_from(["eq", "eq", "ne"]),
                        st.sampled_from(regexes[f])))
legacy = st.lists(legacy_atom, min_size=1, max_size=3).map(" ".join)


def _store(session: Session, rows: list[dict[str, Any]]) -> None:
    seen = set()
    for row in rows:
        if (row["scope"], row["name"]) in seen:
            continue
        seen.add((row["scope"], row["name"]))
        body = {k: v for k, v in row.items() if k not in ("name", "scope", "status") and v}
        body["zone"] = ZONE_URL[row["scope"]]
        new_resource(session, project=PROJECT, collection="instances", scope=row["scope"], name=row["name"],
                     kind="compute#instance", body=body, status=row["status"])


def _listed(session: Session, scopes: list[str], expr: str, order: str, pushed: bool) -> list[list]:
    """Every key of every page of the list, pages of three."""
    predicate = compile_filter(expr, "Instance")
    narrowing = narrowing_of(expr, "Instance") if pushed else None
    keys: list[list] = []
    params = ListParams(3, None, order, predicate)
    while True:
        page, token = paginate(lambda after, limit: filtered_rows(
            session, PROJECT, "instances", scopes, order, after, limit, narrowing), params)
        keys += [k for k, _ in page]
        if token is None:
            return keys
        params = ListParams(3, decode_token(token, order), order, predicate, token)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(resource, min_size=4, max_size=14), expr=st.one_of(aip, legacy), order=st.sampled_from(["name", "created"]),
       aggregated=st.booleans())
def test_pushed_down_list_equals_the_filter_alone(engine: Engine, rows, expr, order, aggregated):
    scopes = SCOPES if aggregated else SCOPES[:1]
    with Session(engine) as session:
        try:
            _store(session, rows)
            assert _listed(session, scopes, expr, order, True) == _listed(session, scopes, expr, order, False)
        finally:
            session.rollback()


# gcloud's --filter=name:WORD is name eq ".*\bWORD\b.*" with WORD escaped (re.escape): random
# names and words of letters, digits, dashes, underscores and a dot (no GCE name holds one).
word_names = st.text("ab1-_.", min_size=1, max_size=6)
word_filters = st.text("ab1-_.", min_size=1, max_size=3).flatmap(lambda w: st.sampled_from([
    f'name eq ".*\\b{re.escape(w)}\\b.*"', f'name eq "{re.escape(w)}\\b.*"', f'name eq ".*\\b{re.escape(w)}"',
    f'name eq ".*-{re.escape(w)}-.*"', f'(name eq ".*\\b{re.escape(w)}\\b.*") (name eq ".*\\ba\\b.*")']))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(word_names, min_size=3, max_size=14), expr=word_filters,
       order=st.sampled_from(["name", "created"]))
def test_word_regexes_list_what_the_filter_alone_lists(engine: Engine, names, expr, order):
    rows = [{"name": n, "scope": SCOPES[0], "status": "RUNNING", "labels": {}, "networkInterfaces": []}
            for n in names]
    with Session(engine) as session:
        try:
            _store(session, rows)
            assert _listed(session, SCOPES[:1], expr, order, True) == _listed(session, SCOPES[:1], expr, order, False)
        finally:
            session.rollback()


def test_the_indexable_filters_are_narrowed():
    """The filters the docs call indexed do narrow (else the test above would prove little)."""
    for expr in ['name = "v1"', "name = v*", 'name eq "v1.*"', "status = RUNNING", '(status eq "RUNNING")',
                 "labels.env = prod", "networkInterfaces.networkIP = 10.0.0.1", 'zone eq ".*\\bpd\\-a\\b.*"',
                 "(status = RUNNING) OR (status = STOPPED)", 'status = RUNNING AND labels.env = "1"',
                 'name eq ".*\\bv1\\b.*"', "name = *a*", "status != TERMINATED", '(status ne "TERMINATED")']:
        assert narrowing_of(expr, "Instance") is not None, expr
    for expr in ['name eq ".*\\bweb\\b.*"', 'name eq ".*\\binst\\-000500\\b.*"', 'name eq ".*-web-1"']:
        narrowing = narrowing_of(expr, "Instance")  # one word of the name, not a scan of every name
        assert narrowing is not None and narrowing.field == terms.NAME_WORD, expr
    for expr in ["NOT status = RUNNING", 'name eq "[ab].*"', "zone != x", "name = v OR status = X"]:
        assert narrowing_of(expr, "Instance") is None, expr
    for expr in ["status != RUNNING", '(status ne "RUNNING")']:  # a disk's status is not known to be there
        assert narrowing_of(expr, "Disk") is None, expr


def test_a_negated_status_of_operations_narrows_to_the_other_statuses():
    """An Operation always has a status (a column, never empty), so a negation on it says which
    statuses can match."""
    for expr, statuses in [("status != DONE", ["PENDING", "RUNNING"]), ("status ne DONE", ["PENDING", "RUNNING"]),
                           ('status ne "R.*"', ["DONE", "PENDING"]), ("status != R*", ["DONE", "PENDING"]),
                           ("(status ne DONE) (name eq operation-1.*)", None)]:
        narrowed = operation_condition(narrowing_of(expr, "Operation"))
        assert narrowed is not None, expr
        if statuses is not None:
            assert sorted(narrowed.where.right.value) == statuses, expr  # status IN (...)
            assert narrowed.unfinished == (statuses == ["PENDING", "RUNNING"]), expr


def test_rows_older_than_the_terms_get_them_when_the_triggers_are_installed(engine: Engine):
    """Rows written before the triggers existed get their terms when they are installed (what
    migration 0002 does to a database made by an earlier release: tests/core/test_migrations.py)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for trigger in ("resource_terms_insert", "resource_terms_update", "resource_terms_status",
                            "resource_terms_delete"):
                conn.exec_driver_sql(f"DROP TRIGGER {trigger}")
        else:
            conn.exec_driver_sql("DROP TRIGGER resource_terms ON resources")
    with write_session(sessionmaker(engine)) as session:
        _store(session, [{"name": "old", "scope": SCOPES[0], "status": "RUNNING", "labels": {"env": "prod"},
                          "networkInterfaces": [{"networkIP": "10.0.0.9"}]}])
    expr = "networkInterfaces.networkIP = 10.0.0.9"
    narrowing = narrowing_of(expr, "Instance")
    with Session(engine) as session:
        assert filtered_rows(session, PROJECT, "instances", SCOPES[:1], "name", None, 10, narrowing) == []
    terms.install(engine)
    try:
        with Session(engine) as session:
            assert [k for k, _ in filtered_rows(session, PROJECT, "instances", SCOPES[:1], "name", None, 10,
                                                narrowing)] == [["old"]]
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM resources WHERE project = '{PROJECT}'")
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT count(*) FROM resource_terms WHERE project = '{PROJECT}'").scalar() == 0
