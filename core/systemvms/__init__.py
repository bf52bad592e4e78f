"""System VMs, after CloudStack: a virtual router per network and region, a console proxy and a
secondary storage VM per zone, and the watchdog that keeps them running.

Importing this package registers their job handlers (``systemvms.*``).
"""

from core.systemvms import jobs, sync  # noqa: F401  (job handler registration)
