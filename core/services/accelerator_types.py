"""acceleratorTypes: the GPU types a zone offers, those its hosts declare (host option ``gpus``:
``{"TYPE": cards}``), described by the catalog (:mod:`core.catalog.accelerators`)."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.catalog import ACCELERATOR_TYPES, AcceleratorType, stable_id
from core.errors import Invalid, NotFound
from core.links import CANONICAL_BASE, scope_url
from core.models import Host
from core.resources.store import Body
from core.services.topology import EPOCH, ZoneInfo


class UnknownAccelerator(ValueError):
    """A host declares cards of a type the catalog does not know."""


def declared(options: str | None) -> dict[str, int]:
    """The cards a host's options declare, by type; UnknownAccelerator for a type GCE does not have."""
    gpus = (json.loads(options) if options else {}).get("gpus") or {}
    if not isinstance(gpus, dict):
        raise UnknownAccelerator("the host option gpus must map GPU types to card counts")
    for name, cards in gpus.items():
        if name not in ACCELERATOR_TYPES:
            raise UnknownAccelerator(f"unknown GPU type {name} (known: {', '.join(sorted(ACCELERATOR_TYPES))})")
        if not isinstance(cards, int) or cards < 1:
            raise UnknownAccelerator(f"the card count of {name} must be a positive integer")
    return gpus


def offered(session: Session, zone: ZoneInfo) -> list[AcceleratorType]:
    """The types some host of the zone declares, by name."""
    names: set[str] = set()
    for options in session.scalars(select(Host.options).where(Host.zone_id == zone.id, Host.options.is_not(None))):
        names.update(declared(options))
    return [ACCELERATOR_TYPES[n] for n in sorted(names)]


def to_json(project: str, zone: ZoneInfo, at: AcceleratorType) -> Body:
    return {"kind": "compute#acceleratorType", "id": str(stable_id("acceleratorTypes", at.name)),
            "creationTimestamp": EPOCH, "name": at.name, "description": at.description,
            "zone": scope_url(project, f"zones/{zone.name}"),
            "selfLink": f"{CANONICAL_BASE}projects/{project}/zones/{zone.name}/acceleratorTypes/{at.name}",
            "maximumCardsPerInstance": at.maximum_cards_per_instance}


def list_in(session: Session, project: str, zone: ZoneInfo) -> list[Body]:
    return [to_json(project, zone, at) for at in offered(session, zone)]


def get(session: Session, project: str, zone: ZoneInfo, name: str) -> Body:
    found = next((at for at in offered(session, zone) if at.name == name), None)
    if found is None:
        raise NotFound(f"projects/{project}/zones/{zone.name}/acceleratorTypes/{name}")
    return to_json(project, zone, found)


def refuse_attached(session: Session, project: str, zone: ZoneInfo, value: object, field: str) -> None:
    """``guestAccelerators`` asked of an instance: a type the zone does not offer is not found, as on
    GCE; an offered one is refused, since no driver passes GPUs through yet (a VM must never run
    without the cards it asked for)."""
    if value in (None, []):
        return
    if not isinstance(value, list):
        raise Invalid(field, value, "Must be a list.")
    offered_names = {at.name for at in offered(session, zone)}
    for i, acc in enumerate(value):
        kind = acc.get("acceleratorType") if isinstance(acc, dict) else None
        if not isinstance(kind, str) or not kind:
            raise Invalid(f"{field}[{i}].acceleratorType", kind, "An accelerator type is required.")
        name = kind.rsplit("/", 1)[-1]
        if name not in offered_names:
            raise NotFound(f"projects/{project}/zones/{zone.name}/acceleratorTypes/{name}")
        raise Invalid(f"{field}[{i}].acceleratorType", kind, "Attaching GPUs to instances is not supported yet.")
