"""Clusters and hypervisor hosts: adding, listing, maintenance, removal, checks, fault injection."""

from __future__ import annotations

import json

import click

from core.hypervisors.base import DriverError
from core.hypervisors.registry import HYPERVISORS, default_registry
from core.services import hosts
from core.services.admin import AdminError, set_systemvm_arch, transaction
from core.services.host_monitor import HostMonitor
from core.services.hosts import (
    HOST_STATUSES,
    HostError,
    add_cluster,
    add_host,
    find_host,
    host_ref,
    placed_vms,
    remove_host,
    set_maintenance,
)
from gstack.admin import DATA_DIR, admin, factory, fail, settings

SIM_CPUS = 32
SIM_MEMORY_MB = 131072


def _drivers(sessions, data_dir: str | None):
    config = settings(data_dir)
    return default_registry(sessions, config.sim_latency, data_dir=config.data_dir)


def _option(pairs: tuple[str, ...]) -> dict:
    """``key=value`` pairs; a value that parses as JSON (``true``, ``60``, ``{"default": "bridge:br0"}``) is that."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--option wants key=value, not {pair}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# -- clusters ------------------------------------------------------------------------------------


@admin.group("cluster")
def cluster_group() -> None:
    """Clusters: hosts of one hypervisor in a pod of a zone."""


@cluster_group.command("add")
@click.option("--zone", required=True)
@click.option("--name", required=True)
@click.option("--hypervisor", type=click.Choice(HYPERVISORS), default="libvirt", show_default=True)
@click.option("--pod", default=None, help="Pod name (default: the zone's first pod).")
@click.option("--cpu-overprovisioning", default=4.0, show_default=True, type=float)
@click.option("--memory-overprovisioning", default=1.0, show_default=True, type=float)
@DATA_DIR
def cluster_add(zone: str, name: str, hypervisor: str, pod: str | None, cpu_overprovisioning: float,
                memory_overprovisioning: float, data_dir: str | None) -> None:
    """Add a cluster to a zone."""
    with transaction(factory(data_dir)) as session:
        try:
            add_cluster(session, zone, name, hypervisor, pod=pod, cpu_overprovisioning=cpu_overprovisioning,
                        memory_overprovisioning=memory_overprovisioning)
        except HostError as e:
            fail(str(e))
    click.echo(f"added {hypervisor} cluster {name} to {zone}")


@cluster_group.command("list")
@DATA_DIR
def cluster_list(data_dir: str | None) -> None:
    """List clusters with their hypervisor and host count."""
    with factory(data_dir)() as session:
        click.echo(f"{'ZONE':20} {'NAME':28} {'HYPERVISOR':10} {'HOSTS':>5} {'CPU_OP':>6} {'MEM_OP':>6}")
        for row in hosts.clusters(session):
            c = row.cluster
            click.echo(f"{row.zone.name:20} {c.name:28} {c.hypervisor:10} {row.hosts:>5} {c.cpu_overprovisioning:>6g} "
                       f"{c.memory_overprovisioning:>6g}")


# -- hosts ---------------------------------------------------------------------------------------


@admin.group("host")
def host_group() -> None:
    """Hypervisor hosts."""


@host_group.command("list")
@DATA_DIR
def host_list(data_dir: str | None) -> None:
    """List hosts with their capacity and use."""
    with factory(data_dir)() as session:
        click.echo(f"{'NAME':32} {'ZONE':16} {'CLUSTER':22} {'HYPERVISOR':10} {'STATUS':12} {'CPUS':>5} {'USED':>5} "
                   f"{'MEM_MB':>8} {'USED_MB':>8}  URI")
        for row in hosts.hosts(session):
            h, c = row.host, row.cluster
            click.echo(f"{h.name:32} {row.zone.name:16} {c.name:22} {c.hypervisor:10} {h.status:12} {h.cpus:>5} "
                       f"{row.cpus_used:>5} {h.memory_mb:>8} {row.memory_used_mb:>8}  {h.uri}")


@host_group.command("add")
@click.option("--zone", required=True)
@click.option("--cluster", default=None, help="Cluster name (default: the zone's first cluster).")
@click.option("--name", default=None, help="Host name (default: the hostname the host reports; required for "
                                           "simulator hosts).")
@click.option("--uri", default="simulator://", show_default=True,
              help="libvirt URI (qemu:///system, qemu+ssh://root@kvm1/system, test:///default), netns://local "
                   "or simulator://")
@click.option("--cpus", default=None, type=int, help="Default: what the host reports (simulator: 32).")
@click.option("--memory-mb", default=None, type=int, help="Default: what the host reports (simulator: 131072).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Driver setting, repeatable: pool, pool_path, image_pool, image_pool_path, image_copy, "
                   "networks, console_dir, shutdown_timeout; netns: metadata_url, boot_timeout, shutdown_timeout "
                   "(see the operator's guide).")
@click.option("--cpu-platform", default=None,
              help="The host's CPU platform as GCE names it (e.g. 'Intel Ice Lake', 'AMD Milan'); instances asking "
                   "for a minimum CPU platform are placed only on hosts at or above it (default: Intel Broadwell).")
@DATA_DIR
def host_add(zone: str, cluster: str | None, name: str | None, uri: str, cpus: int | None, memory_mb: int | None,
             options: tuple[str, ...], cpu_platform: str | None, data_dir: str | None) -> None:
    """Add a host to a cluster; a libvirt host's CPUs and memory are read from the host."""
    sessions = factory(data_dir)
    with sessions() as session:
        c = hosts.find_cluster(session, zone, cluster)
    if c is not None and c.hypervisor == "simulator":
        if not name:
            fail("a simulator host needs --name")
        cpus = cpus if cpus is not None else SIM_CPUS
        memory_mb = memory_mb if memory_mb is not None else SIM_MEMORY_MB
    try:
        host = add_host(sessions, _drivers(sessions, data_dir), zone, cluster, name, uri, cpus=cpus,
                        memory_mb=memory_mb, options=_option(options) or None, cpu_platform=cpu_platform)
    except HostError as e:
        fail(str(e))
    click.echo(f"added host {host.name} to {zone}/{c.name if c else cluster}: {host.cpus} CPUs, "
               f"{host.memory_mb} MB ({uri})")


@host_group.command("set-status")
@click.argument("name")
@click.argument("status", type=click.Choice(HOST_STATUSES))
@DATA_DIR
def host_set_status(name: str, status: str, data_dir: str | None) -> None:
    """Mark a host Up, Down (simulator: it stops answering) or in Maintenance."""
    with transaction(factory(data_dir)) as session:
        try:
            hosts.set_host_status(session, name, status)
        except HostError as e:
            fail(str(e))
    click.echo(f"{name}: {status}")


@host_group.command("maintenance")
@click.argument("name")
@click.argument("state", type=click.Choice(["on", "off"]))
@DATA_DIR
def host_maintenance(name: str, state: str, data_dir: str | None) -> None:
    """Maintenance on: nothing new is placed on the host; lists the VMs still on it. Off: Up again."""
    with transaction(factory(data_dir)) as session:
        try:
            vms = set_maintenance(session, name, state == "on")
        except HostError as e:
            fail(str(e))
        status = find_host(session, name).status
        lines = [f"  {v.project}/{v.scope}/instances/{v.name} {v.status} onHostMaintenance="
                 f"{(json.loads(v.body).get('scheduling') or {}).get('onHostMaintenance', 'MIGRATE')}" for v in vms]
    click.echo(f"{name}: {status}; {len(vms)} VM(s) on it" + (":" if vms else ""))
    for line in lines:
        click.echo(line)


@host_group.command("remove")
@click.argument("name")
@DATA_DIR
def host_remove(name: str, data_dir: str | None) -> None:
    """Remove a host that no VM is placed on; its driver removes what it made there (netns)."""
    sessions = factory(data_dir)
    with transaction(sessions) as session:
        try:
            host = find_host(session, name)
            ref, hypervisor = host_ref(host), hosts.cluster_of(session, host).hypervisor
            remove_host(session, name)
        except HostError as e:
            fail(str(e))
    drivers = _drivers(sessions, data_dir)
    if hypervisor in drivers:
        drivers.get(hypervisor).release_host(ref)
    click.echo(f"removed host {name}")


@host_group.command("check")
@click.option("--no-reconcile", is_flag=True, help="Only check that hosts answer and recover VMs of Down hosts.")
@click.option("--failures-to-down", default=1, show_default=True, type=int,
              help="Failed checks in a row before a host is Down (the serving monitor waits for 3).")
@DATA_DIR
def host_check(no_reconcile: bool, failures_to_down: int, data_dir: str | None) -> None:
    """One round of the host monitor now: Down hosts' VMs restarted or TERMINATED, drift corrected.

    Hosts whose state lives only in the serving process (libvirt test://) are left to its monitor.
    """
    sessions = factory(data_dir)
    monitor = HostMonitor(sessions, _drivers(sessions, data_dir), failures_to_down=failures_to_down, local=False)
    events = monitor.run_once(force=True, reconcile=not no_reconcile)
    for e in events:
        click.echo(f"{e.host}: {e.kind}: {e.message}" + (f" [{e.instance}]" if e.instance else ""))
    click.echo(f"{len(events)} event(s)")


@host_group.command("domains")
@click.argument("name")
@click.option("--xml", "show_xml", is_flag=True, help="Print each domain's XML as the host stores it.")
@DATA_DIR
def host_domains(name: str, show_xml: bool, data_dir: str | None) -> None:
    """What the host really runs: gstack VM uid and power state (and its domain XML)."""
    sessions = factory(data_dir)
    drivers = _drivers(sessions, data_dir)
    with sessions() as session:
        try:
            host = find_host(session, name)
        except HostError as e:
            fail(str(e))
        ref, cluster = host_ref(host), hosts.cluster_of(session, host)
        vms = {v.uid: v for v in placed_vms(session, host.id)}
    driver = drivers.get(cluster.hypervisor)
    if not driver.shares_state(ref):
        fail(f"{ref.uri} keeps its state in the serving process; this command cannot see it")
    try:
        domains = driver.list_instances(ref)
    except DriverError as e:
        fail(str(e))
    for uid, state in sorted(domains.items()):
        vm = vms.get(uid)
        click.echo(f"{uid} {state} {vm.project + '/' + vm.name if vm else '(not placed here)'}")
        if show_xml and hasattr(driver, "domain_xml_of"):
            click.echo(driver.domain_xml_of(ref, uid))


@host_group.command("fail-spawns")
@click.argument("name")
@click.argument("count", type=int)
@DATA_DIR
def host_fail_spawns(name: str, count: int, data_dir: str | None) -> None:
    """Simulator fault injection: the next COUNT spawns on the host fail."""
    with transaction(factory(data_dir)) as session:
        try:
            hosts.fail_next_spawns(session, name, count)
        except HostError as e:
            fail(str(e))
    click.echo(f"{name}: next {count} spawn(s) fail")


# -- zones ---------------------------------------------------------------------------------------


@admin.group("zone")
def zone_group() -> None:
    """Zone settings."""


@zone_group.command("systemvm-arch")
@click.argument("zone")
@click.argument("arch", type=click.Choice(["x86_64", "i386"]))
@DATA_DIR
def zone_systemvm_arch(zone: str, arch: str, data_dir: str | None) -> None:
    """The architecture of the zone's system VM template: x86_64 (default) or i386 (less memory,
    connection tracking capped near 2.5M entries)."""
    with transaction(factory(data_dir)) as session:
        try:
            set_systemvm_arch(session, zone, arch)
        except AdminError as e:
            fail(str(e))
    click.echo(f"{zone}: system VM template {arch}")
