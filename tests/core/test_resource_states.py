"""Every cell of the state tables of disks, images, snapshots, addresses and system VMs, against tables
written out here by hand from what the code did before the tables (behaviour unchanged).

A cell is ``(status the resource takes or None, job or None)``, or ``NOT_READY``: refused with
GCE's ``resourceNotReady``, "The resource '<path>' is not ready"."""

from __future__ import annotations

import pytest

from core.errors import ResourceNotReady
from core.resources.states import IllegalMove, Move, StateTable
from core.services.addresses import STATES as ADDRESSES
from core.services.peering import STATES as PEERINGS
from core.services.storage_states import DISKS, IMAGES, SNAPSHOTS, usable_statuses
from core.systemvms.vms import STATES as SYSTEM_VMS

NOT_READY = "not ready"
DONE = (None, None)  # done at once in the request's transaction; the status stays

EXPECTED_DISKS = {
    "CREATING": {"delete": DONE, "resize": DONE, "setLabels": DONE, "update": DONE, "attach": NOT_READY,
                 "createSnapshot": NOT_READY, "use": NOT_READY, "ready": ("READY", None)},
    "READY": {"delete": DONE, "resize": DONE, "setLabels": DONE, "update": DONE, "attach": DONE,
              "createSnapshot": (None, "snapshots.create"), "use": DONE, "ready": DONE},
}
EXPECTED_IMAGES = {
    "PENDING": {"delete": DONE, "deprecate": DONE, "setLabels": DONE, "patch": DONE, "use": NOT_READY,
                "ready": ("READY", None)},
    "READY": {"delete": DONE, "deprecate": DONE, "setLabels": DONE, "patch": DONE, "use": DONE,
              "ready": ("READY", None)},
}
EXPECTED_SNAPSHOTS = {
    "CREATING": {"delete": DONE, "setLabels": DONE, "use": NOT_READY, "ready": ("READY", None)},
    "READY": {"delete": DONE, "setLabels": DONE, "use": DONE, "ready": ("READY", None)},
}
# An address is IN_USE while it has users, RESERVED otherwise.
EXPECTED_ADDRESSES = {
    "RESERVED": {"used": ("IN_USE", None), "freed": DONE},
    "IN_USE": {"used": DONE, "freed": ("RESERVED", None)},
}
# System VMs have no user: every event moves them (and records its reason again); only a running
# VM reboots where it runs.
EXPECTED_SYSTEM_VMS = {
    state: {"start": ("Starting", None), "running": ("Running", None), "failed": ("Error", None),
            "redeploy": ("Starting", None), "reboot": DONE if state == "Running" else NOT_READY}
    for state in ("Starting", "Running", "Error")
}
# A peering is ACTIVE while the peer network has the matching peering back.
EXPECTED_PEERINGS = {
    "INACTIVE": {"connect": ("ACTIVE", None), "disconnect": DONE},
    "ACTIVE": {"connect": DONE, "disconnect": ("INACTIVE", None)},
}

TABLES = [("disks", DISKS, EXPECTED_DISKS), ("images", IMAGES, EXPECTED_IMAGES),
          ("snapshots", SNAPSHOTS, EXPECTED_SNAPSHOTS), ("addresses", ADDRESSES, EXPECTED_ADDRESSES),
          ("systemvms", SYSTEM_VMS, EXPECTED_SYSTEM_VMS), ("peerings", PEERINGS, EXPECTED_PEERINGS)]
CELLS = [(kind, table, status, action, expected[status][action])
         for kind, table, expected in TABLES for status in expected for action in expected[status]]


@pytest.mark.parametrize("kind,table,expected", TABLES, ids=[t[0] for t in TABLES])
def test_a_table_has_exactly_the_statuses_and_actions_written_here(kind, table: StateTable, expected):
    assert set(table.statuses) == set(expected)
    for status in expected:
        assert set(table.actions) == set(expected[status])


@pytest.mark.parametrize("kind,table,status,action,cell", CELLS,
                         ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CELLS])
def test_every_cell(kind, table: StateTable, status, action, cell):
    path = f"projects/p/zones/z/{kind}/thing"
    if cell == NOT_READY:
        assert table.cell(status, action) is None
        with pytest.raises(ResourceNotReady) as refused:
            table.move(path, status, action)
        assert refused.value.message == f"The resource '{path}' is not ready"
        assert (refused.value.status, refused.value.reason) == (400, "resourceNotReady")
        with pytest.raises(IllegalMove):  # a job reporting it would be a bug
            table.event(status, action)
        return
    assert table.move(path, status, action) == Move(*cell)
    assert table.event(status, action) == Move(*cell)


def test_only_ready_images_are_picked_from_a_family():
    assert usable_statuses(IMAGES) == ("READY",)
    assert usable_statuses(DISKS) == usable_statuses(SNAPSHOTS) == ("READY",)
