"""resourcePolicies: snapshot schedules, instance schedules and group placement (see :mod:`.policies`),
the disks and instances that follow them (:mod:`.attach`), and the scheduler that carries the
schedules out (:mod:`.scheduler`, over the pure time rules of :mod:`.timing`).

The package exports the use cases only: disks and instances import it (their ``resourcePolicies``
at insert time), and the scheduler imports them, so it is imported from its own module.
"""

from core.services.resource_policies.attach import add, links_for_new, remove
from core.services.resource_policies.policies import delete, insert, patch

__all__ = ["add", "delete", "insert", "links_for_new", "patch", "remove"]
