"""resourcePolicies: snapshot schedules, instance schedules and group placement (see :mod:`.policies`),
the disks and instances that follow them (:mod:`.attach`), and the scheduler that carries the
schedules out (:mod:`.scheduler`, over the pure time rules of :mod:`.timing`)."""

from core.services.resource_policies import timing
from core.services.resource_policies.attach import add, links_for_new, remove
from core.services.resource_policies.policies import delete, insert, patch
from core.services.resource_policies.scheduler import PolicyScheduler, run_round, start_policy_scheduler

__all__ = ["PolicyScheduler", "add", "delete", "insert", "links_for_new", "patch", "remove", "run_round", "timing",
           "start_policy_scheduler"]
