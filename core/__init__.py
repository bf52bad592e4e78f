"""The orchestration core: topology, planner, jobs, hypervisor drivers, system VMs.

It never imports Flask or ``gstack``: every entry point takes a SQLAlchemy ``Session``.
"""
