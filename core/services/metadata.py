"""Metadata, labels and tags: validation and fingerprints shared by every resource that has them."""

from __future__ import annotations

import re

from core.errors import ConditionNotMet, Invalid
from core.ids import fingerprint, fingerprint_matches
from core.resources.store import Body

_KEY = re.compile(r"[a-zA-Z0-9_-]{1,128}\Z")
_LABEL_KEY = re.compile(r"^[\w-]{1,63}\Z")
_LABEL_VALUE = re.compile(r"^[\w-]{0,63}\Z")
_TAG = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?\Z")
MAX_VALUE = 256 * 1024
MAX_TOTAL = 512 * 1024

METADATA_MISMATCH = "Supplied fingerprint does not match current metadata fingerprint."
INVALID_FINGERPRINT = "Invalid fingerprint."


def validate_items(items: object, field: str = "resource.items") -> list[Body]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise Invalid(field, items, "Must be a list.")
    seen: set[str] = set()
    total = 0
    out = []
    for i, item in enumerate(items):
        key = item.get("key") if isinstance(item, dict) else None
        value = item.get("value", "") if isinstance(item, dict) else None
        if not isinstance(key, str) or not _KEY.match(key):
            raise Invalid(f"{field}[{i}].key", key, "Must be a match of regex '[a-zA-Z0-9-_]{1,128}'")
        if key in seen:
            raise Invalid(f"{field}[{i}].key", key, "Duplicate keys are not allowed.")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise Invalid(f"{field}[{i}].value", value, "Must be a string.")
        if len(value.encode()) > MAX_VALUE:
            raise Invalid(f"{field}[{i}].value", key, "Metadata values must be at most 256 KB.")
        seen.add(key)
        total += len(key) + len(value.encode())
        out.append({"key": key, "value": value})
    if total > MAX_TOTAL:
        raise Invalid(field, "<metadata>", "Metadata must be smaller than 512 KB in total.")
    return out


def metadata_block(items: list[Body]) -> Body:
    block: Body = {"kind": "compute#metadata", "fingerprint": fingerprint(["metadata", items])}
    if items:
        block["items"] = items
    return block


def check_fingerprint(given: object, current: str, message: str = INVALID_FINGERPRINT,
                      allow_missing: bool = False) -> None:
    """412 conditionNotMet unless ``given`` is the current fingerprint (any base64 alphabet).

    ``allow_missing``: a caller setting the first content may omit the fingerprint.
    """
    if given is None and allow_missing:
        return
    if not isinstance(given, str) or not fingerprint_matches(given, current):
        raise ConditionNotMet(message)


def validate_labels(labels: object, field: str = "resource.labels") -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise Invalid(field, labels, "Must be a map.")
    if len(labels) > 64:
        raise Invalid(field, "<labels>", "At most 64 labels are allowed.")
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key) or not key[0].islower() or key != key.lower():
            raise Invalid(f"{field}.key", key, "Label keys must start with a lowercase letter and contain "
                          "only lowercase letters, digits, underscores and dashes (at most 63 characters).")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value) or value != value.lower():
            raise Invalid(f"{field}.value", value, "Label values may contain only lowercase letters, digits, "
                          "underscores and dashes (at most 63 characters).")
    return dict(labels)


def label_fingerprint(labels: dict[str, str]) -> str:
    return fingerprint(["labels", labels])


def validate_tags(items: object, field: str = "resource.tags.items") -> list[str]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise Invalid(field, items, "Must be a list.")
    for i, tag in enumerate(items):
        if not isinstance(tag, str) or not _TAG.match(tag):
            raise Invalid(f"{field}[{i}]", tag, "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'")
    return sorted(set(items))


def tags_block(items: list[str]) -> Body:
    block: Body = {"fingerprint": fingerprint(["tags", items])}
    if items:
        block["items"] = items
    return block


def set_labels(body: Body, request: Body) -> None:
    """The setLabels use case on any labelled resource body: fingerprint check, full replacement."""
    check_fingerprint(request.get("labelFingerprint"), body.get("labelFingerprint", label_fingerprint({})),
                      allow_missing=not body.get("labels"))
    labels = validate_labels(request.get("labels"), "labels")
    body["labels"] = labels
    body["labelFingerprint"] = label_fingerprint(labels)
