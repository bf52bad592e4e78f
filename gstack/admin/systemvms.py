"""System VMs: listing, restart, destroy, router syncs, the watchdog's round, console tickets."""

from __future__ import annotations

import time

import click
import orjson

from core.errors import Forbidden
from core.hypervisors.registry import default_registry
from core.resources import store
from core.services.admin import AdminError, find_operation, set_systemvm_arch, system_vms, transaction
from core.systemvms import console_proxy, jobs, router, sync, vms
from core.systemvms.watchdog import Watchdog
from gstack.admin import DATA_DIR, admin, factory, fail, settings

WAIT = click.option("--wait", "wait_seconds", default=0.0, type=float, metavar="SECONDS",
                    help="Wait up to SECONDS for the job (run by the server's workers) to finish.")


@admin.group("systemvm")
def systemvm_group() -> None:
    """System VMs: virtual routers, console proxies, secondary storage VMs."""


def _wait(sessions, op_name: str, seconds: float) -> None:
    click.echo(f"operation {op_name}")
    deadline = time.monotonic() + seconds
    while seconds > 0:
        with sessions() as session:
            op = find_operation(session, op_name)
        if op is None or op.status == "DONE":
            if op is not None and op.error:
                fail(f"{op_name} failed: {orjson.loads(op.error)['errors'][0]['message']}")
            click.echo("done")
            return
        if time.monotonic() > deadline:
            fail(f"{op_name} is still {op.status}; is a server or worker running?")
        time.sleep(0.2)


def _vm(session, name: str):
    vm = vms.find_by_name(session, name)
    if vm is None:
        fail(f"no system VM named {name}")
    return vm


@systemvm_group.command("list")
@click.option("--kind", type=click.Choice(vms.KINDS), default=None)
@DATA_DIR
def systemvm_list(kind: str | None, data_dir: str | None) -> None:
    """List system VMs: where they run and, for routers, the configuration version pushed."""
    with factory(data_dir)() as session:
        rows = system_vms(session, kind)
        click.echo(f"{'NAME':40} {'KIND':17} {'ZONE':16} {'STATE':8} {'HOST':26} {'ARCH':6} {'MEM_MB':>6} "
                   f"{'CONNTRACK':>9} {'CONFIG':>7}  NETWORK")
        for vm, res, zone, host in rows:
            config = f"{vm.pushed_version}/{vm.config_version}" if vm.kind == vms.ROUTER else "-"
            network = (vm.network_url or "-").rsplit("/projects/", 1)[-1]
            click.echo(f"{vm.name:40} {vm.kind:17} {zone.name:16} {vm.state:8} {host:26} "
                       f"{vm.arch:6} {res.memory_mb:>6} {vm.conntrack_max or '-':>9} {config:>7}  {network}")


@systemvm_group.command("restart")
@click.argument("name")
@WAIT
@DATA_DIR
def systemvm_restart(name: str, wait_seconds: float, data_dir: str | None) -> None:
    """Reboot a system VM (elsewhere if its host is down); a router gets its configuration again."""
    sessions = factory(data_dir)
    with transaction(sessions) as session:
        op = jobs.restart(session, _vm(session, name))
        op_name = op.name
    _wait(sessions, op_name, wait_seconds)


@systemvm_group.command("destroy")
@click.argument("name")
@WAIT
@DATA_DIR
def systemvm_destroy(name: str, wait_seconds: float, data_dir: str | None) -> None:
    """Destroy a system VM; it is deployed afresh when its network or zone needs it again."""
    sessions = factory(data_dir)
    with transaction(sessions) as session:
        op = jobs.destroy(session, _vm(session, name))
        op_name = op.name
    _wait(sessions, op_name, wait_seconds)


@systemvm_group.command("sync")
@click.option("--project", required=True)
@click.option("--network", required=True, help="Network name or URL.")
@WAIT
@DATA_DIR
def systemvm_sync(project: str, network: str, wait_seconds: float, data_dir: str | None) -> None:
    """Render a network's routers again and push what changed (deploying missing routers)."""
    sessions = factory(data_dir)
    url = network if "/" in network else f"global/networks/{network}"
    with transaction(sessions) as session:
        sync.request_sync(session, project, url)
        op = sync.pending_sync(session, project, url)
        op_name = op.name if op is not None else None
    if op_name is None:
        fail(f"network {network} of project {project} does not exist")
    _wait(sessions, op_name, wait_seconds)


@systemvm_group.command("check")
@click.option("--zone-vms", is_flag=True, help="Also deploy missing console proxies and storage VMs.")
@DATA_DIR
def systemvm_check(zone_vms: bool, data_dir: str | None) -> None:
    """One round of the watchdog now: system VMs of failed hosts are redeployed (by the server's workers)."""
    sessions = factory(data_dir)
    config = settings(data_dir)
    drivers = default_registry(sessions, config.sim_latency, data_dir=config.data_dir)
    actions = Watchdog(sessions, drivers, zone_vms=zone_vms).run_once()
    for line in actions:
        click.echo(line)
    click.echo(f"{len(actions)} action(s)")


@systemvm_group.command("config")
@click.argument("name")
@click.option("--path", default=None, help="Only this file (e.g. /etc/haproxy/haproxy.cfg).")
@DATA_DIR
def systemvm_config(name: str, path: str | None, data_dir: str | None) -> None:
    """Print a router's configuration as rendered from the database now."""
    with factory(data_dir)() as session:
        vm = _vm(session, name)
        if vm.kind != vms.ROUTER:
            fail(f"{name} is a {vm.kind}, not a router")
        held = vms.checksums(vm.pushed_checksums)
        for file_path, content in sorted(router.render(session, vm).items()):
            if path and file_path != path:
                continue
            state = "pushed" if held.get(file_path) == router.digest(content) else "not pushed yet"
            click.echo(f"### {file_path} ({state})\n{content}")


@systemvm_group.command("arch")
@click.argument("zone")
@click.argument("arch", required=False, type=click.Choice(sorted(vms.TEMPLATES)))
@DATA_DIR
def systemvm_arch(zone: str, arch: str | None, data_dir: str | None) -> None:
    """Show or set the zone's system VM template architecture (for system VMs deployed from now on)."""
    with transaction(factory(data_dir)) as session:
        try:
            tpl = vms.template_for(set_systemvm_arch(session, zone, arch))
        except AdminError as e:
            fail(str(e))
        click.echo(f"{zone}: {tpl.arch} ({tpl.memory_mb} MB, conntrack max {tpl.conntrack_max})")


@systemvm_group.command("console-ticket")
@click.option("--project", required=True)
@click.option("--zone", required=True)
@click.option("--instance", required=True)
@click.option("--base-url", default=None, help="The server's URL (default: GSTACK_BASE_URL, else http://127.0.0.1:8080).")
@DATA_DIR
def systemvm_console_ticket(project: str, zone: str, instance: str, base_url: str | None,
                            data_dir: str | None) -> None:
    """A one-minute ticket for an instance's serial console, and the WebSocket URL to open with it."""
    with transaction(factory(data_dir)) as session:
        z = console_proxy.find_zone(session, zone)
        if z is None:
            fail(f"zone {zone} does not exist")
        res = store.find_optional(session, project, "instances", f"zones/{zone}", instance)
        if res is None:
            fail(f"instance {instance} does not exist in {project}/{zone}")
        try:
            token, _ = console_proxy.issue_ticket(session, res, "admin")
        except Forbidden as e:
            fail(e.message)
        console_proxy.proxy_for(session, z)
    base = (base_url or settings(data_dir).base_url or "http://127.0.0.1:8080").rstrip("/")
    click.echo(f"{base.replace('http', 'ws', 1)}/console/ws?ticket={token}")
