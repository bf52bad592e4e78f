"""Use cases the API calls: one module per GCE collection. Importing this registers the job handlers."""

from core.services import disks, images, instance_group_managers, instances, snapshots, ssl_certificates  # noqa: F401  (job handlers)
