"""Primary storage pools: listing, adding, resizing, maintenance (core.services.storage_pools)."""

from __future__ import annotations

import click

from core.services.admin import transaction
from core.services.hosts import HostError
from core.services.storage_pools import POOL_STATUSES, add_pool, pools, resize_pool, set_pool_status
from gstack.admin import DATA_DIR, admin, factory, fail


@admin.group("pool")
def pool_group() -> None:
    """Primary storage pools: the capacity disks are placed in."""


@pool_group.command("list")
@DATA_DIR
def pool_list(data_dir: str | None) -> None:
    """List pools with their size, over-provisioning and what their disks hold."""
    with factory(data_dir)() as session:
        click.echo(f"{'ZONE':20} {'NAME':32} {'STATUS':12} {'CAPACITY_GB':>12} {'OP':>5} {'DISKS':>7} {'USED_GB':>10}")
        for row in pools(session):
            p = row.pool
            click.echo(f"{row.zone.name:20} {p.name:32} {p.status:12} {p.capacity_gb:>12} {p.overprovisioning:>5g} "
                       f"{row.disks:>7} {row.used_gb:>10}")


@pool_group.command("add")
@click.option("--zone", required=True)
@click.option("--name", required=True)
@click.option("--capacity-gb", required=True, type=int)
@click.option("--overprovisioning", default=2.0, show_default=True, type=float)
@DATA_DIR
def pool_add(zone: str, name: str, capacity_gb: int, overprovisioning: float, data_dir: str | None) -> None:
    """Add a zone-wide pool; disks are placed in it once the zone's older pools are full."""
    with transaction(factory(data_dir)) as session:
        try:
            add_pool(session, zone, name, capacity_gb, overprovisioning)
        except HostError as e:
            fail(str(e))
    click.echo(f"added storage pool {name} to {zone}: {capacity_gb} GB, over-provisioning {overprovisioning:g}")


@pool_group.command("resize")
@click.argument("name")
@click.option("--capacity-gb", default=None, type=int)
@click.option("--overprovisioning", default=None, type=float)
@DATA_DIR
def pool_resize(name: str, capacity_gb: int | None, overprovisioning: float | None, data_dir: str | None) -> None:
    """Change a pool's size or over-provisioning; never below what its disks hold."""
    if capacity_gb is None and overprovisioning is None:
        fail("give --capacity-gb, --overprovisioning or both")
    with transaction(factory(data_dir)) as session:
        try:
            pool = resize_pool(session, name, capacity_gb, overprovisioning)
        except HostError as e:
            fail(str(e))
        click.echo(f"{name}: {pool.capacity_gb} GB, over-provisioning {pool.overprovisioning:g}")


@pool_group.command("set-status")
@click.argument("name")
@click.argument("status", type=click.Choice(POOL_STATUSES))
@DATA_DIR
def pool_set_status(name: str, status: str, data_dir: str | None) -> None:
    """Up, or Maintenance: no new disk is placed in the pool; the disks in it stay."""
    with transaction(factory(data_dir)) as session:
        try:
            set_pool_status(session, name, status)
        except HostError as e:
            fail(str(e))
    click.echo(f"{name}: {status}")
