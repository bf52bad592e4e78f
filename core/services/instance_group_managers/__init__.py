"""Managed instance groups, zonal (``instanceGroupManagers``) and regional
(``regionInstanceGroupManagers``), one implementation: the use cases (:mod:`.groups`), where a
group lives (:mod:`.location`), which zone each instance goes to (:mod:`.distribution`), the
group's private state (:mod:`.state`) and the reconcile and delete jobs (:mod:`.reconcile`, which
importing the package registers)."""

from core.services.instance_group_managers import reconcile  # noqa: F401  (job registration)
from core.services.instance_group_managers.groups import (
    abandon_instances,
    delete,
    delete_instances,
    insert,
    list_errors,
    list_managed_instances,
    resize,
)

__all__ = ["abandon_instances", "delete", "delete_instances", "insert", "list_errors", "list_managed_instances", "resize"]
