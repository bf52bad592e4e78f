"""The state tables of disks, images, snapshots and machine images (see :mod:`core.resources.states`).

The three share one rule, so they live together: a disk, image or snapshot is usable (attached,
copied into an image or a snapshot, made into a disk, picked as its family's newest) only once
its job has made it READY; before that GCE answers ``resourceNotReady``. Every other request on
them (delete, resize, setLabels, a disk's update, deprecate, an image's patch) is taken in any status and done at once, as today.

Only the statuses the code really gives are here: a disk is CREATING then READY, an image
PENDING then READY, a snapshot or a machine image CREATING then READY. GCE's RESTORING, FAILED, DELETING and
UPLOADING are never reached (a failed job deletes the row; a delete removes it at once), so a
table naming them would only hold empty rows.
"""

from __future__ import annotations

from core.errors import ComputeError, ResourceNotReady
from core.models import Resource
from core.resources.states import STAY, Move, StateTable

# Actions. ``use``: the resource is the source of another one (or an attachment);
# ``ready``: its job finished making it.
DELETE, RESIZE, SET_LABELS, DEPRECATE, PATCH = "delete", "resize", "setLabels", "deprecate", "patch"
UPDATE = "update"  # disks.update: the fields of its update mask
ATTACH, CREATE_SNAPSHOT, USE, READY_EVENT = "attach", "createSnapshot", "use", "ready"

READY = "READY"
SNAPSHOT_JOB = "snapshots.create"


def not_ready(path: str, status: str, action: str) -> ComputeError:
    """GCE's answer to using a resource that is still being made."""
    return ResourceNotReady(f"The resource '{path}' is not ready")


def _anytime(statuses: tuple[str, ...], actions: tuple[str, ...]) -> dict[tuple[str, str], Move]:
    """Requests done at once whatever the status (the row is deleted or its body changed in the
    caller's transaction; the status stays)."""
    return {(status, action): STAY for status in statuses for action in actions}


_DISK_STATUSES = ("CREATING", READY)
DISKS = StateTable(
    "disk", _DISK_STATUSES, (DELETE, RESIZE, SET_LABELS, UPDATE, ATTACH, CREATE_SNAPSHOT, USE, READY_EVENT),
    {**_anytime(_DISK_STATUSES, (DELETE, RESIZE, SET_LABELS, UPDATE)),
     (READY, ATTACH): STAY, (READY, USE): STAY,
     (READY, CREATE_SNAPSHOT): Move(job=SNAPSHOT_JOB),  # the snapshot's job; the disk stays READY
     ("CREATING", READY_EVENT): Move(READY),
     (READY, READY_EVENT): STAY},  # made already (a disk born READY, or a job run again)
    not_ready)

_IMAGE_STATUSES = ("PENDING", READY)
IMAGES = StateTable(
    "image", _IMAGE_STATUSES, (DELETE, DEPRECATE, SET_LABELS, PATCH, USE, READY_EVENT),
    {**_anytime(_IMAGE_STATUSES, (DELETE, DEPRECATE, SET_LABELS, PATCH)),
     (READY, USE): STAY,
     # A job run again after its commit copies the image again and records the new size.
     ("PENDING", READY_EVENT): Move(READY), (READY, READY_EVENT): Move(READY)},
    not_ready)

_SNAPSHOT_STATUSES = ("CREATING", READY)
SNAPSHOTS = StateTable(
    "snapshot", _SNAPSHOT_STATUSES, (DELETE, SET_LABELS, USE, READY_EVENT),
    {**_anytime(_SNAPSHOT_STATUSES, (DELETE, SET_LABELS)),
     (READY, USE): STAY,
     ("CREATING", READY_EVENT): Move(READY), (READY, READY_EVENT): Move(READY)},
    not_ready)

# A machine image is CREATING while its job copies its instance's disks, then READY: only then can an
# instance be made from it.
_MACHINE_IMAGE_STATUSES = ("CREATING", READY)
MACHINE_IMAGES = StateTable(
    "machineImage", _MACHINE_IMAGE_STATUSES, (DELETE, SET_LABELS, USE, READY_EVENT),
    {**_anytime(_MACHINE_IMAGE_STATUSES, (DELETE, SET_LABELS)),
     (READY, USE): STAY,
     ("CREATING", READY_EVENT): Move(READY), (READY, READY_EVENT): Move(READY)},
    not_ready)

TABLES = {"disks": DISKS, "images": IMAGES, "snapshots": SNAPSHOTS, "machineImages": MACHINE_IMAGES}


def usable(res: Resource, path: str) -> Resource:
    """``res`` (a disk, image or snapshot at ``path``) if it may be used as a source now; its
    table's refusal otherwise."""
    TABLES[res.collection].move(path, res.status, USE)
    return res


def usable_statuses(table: StateTable) -> tuple[str, ...]:
    """The statuses in which a resource of ``table`` may be used (a query's filter)."""
    return tuple(status for status in table.statuses if table.cell(status, USE) is not None)
