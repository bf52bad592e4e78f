"""Zonal managed instance groups (``instanceGroupManagers``): the use cases (:mod:`.groups`), the
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
