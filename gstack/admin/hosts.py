"""Hypervisor hosts: capacity, status, and the simulator's fault injection."""

from __future__ import annotations

import click
from sqlalchemy import select

from core.db import write_session
from core.models import Cluster, Host
from gstack.admin import DATA_DIR, admin, factory, fail


@admin.group("host")
def host_group() -> None:
    """Hypervisor hosts."""


@host_group.command("list")
@DATA_DIR
def host_list(data_dir: str | None) -> None:
    """List hosts with their capacity and use."""
    from core.planner import host_usage

    with factory(data_dir)() as session:
        hosts = list(session.scalars(select(Host).order_by(Host.name)))
        usage = host_usage(session, [h.id for h in hosts])
        click.echo(f"{'NAME':32} {'ZONE_ID':>7} {'STATUS':12} {'CPUS':>5} {'USED':>5} {'MEM_MB':>8} {'USED_MB':>8}")
        for h in hosts:
            c, m = usage.get(h.id, (0, 0))
            click.echo(f"{h.name:32} {h.zone_id:>7} {h.status:12} {h.cpus:>5} {c:>5} {h.memory_mb:>8} {m:>8}")


@host_group.command("add")
@click.option("--zone", required=True)
@click.option("--cluster", default=None, help="Cluster name (default: the zone's first cluster).")
@click.option("--name", required=True)
@click.option("--uri", default="simulator://", show_default=True)
@click.option("--cpus", default=32, show_default=True, type=int)
@click.option("--memory-mb", default=131072, show_default=True, type=int)
@DATA_DIR
def host_add(zone: str, cluster: str | None, name: str, uri: str, cpus: int, memory_mb: int,
             data_dir: str | None) -> None:
    """Add a host to a cluster."""
    from core.models import Zone

    with write_session(factory(data_dir)) as session:
        z = session.scalar(select(Zone).where(Zone.name == zone))
        if z is None:
            fail(f"zone {zone} does not exist")
        q = select(Cluster).where(Cluster.zone_id == z.id)
        if cluster:
            q = q.where(Cluster.name == cluster)
        c = session.scalar(q.order_by(Cluster.id))
        if c is None:
            fail(f"cluster {cluster} does not exist in {zone}")
        if session.scalar(select(Host).where(Host.name == name)) is not None:
            fail(f"host {name} already exists")
        session.add(Host(cluster_id=c.id, zone_id=z.id, name=name, uri=uri, cpus=cpus, memory_mb=memory_mb,
                         status="Up"))
    click.echo(f"added host {name} to {zone}/{c.name}")


@host_group.command("set-status")
@click.argument("name")
@click.argument("status", type=click.Choice(["Up", "Down", "Maintenance"]))
@DATA_DIR
def host_set_status(name: str, status: str, data_dir: str | None) -> None:
    """Mark a host Up, Down (simulator: it stops answering) or in Maintenance."""
    with write_session(factory(data_dir)) as session:
        h = session.scalar(select(Host).where(Host.name == name))
        if h is None:
            fail(f"host {name} does not exist")
        h.status = status
    click.echo(f"{name}: {status}")


@host_group.command("fail-spawns")
@click.argument("name")
@click.argument("count", type=int)
@DATA_DIR
def host_fail_spawns(name: str, count: int, data_dir: str | None) -> None:
    """Simulator fault injection: the next COUNT spawns on the host fail."""
    with write_session(factory(data_dir)) as session:
        h = session.scalar(select(Host).where(Host.name == name))
        if h is None:
            fail(f"host {name} does not exist")
        h.fail_next_spawns = count
    click.echo(f"{name}: next {count} spawn(s) fail")
