"""disks.update and regionDisks.update: the fields an update mask names, as ``gcloud compute disks
update`` sends them (``paths``, or ``updateMask`` comma-separated).

A field in the mask takes the body's value; one in the mask but not in the body is cleared (GCE's
field-mask rule, how ``--clear-architecture`` works). gstack's disks change at once, so the
Operation is born DONE. What gstack updates: ``sizeGb`` (grow only, as disks.resize),
``architecture``, ``guestOsFeatures`` and ``licenses`` (stored and reported).
``provisionedIops``, ``provisionedThroughput`` and ``accessMode`` belong to the Extreme and
Hyperdisk types gstack does not offer, so they are refused naming the disk's type; any other field
cannot be updated, as GCE answers.
"""

from __future__ import annotations

import re

from core.errors import Invalid, Required
from core.links import CANONICAL_BASE, parse_ref, path_of
from core.models import Operation
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import disks, projects
from core.services.storage_states import DISKS, UPDATE

ARCHITECTURES = ("X86_64", "ARM64")
UPDATABLE = ("sizeGb", "architecture", "guestOsFeatures", "licenses")
HYPERDISK_ONLY = ("provisionedIops", "provisionedThroughput", "accessMode")
_FEATURE = re.compile(r"[A-Z][A-Z0-9_]{0,62}\Z")


def mask(paths: list[str], update_mask: str | None) -> list[str]:
    """The fields to update: the ``paths`` parameters and the ``updateMask`` list, in order, once."""
    out: list[str] = []
    for p in [*paths, *(update_mask.split(",") if update_mask else [])]:
        p = p.strip()
        if p and p not in out:
            out.append(p)
    return out


def update(call: Call, scope: str, region: str, name: str, body: Body, fields: list[str]) -> Operation:
    if not fields:
        raise Required("paths")
    if body.get("name") not in (None, name):
        raise Invalid("resource.name", body["name"], "The name of a disk cannot be changed.")
    project = projects.get(call.session, call.project, lock=True)
    res = projects.find_for_update(call.session, call.project, "disks", scope, name)
    DISKS.move(path_of(call.project, res.scope, "disks", res.name), res.status, UPDATE)
    for field in fields:
        if field in HYPERDISK_ONLY:
            raise Invalid(field, body.get(field, ""), f"{field} can only be set on Extreme and Hyperdisk disks; "
                                                      f"disk '{name}' is of type {res.subtype}.")
        if field not in UPDATABLE:
            raise Invalid("paths", field, f"Field '{field}' cannot be updated: disks.update changes "
                                          f"{', '.join(UPDATABLE)}.")
    if "sizeGb" in fields:
        disks.grow_to(call, project, res, region, body.get("sizeGb"), "resource.sizeGb")
    stored = store.body_of(res)
    for field in (f for f in fields if f != "sizeGb"):
        value = _value(field, body.get(field))
        stored.pop(field, None)
        if value is not None:
            stored[field] = value
    store.save(res, stored)
    return operations.begin(call, scope=res.scope, op_type="update", target_path=path_of(call.project, res.scope,
                                                                                         "disks", res.name),
                            target_id=res.uid)


def _value(field: str, value: object) -> object:
    """The stored form of one updated field (None: cleared)."""
    if value is None or value == [] or value == "":
        return None
    if field == "architecture":
        if value not in ARCHITECTURES:
            raise Invalid(f"resource.{field}", value, f"Must be one of {', '.join(ARCHITECTURES)}.")
        return value
    if not isinstance(value, list):
        raise Invalid(f"resource.{field}", value, "Must be a list.")
    if field == "guestOsFeatures":
        out = []
        for i, item in enumerate(value):
            kind = item.get("type") if isinstance(item, dict) else None
            if not isinstance(kind, str) or not _FEATURE.match(kind):
                raise Invalid(f"resource.guestOsFeatures[{i}].type", kind, "Must be a guest OS feature type.")
            if {"type": kind} not in out:
                out.append({"type": kind})
        return out
    licenses = []
    for i, item in enumerate(value):
        ref = parse_ref(item, project="") if isinstance(item, str) else None
        if ref is None or ref.collection != "licenses" or ref.scope != "global":
            raise Invalid(f"resource.{field}[{i}]", item, "Must be the URL of a license "
                                                          "(projects/P/global/licenses/L).")
        url = f"{CANONICAL_BASE}projects/{ref.project}/global/licenses/{ref.name}"
        if url not in licenses:
            licenses.append(url)
    return licenses
