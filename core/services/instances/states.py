"""The instance state table: GCE's statuses × what users and jobs ask of an instance.

PROVISIONING -> STAGING -> RUNNING, RUNNING -> STOPPING -> TERMINATED, RUNNING -> SUSPENDING ->
SUSPENDED. A VM holds host capacity while it is placed (PROVISIONING once placed, STAGING, RUNNING,
STOPPING, SUSPENDING) and releases it when it is TERMINATED or SUSPENDED.

Each cell is a :class:`~core.resources.states.Move` (the status the instance takes at once and the
job that carries the action out), :data:`~core.resources.states.STAY` for GCE's no-op answers (start
of a RUNNING VM: a DONE Operation), or a refusal with the exact error GCE gives. The use cases and
jobs of this package change and compare statuses only through :func:`move` and :func:`event`.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.errors import ComputeError, Invalid, ResourceNotReady
from core.models import Resource
from core.resources import store
from core.resources.states import STAY, Move, Refusal, StateTable
from core.services.instances.rows import instance_path

PROVISIONING, STAGING, RUNNING, STOPPING = "PROVISIONING", "STAGING", "RUNNING", "STOPPING"
SUSPENDING, SUSPENDED, TERMINATED = "SUSPENDING", "SUSPENDED", "TERMINATED"
STATUSES = (PROVISIONING, STAGING, RUNNING, STOPPING, SUSPENDING, SUSPENDED, TERMINATED)

RUN, STOP, RESET, SUSPEND = "instances.run", "instances.stop", "instances.reset", "instances.suspend"
DELETE, HOTPLUG = "instances.delete", "instances.diskHotplug"

# What the refusal of each lifecycle action says the instance cannot do.
_VERBS = {"start": "be started", "stop": "be stopped", "reset": "be reset", "suspend": "be suspended",
          "resume": "be resumed"}
# Changes GCE allows only on a stopped (TERMINATED) instance, and why it refuses them otherwise.
_STOPPED_ONLY = {
    "setMachineType": "Instance '{name}' must be stopped before changing its machine type.",
    "setServiceAccount": "Instance '{name}' must be stopped before changing its service account.",
    "setProvisioningModel": "Instance '{name}' must be stopped before changing its provisioning model.",
    "detachBootDisk": "The boot disk can only be detached from a stopped instance.",
    "setMinCpuPlatform": "Instance '{name}' must be stopped before changing its minimum CPU platform.",
    "setMachineResources": "Instance '{name}' must be stopped before changing its guest accelerators.",
    "setName": "Instance '{name}' must be stopped before it can be renamed.",
    "setSecureBoot": "Instance '{name}' must be stopped before changing its Shielded VM secure boot or vTPM "
                     "settings.",
    "setNetwork": "Instance '{name}' must be stopped before changing the network, subnetwork or internal IP "
                  "address of its network interface.",
}
# What jobs report. stage: a run job places the VM (a stop or delete asked meanwhile runs after it:
# jobs of one VM run in order); stageNew: a batch of new VMs is staged at once (any other is left to
# its own run); the others: the hypervisor did it (stopped, suspended: nothing to do when it is so).
# The host monitor's reports (core.services.host_monitor): the VM's host failed, or the host shows the VM
# otherwise than the database does (changed outside gstack). restartElsewhere/lost: a RUNNING VM's
# host failed or its domain vanished (restarted on another host when automaticRestart allows it);
# shutOff/paused: its domain stopped or paused where it runs; foundRunning/foundStopped: a VM not
# placed there runs (or a SUSPENDED one's domain is gone or off).
HOST_EVENTS = ("restartElsewhere", "lost", "shutOff", "paused", "foundRunning", "foundStopped")
EVENTS = ("stage", "stageNew", "running", "startFailed", "resumeFailed", "stopped", "suspended", "rebooted",
          *HOST_EVENTS)
ACTIONS = (*_VERBS, "delete", *_STOPPED_ONLY, "attachDisk", "detachDisk", *EVENTS)


class MustBeStopped(Invalid):
    """A refused change of a running instance. GCE names the field and the value asked for, which
    the table does not know: the use case completes the error with :meth:`about` (see :func:`move`)."""

    def __init__(self, why: str):
        super().__init__("", message=why)
        self.why = why

    def about(self, field: str, value: object) -> Invalid:
        return Invalid(field, value, self.why)


def _not_ready(path: str, status: str, action: str) -> ComputeError:
    return ResourceNotReady(f"The resource '{path}' is not ready: it is {status} and cannot {_VERBS[action]}.")


def _stopped_only(path: str, status: str, action: str) -> ComputeError:
    return MustBeStopped(_STOPPED_ONLY[action].format(name=path.rsplit("/", 1)[-1]))


def _row(action: str, moves: dict[str, Move], rest: Move | None = None) -> dict[tuple[str, str], Move]:
    """One action's cells: ``moves`` by status, ``rest`` for every other status (None: refused)."""
    cells = {(status, action): move for status, move in moves.items()}
    if rest is not None:
        cells.update({(status, action): rest for status in STATUSES if status not in moves})
    return cells


def _cells() -> dict[tuple[str, str], Move]:
    rows = [
        _row("start", {RUNNING: STAY, PROVISIONING: Move(job=RUN), STAGING: Move(job=RUN),
                       TERMINATED: Move(PROVISIONING, RUN)}),
        _row("stop", {TERMINATED: STAY, STOPPING: Move(job=STOP), PROVISIONING: Move(job=STOP),
                      STAGING: Move(job=STOP), RUNNING: Move(STOPPING, STOP), SUSPENDED: Move(STOPPING, STOP)}),
        _row("reset", {RUNNING: Move(job=RESET)}),
        _row("suspend", {SUSPENDED: STAY, SUSPENDING: Move(job=SUSPEND), RUNNING: Move(SUSPENDING, SUSPEND)}),
        _row("resume", {RUNNING: STAY, SUSPENDED: Move(PROVISIONING, RUN)}),
        _row("delete", {}, Move(STOPPING, DELETE)),
        *(_row(action, {TERMINATED: STAY}) for action in _STOPPED_ONLY),
        _row("attachDisk", {RUNNING: Move(job=HOTPLUG)}, STAY),
        _row("detachDisk", {RUNNING: Move(job=HOTPLUG)}, STAY),
        _row("stage", {RUNNING: STAY}, Move(STAGING)),
        _row("stageNew", {PROVISIONING: Move(STAGING)}),
        _row("running", {}, Move(RUNNING)),
        _row("startFailed", {}, Move(TERMINATED)),
        _row("resumeFailed", {}, Move(SUSPENDED)),
        _row("stopped", {TERMINATED: STAY}, Move(TERMINATED)),
        _row("suspended", {SUSPENDED: STAY}, Move(SUSPENDED)),
        _row("rebooted", {}, Move(RUNNING)),
        _row("restartElsewhere", {RUNNING: Move(PROVISIONING, RUN)}),
        _row("lost", {RUNNING: Move(TERMINATED)}),
        _row("shutOff", {RUNNING: Move(TERMINATED)}),
        _row("paused", {RUNNING: Move(SUSPENDED)}),
        _row("foundRunning", {TERMINATED: Move(RUNNING), SUSPENDED: Move(RUNNING)}),
        _row("foundStopped", {SUSPENDED: Move(TERMINATED)}),
    ]
    return {key: cell for row in rows for key, cell in row.items()}


def _refusals(actions: Iterable[str]) -> dict[tuple[str, str], Refusal]:
    return {(status, action): _stopped_only for action in actions for status in STATUSES if status != TERMINATED}


TABLE = StateTable("instance", STATUSES, ACTIONS, _cells(), _not_ready, _refusals(_STOPPED_ONLY))


def move(res: Resource, action: str, *, field: str = "", value: object = None) -> Move:
    """The move a user's ``action`` makes on ``res``, or its exact refusal. A change allowed only
    on a stopped instance is refused naming ``field`` and the ``value`` asked for."""
    try:
        return TABLE.move(instance_path(res), res.status, action)
    except MustBeStopped as exc:
        raise exc.about(field, value) from None


def event(res: Resource, name: str) -> Move:
    """The move a job's report ``name`` makes on ``res`` (a report its status cannot take is a bug)."""
    return TABLE.event(res.status, name)


def may(res: Resource, name: str) -> bool:
    """Whether ``res`` can take the event ``name`` at all (a batch leaves out the VMs that cannot)."""
    return TABLE.cell(res.status, name) is not None


def take(res: Resource, found: Move, **fields: object) -> None:
    """Give ``res`` the status of a move (and the output fields that come with it, e.g. timestamps)."""
    if found.status is not None:
        store.set_status(res, found.status, **fields)
