"""Instances (CloudStack's user VMs): validation, placement, the state machine and its jobs.

The modules, by concern: :mod:`.spec` validates request bodies, :mod:`.states` is the state table
(every status change and check goes through it), :mod:`.lifecycle` holds insert and the power use
cases, :mod:`.setters` the configuration changes (:mod:`.updates` the rename, CPU platform,
accelerators, Shielded VM options and the whole-instance update), :mod:`.network` the NICs and
access configs, :mod:`.jobs` what the hypervisor does, :mod:`.bulk` bulkInsert, and :mod:`.rows`
finds, locks and saves rows. Importing the
package registers the jobs. Changes that touch only the database finish synchronously (their
Operation is born DONE); changes the hypervisor must make are jobs.
"""

from core.services.instances import jobs  # noqa: F401  (job handler registration)
from core.services.instances.bulk import bulk_insert
from core.services.instances.bulk_regional import regional_bulk_insert
from core.services.instances.interfaces import update_network_interface
from core.services.instances.lifecycle import delete, insert, reset, resume, start, stop, suspend
from core.services.instances.network import (
    AddressInUse,
    add_access_config,
    build_nics,
    delete_access_config,
    update_access_config,
)
from core.services.instances.rows import (
    attached_rows,
    driver_for,
    find,
    instance_path,
    instance_url,
    load,
    lock,
    locked,
    serial_port_output,
    vm_spec,
)
from core.services.instances.setters import (
    attach_disk,
    detach_disk,
    set_deletion_protection,
    set_disk_auto_delete,
    set_instance_labels,
    set_machine_type,
    set_metadata,
    set_scheduling,
    set_service_account,
    set_tags,
)
from core.services.instances.spec import ACCESS_CONFIG_TYPES, check_access_config, check_attachable
from core.services.instances.states import TABLE
from core.services.instances.updates import (
    guest_attributes,
    set_machine_resources,
    set_min_cpu_platform,
    set_name,
    update,
    update_shielded_instance_config,
)

__all__ = [
    "ACCESS_CONFIG_TYPES", "TABLE", "AddressInUse", "add_access_config", "attach_disk", "attached_rows",
    "build_nics", "bulk_insert", "check_access_config", "check_attachable", "delete", "delete_access_config", "detach_disk",
    "driver_for", "find", "insert", "instance_path", "instance_url", "load", "lock", "locked", "reset", "resume",
    "serial_port_output", "set_deletion_protection", "set_disk_auto_delete", "set_instance_labels",
    "set_machine_type", "set_metadata", "set_scheduling", "set_service_account", "set_tags", "start", "stop",
    "suspend", "update_access_config", "vm_spec",
    "guest_attributes", "set_machine_resources", "set_min_cpu_platform", "set_name", "update",
    "update_shielded_instance_config", "update_network_interface", "regional_bulk_insert",
]
