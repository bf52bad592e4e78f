"""Every cell of the instance state table, against an expected table written out here on its own:
for each status × action, the status taken and the job run, GCE's no-op answer, or the exact
refusal (error class and message). User actions are asked the way the use cases ask them
(:func:`states.move`, which completes the errors that name a field); job reports through
:func:`states.event`, where a report the status cannot take is a bug."""

from __future__ import annotations

import pytest

from core.errors import ComputeError, Invalid, ResourceNotReady
from core.models import Resource
from core.resources.states import STAY, IllegalMove, Move
from core.services.instances import states

STATUSES = ("PROVISIONING", "STAGING", "RUNNING", "STOPPING", "SUSPENDING", "SUSPENDED", "TERMINATED")
PATH = "projects/p1/zones/us-central1-a/instances/vm1"
RUN, STOP = "instances.run", "instances.stop"
SUSPEND, RESET, DELETE, HOTPLUG = "instances.suspend", "instances.reset", "instances.delete", "instances.diskHotplug"


class NotReady:
    """Refused with ResourceNotReady: '... is not ready: it is <status> and cannot <verb>.'"""

    def __init__(self, verb: str):
        self.verb = verb

    def error(self, status: str) -> tuple[type[ComputeError], str]:
        return ResourceNotReady, f"The resource '{PATH}' is not ready: it is {status} and cannot {self.verb}."


class Stopped:
    """Refused with Invalid naming the field and value asked for, as GCE does for a running VM."""

    def __init__(self, field: str, value: str, why: str):
        self.field, self.value, self.why = field, value, why

    def error(self, status: str) -> tuple[type[ComputeError], str]:
        return Invalid, f"Invalid value for field '{self.field}': '{self.value}'. {self.why}"


BUG = "bug"  # a job report the status cannot take: IllegalMove

STARTED, STOPPED = NotReady("be started"), NotReady("be stopped")
RESET_, SUSPENDED, RESUMED = NotReady("be reset"), NotReady("be suspended"), NotReady("be resumed")
MACHINE = Stopped("resource.machineType", "zones/us-central1-a/machineTypes/e2-small",
                  "Instance 'vm1' must be stopped before changing its machine type.")
ACCOUNT = Stopped("serviceAccount", "sa@p1.iam.gserviceaccount.com",
                  "Instance 'vm1' must be stopped before changing its service account.")
MODEL = Stopped("scheduling.provisioningModel", "SPOT",
                "Instance 'vm1' must be stopped before changing its provisioning model.")
BOOT = Stopped("deviceName", "vm1", "The boot disk can only be detached from a stopped instance.")
PLATFORM = Stopped("minCpuPlatform", "AMD Milan",
                   "Instance 'vm1' must be stopped before changing its minimum CPU platform.")
ACCELERATORS = Stopped("guestAccelerators", "[]", "Instance 'vm1' must be stopped before changing its guest accelerators.")
RENAME = Stopped("name", "vm2", "Instance 'vm1' must be stopped before it can be renamed.")
SECURE_BOOT = Stopped("resource.enableSecureBoot", "True", "Instance 'vm1' must be stopped before changing its "
                      "Shielded VM secure boot or vTPM settings.")
NETWORK = Stopped("resource.network", "global/networks/other", "Instance 'vm1' must be stopped before changing "
                  "the network, subnetwork or internal IP address of its network interface.")
TO_STOPPING_DELETE = Move("STOPPING", DELETE)
HOT = Move(None, HOTPLUG)

# Columns: PROVISIONING, STAGING, RUNNING, STOPPING, SUSPENDING, SUSPENDED, TERMINATED.
USER = {
    "start": (Move(None, RUN), Move(None, RUN), STAY, STARTED, STARTED, STARTED, Move("PROVISIONING", RUN)),
    "stop": (Move(None, STOP), Move(None, STOP), Move("STOPPING", STOP), Move(None, STOP), STOPPED,
             Move("STOPPING", STOP), STAY),
    "reset": (RESET_, RESET_, Move(None, RESET), RESET_, RESET_, RESET_, RESET_),
    "suspend": (SUSPENDED, SUSPENDED, Move("SUSPENDING", SUSPEND), SUSPENDED, Move(None, SUSPEND), STAY, SUSPENDED),
    "resume": (RESUMED, RESUMED, STAY, RESUMED, RESUMED, Move("PROVISIONING", RUN), RESUMED),
    "delete": (TO_STOPPING_DELETE,) * 7,
    "setMachineType": (MACHINE,) * 6 + (STAY,),
    "setServiceAccount": (ACCOUNT,) * 6 + (STAY,),
    "setProvisioningModel": (MODEL,) * 6 + (STAY,),
    "detachBootDisk": (BOOT,) * 6 + (STAY,),
    "setMinCpuPlatform": (PLATFORM,) * 6 + (STAY,),
    "setMachineResources": (ACCELERATORS,) * 6 + (STAY,),
    "setName": (RENAME,) * 6 + (STAY,),
    "setSecureBoot": (SECURE_BOOT,) * 6 + (STAY,),
    "setNetwork": (NETWORK,) * 6 + (STAY,),
    "attachDisk": (STAY, STAY, HOT, STAY, STAY, STAY, STAY),
    "detachDisk": (STAY, STAY, HOT, STAY, STAY, STAY, STAY),
}
TO_STAGING, TO_RUNNING = Move("STAGING"), Move("RUNNING")
EVENTS = {
    "stage": (TO_STAGING, TO_STAGING, STAY, TO_STAGING, TO_STAGING, TO_STAGING, TO_STAGING),
    "stageNew": (TO_STAGING, BUG, BUG, BUG, BUG, BUG, BUG),
    "running": (TO_RUNNING,) * 7,
    "startFailed": (Move("TERMINATED"),) * 7,
    "resumeFailed": (Move("SUSPENDED"),) * 7,
    "stopped": (Move("TERMINATED"),) * 6 + (STAY,),
    "suspended": (Move("SUSPENDED"),) * 5 + (STAY, Move("SUSPENDED")),
    "rebooted": (TO_RUNNING,) * 7,
    # The host monitor: a RUNNING VM's host failed or its domain changed outside gstack.
    "restartElsewhere": (BUG, BUG, Move("PROVISIONING", RUN), BUG, BUG, BUG, BUG),
    "lost": (BUG, BUG, Move("TERMINATED"), BUG, BUG, BUG, BUG),
    "shutOff": (BUG, BUG, Move("TERMINATED"), BUG, BUG, BUG, BUG),
    "paused": (BUG, BUG, Move("SUSPENDED"), BUG, BUG, BUG, BUG),
    "foundRunning": (BUG, BUG, BUG, BUG, BUG, TO_RUNNING, TO_RUNNING),
    "foundStopped": (BUG, BUG, BUG, BUG, BUG, Move("TERMINATED"), BUG),
}
VALUES = {"setMachineType": MACHINE, "setServiceAccount": ACCOUNT, "setProvisioningModel": MODEL,
          "detachBootDisk": BOOT, "setMinCpuPlatform": PLATFORM, "setMachineResources": ACCELERATORS,
          "setName": RENAME, "setSecureBoot": SECURE_BOOT, "setNetwork": NETWORK}


def _vm(status: str) -> Resource:
    return Resource(project="p1", collection="instances", scope="zones/us-central1-a", name="vm1", status=status)


def _cells(table: dict[str, tuple[object, ...]]) -> list[tuple[str, str, object]]:
    return [(status, action, row[i]) for action, row in table.items() for i, status in enumerate(STATUSES)]


def test_the_table_has_exactly_these_statuses_and_actions():
    assert states.TABLE.statuses == STATUSES
    assert set(states.TABLE.actions) == set(USER) | set(EVENTS)


@pytest.mark.parametrize(("status", "action", "expected"), _cells(USER))
def test_user_actions(status: str, action: str, expected: object):
    vm = _vm(status)
    stopped = VALUES.get(action)
    where = {"field": stopped.field, "value": stopped.value} if stopped else {}
    if isinstance(expected, Move):
        assert states.move(vm, action, **where) == expected
        return
    assert isinstance(expected, NotReady | Stopped)
    error, message = expected.error(status)
    with pytest.raises(ComputeError) as caught:
        states.move(vm, action, **where)
    assert type(caught.value) is error
    assert caught.value.message == message


@pytest.mark.parametrize(("status", "action", "expected"), _cells(EVENTS))
def test_job_reports(status: str, action: str, expected: object):
    vm = _vm(status)
    if expected is BUG:
        assert not states.may(vm, action)
        with pytest.raises(IllegalMove):
            states.event(vm, action)
    else:
        assert states.may(vm, action)
        assert states.event(vm, action) == expected


def test_no_op_cells_are_noops_and_take_changes_nothing():
    vm = _vm("RUNNING")
    found = states.move(vm, "start")
    assert found.is_noop
    states.take(vm, found)
    assert vm.status == "RUNNING"


def test_take_sets_the_status_and_its_fields():
    vm = _vm("RUNNING")
    vm.body = "{}"
    states.take(vm, states.move(vm, "stop"), lastStopTimestamp="t")
    assert vm.status == "STOPPING"
    assert '"lastStopTimestamp":"t"' in vm.body and '"status":"STOPPING"' in vm.body
