"""The ``gstack`` command: serve, worker, and admin tasks on the same database."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading

import click
import orjson
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from core import identity
from core.db import create_schema, make_engine, write_session
from core.models import Cluster, Host, Project
from core.seed import ensure_project, seed
from gstack.config import Settings

SCOPES = {
    "compute": "https://www.googleapis.com/auth/compute",
    "compute.readonly": "https://www.googleapis.com/auth/compute.readonly",
    "cloud-platform": "https://www.googleapis.com/auth/cloud-platform",
}


def _settings(data_dir: str | None) -> Settings:
    return Settings.from_env(data_dir=data_dir)


def _factory(settings: Settings) -> sessionmaker:
    engine = make_engine(settings.database_url)
    create_schema(engine)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with write_session(factory) as session:
        seed(session)
    return factory


@click.group()
def main() -> None:
    """gstack: a Google Compute Engine you run yourself."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # gstack.http logs every request itself


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--data-dir", default=None, help="Where SQLite and credentials live (default ~/.local/share/gstack).")
def serve(host: str, port: int, data_dir: str | None) -> None:
    """Run the API, the OAuth2 server and in-process job workers."""
    from werkzeug.serving import make_server

    from gstack.app import create_app
    from gstack.bootstrap import ensure_demo_credentials

    settings = _settings(data_dir)
    os.makedirs(settings.data_dir, exist_ok=True)
    app = create_app(settings)
    display_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = settings.base_url.rstrip("/") if settings.base_url else f"http://{display_host}:{port}"
    runtime = app.extensions["gstack"]
    with write_session(runtime.factory) as session:
        key_path = ensure_demo_credentials(session, settings.data_dir, base + "/token")
    server = make_server(host, port, app, threaded=True)
    click.echo(f"""
gstack is serving the GCE v1 API at {base}/compute/v1/
  database: {settings.database_url.split('@')[-1]}
  credentials: {key_path} (service account key, owner of demo-project)

Point gcloud at it:
  gcloud config set api_endpoint_overrides/compute {base}/compute/v1/
  gcloud config set auth/token_host {base}/token
  gcloud config set core/project demo-project
  gcloud config set compute/zone us-central1-a
  gcloud auth activate-service-account --key-file {key_path}
""", err=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.engine.stop()


@main.command()
@click.option("--data-dir", default=None)
@click.option("--threads", default=4, show_default=True, type=int)
def worker(data_dir: str | None, threads: int) -> None:
    """Run job workers only (scale out: several workers on one PostgreSQL database)."""
    from core.hypervisors import DriverRegistry
    from core.hypervisors.simulator import SimulatorDriver
    from core.jobs import JobEngine

    settings = _settings(data_dir)
    factory = _factory(settings)
    engine = JobEngine(factory, DriverRegistry({"simulator": SimulatorDriver(factory, settings.sim_latency)}),
                       workers=threads)
    engine.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"gstack worker {engine.owner} running {threads} threads", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    engine.stop()


@main.group()
def admin() -> None:
    """Operator tasks: credentials, projects, quotas, hosts."""


def _fail(message: str) -> None:
    click.echo(f"ERROR: {message}", err=True)
    sys.exit(1)


@admin.command("token")
@click.option("--project", required=True)
@click.option("--scope", "scopes", multiple=True, default=["cloud-platform"], show_default=True,
              help="compute, compute.readonly, cloud-platform or a full scope URL; repeatable.")
@click.option("--lifetime", default=3600, show_default=True, type=int, help="Seconds.")
@click.option("--data-dir", default=None)
def admin_token(project: str, scopes: tuple[str, ...], lifetime: int, data_dir: str | None) -> None:
    """Print an access token for the project's gstack-admin service account."""
    from gstack.bootstrap import project_admin

    factory = _factory(_settings(data_dir))
    with write_session(factory) as session:
        try:
            sa = project_admin(session, project)
        except identity.IdentityError as e:
            _fail(str(e))
        token, _ = identity.issue_token(session, sa, [SCOPES.get(s, s) for s in scopes], ttl=lifetime)
    click.echo(token)


@admin.command("service-account-key")
@click.option("--project", required=True)
@click.option("--name", default="gstack-admin", show_default=True, help="Service account name (created as owner).")
@click.option("--output", default="-", show_default=True, help="File to write, - for stdout.")
@click.option("--base-url", default="http://127.0.0.1:8080", show_default=True, help="Where gstack serves /token.")
@click.option("--data-dir", default=None)
def admin_sa_key(project: str, name: str, output: str, base_url: str, data_dir: str | None) -> None:
    """Write a Google-format service-account JSON key whose token_uri is this server's /token."""
    from gstack.bootstrap import project_admin, write_key

    factory = _factory(_settings(data_dir))
    with write_session(factory) as session:
        p = session.scalar(select(Project).where(Project.name == project))
        if p is None:
            _fail(f"project {project} does not exist")
        try:
            if name == "gstack-admin":
                sa = project_admin(session, project)
            else:
                from core.models import Principal

                sa = session.scalar(select(Principal).where(
                    Principal.email == identity.service_account_email(project, name)))
                sa = sa or identity.create_service_account(session, p, name, role="roles/owner")
        except identity.IdentityError as e:
            _fail(str(e))
        key = identity.create_key(session, sa, p, base_url.rstrip("/") + "/token")
    if output == "-":
        click.echo(json.dumps(key, indent=2))
    else:
        write_key(output, key)
        click.echo(f"wrote {output} for {key['client_email']}", err=True)


@admin.group("project")
def project_group() -> None:
    """Projects and their quotas."""


@project_group.command("create")
@click.argument("name")
@click.option("--data-dir", default=None)
def project_create(name: str, data_dir: str | None) -> None:
    """Create a project with its default network."""
    from core.services.store import validate_name

    try:
        validate_name(name)
    except Exception as e:  # noqa: BLE001
        _fail(str(e))
    factory = _factory(_settings(data_dir))
    with write_session(factory) as session:
        if session.scalar(select(Project).where(Project.name == name)) is not None:
            _fail(f"project {name} already exists")
        p = ensure_project(session, name)
        click.echo(f"created project {p.name} (number {p.number})")


@project_group.command("set-quota")
@click.option("--project", required=True)
@click.option("--metric", required=True, help="e.g. CPUS, INSTANCES, DISKS_TOTAL_GB, SNAPSHOTS")
@click.option("--limit", required=True, type=float)
@click.option("--region", default=None, help="A region name, or * for every region; omit for a global metric.")
@click.option("--data-dir", default=None)
def project_set_quota(project: str, metric: str, limit: float, region: str | None, data_dir: str | None) -> None:
    """Change a project's quota limit."""
    from core.catalog import DEFAULT_GLOBAL_QUOTAS, DEFAULT_REGION_QUOTAS

    known = DEFAULT_REGION_QUOTAS if region else DEFAULT_GLOBAL_QUOTAS
    if metric not in known:
        _fail(f"unknown {'regional' if region else 'global'} metric {metric}; known: {', '.join(sorted(known))}")
    factory = _factory(_settings(data_dir))
    with write_session(factory) as session:
        p = session.scalar(select(Project).where(Project.name == project))
        if p is None:
            _fail(f"project {project} does not exist")
        limits = orjson.loads(p.quota_limits or "{}")
        if region:
            limits.setdefault("regions", {}).setdefault(region, {})[metric] = limit
        else:
            limits.setdefault("global", {})[metric] = limit
        p.quota_limits = orjson.dumps(limits).decode()
    click.echo(f"{project}: {metric} = {limit:g}" + (f" in {region}" if region else " globally"))


@admin.group("host")
def host_group() -> None:
    """Hypervisor hosts."""


@host_group.command("list")
@click.option("--data-dir", default=None)
def host_list(data_dir: str | None) -> None:
    """List hosts with their capacity and use."""
    from core.planner import host_usage

    factory = _factory(_settings(data_dir))
    with factory() as session:
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
@click.option("--data-dir", default=None)
def host_add(zone: str, cluster: str | None, name: str, uri: str, cpus: int, memory_mb: int,
             data_dir: str | None) -> None:
    """Add a host to a cluster."""
    from core.models import Zone

    factory = _factory(_settings(data_dir))
    with write_session(factory) as session:
        z = session.scalar(select(Zone).where(Zone.name == zone))
        if z is None:
            _fail(f"zone {zone} does not exist")
        q = select(Cluster).where(Cluster.zone_id == z.id)
        if cluster:
            q = q.where(Cluster.name == cluster)
        c = session.scalar(q.order_by(Cluster.id))
        if c is None:
            _fail(f"cluster {cluster} does not exist in {zone}")
        if session.scalar(select(Host).where(Host.name == name)) is not None:
            _fail(f"host {name} already exists")
        session.add(Host(cluster_id=c.id, zone_id=z.id, name=name, uri=uri, cpus=cpus, memory_mb=memory_mb,
                         status="Up"))
    click.echo(f"added host {name} to {zone}/{c.name}")


@host_group.command("set-status")
@click.argument("name")
@click.argument("status", type=click.Choice(["Up", "Down", "Maintenance"]))
@click.option("--data-dir", default=None)
def host_set_status(name: str, status: str, data_dir: str | None) -> None:
    """Mark a host Up, Down (simulator: it stops answering) or in Maintenance."""
    factory = _factory(_settings(data_dir))
    with write_session(factory) as session:
        h = session.scalar(select(Host).where(Host.name == name))
        if h is None:
            _fail(f"host {name} does not exist")
        h.status = status
    click.echo(f"{name}: {status}")


@host_group.command("fail-spawns")
@click.argument("name")
@click.argument("count", type=int)
@click.option("--data-dir", default=None)
def host_fail_spawns(name: str, count: int, data_dir: str | None) -> None:
    """Simulator fault injection: the next COUNT spawns on the host fail."""
    factory = _factory(_settings(data_dir))
    with write_session(factory) as session:
        h = session.scalar(select(Host).where(Host.name == name))
        if h is None:
            _fail(f"host {name} does not exist")
        h.fail_next_spawns = count
    click.echo(f"{name}: next {count} spawn(s) fail")


if __name__ == "__main__":
    main()
