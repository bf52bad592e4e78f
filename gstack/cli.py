"""The ``gstack`` command: serve, worker, and admin tasks on the same database."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading

import click

from core.db import write_session
from core.migrations import SchemaNotCurrent
from core.periodic import PeriodicRounds
from gstack import logs
from gstack.admin import admin, factory, fail, settings
from gstack.datadir import secure as secure_data_dir
from gstack.db_commands import db
from gstack.interpreter import settle
from gstack.metadata.cli import metadata

SWITCH_INTERVAL = 0.0002  # seconds; see serve()


@click.group()
def main() -> None:
    """gstack: a Google Compute Engine you run yourself."""
    logs.configure(logging.INFO)  # written by a listener thread, not by the request threads
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # gstack.http logs every request itself
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its context lines at every start; `db upgrade` lowers it


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=None, type=int, help="Default 8080, or 443 in a universe (GSTACK_UNIVERSE_DOMAIN).")
@click.option("--data-dir", default=None, help="Where SQLite and credentials live (default ~/.local/share/gstack).")
@click.option("--tls", is_flag=True, default=None,
              help="Serve HTTPS with a certificate from the data directory's CA (or GSTACK_TLS_CERT/_KEY).")
@click.option("--proxy-port", default=None, type=int,
              help="Also listen here as an HTTPS proxy serving Google's API hosts (GSTACK_PROXY_PORT).")
def serve(host: str, port: int | None, data_dir: str | None, tls: bool | None, proxy_port: int | None) -> None:
    """Run the API, the OAuth2 server and in-process job workers."""
    from gstack import tls as tls_
    from gstack.app import create_app
    from gstack.bootstrap import ensure_demo_credentials
    from gstack.intercept import InterceptingServer
    from gstack.serving import PooledWSGIServer
    from gstack.universe import DEFAULT_UNIVERSE
    from gstack.universe import token_uri as universe_token_uri

    config = settings(data_dir)
    config.tls = bool(tls) or config.tls
    config.proxy_port = proxy_port if proxy_port is not None else config.proxy_port
    port = port if port is not None else (443 if config.universe_domain else 8080)
    # Request threads and job workers share one interpreter. Every SQLite call releases the GIL,
    # and with the default 5 ms switch interval a request thread then waits up to 5 ms to get it
    # back from a busy worker, a dozen times per request: measured, 0.2 ms served a burst of
    # inserts 25% faster with a thread per connection (with reused request threads, 0.2, 1 and
    # 5 ms measure alike; 0.2 ms stays).
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        app = create_app(config)
    except SchemaNotCurrent as exc:
        fail(str(exc))
    display_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    scheme = "https" if config.tls else "http"
    base = config.base_url.rstrip("/") if config.base_url else f"{scheme}://{display_host}:{port}"
    token_uri, universe = base + "/token", config.universe_domain or DEFAULT_UNIVERSE
    if config.universe_domain:  # what clients derive there
        base, token_uri = f"https://compute.{universe}", universe_token_uri(universe)
    runtime = app.extensions["gstack"]
    with write_session(runtime.factory) as session:
        key_path = ensure_demo_credentials(session, config.data_dir, token_uri, universe)
    context = None
    if config.tls:
        certificate = (tls_.Certificate(config.tls_cert, config.tls_key or config.tls_cert) if config.tls_cert else
                       tls_.ensure_server_certificate(config.data_dir, tls_.server_names(host, config.universe_domain)))
        context = tls_.server_context(certificate)
    server = PooledWSGIServer(host, port, app, ssl_context=context)
    servers = [server]
    if config.proxy_port:  # the intercepting proxy (gstack/intercept.py) serves the same app on its own thread
        servers.append(InterceptingServer(host, config.proxy_port, app, config.data_dir))
        threading.Thread(target=servers[-1].serve_forever, name="proxy", daemon=True).start()
    stop_guest_metadata = guest_metadata(runtime, base)
    settle()
    click.echo(serve_banner(config, base, key_path, port), err=True)

    def stop(*_) -> None:
        for each in servers:
            threading.Thread(target=each.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()
        runtime.drivers.shutdown()  # netns VMs and bridges do not outlive the server
        if stop_guest_metadata:
            stop_guest_metadata()


def guest_metadata(runtime, issuer: str):
    """The metadata server of netns guests (their routers' proxies reach it on a Unix socket), where
    this machine can run them; the function that stops it, or None."""
    from core.hypervisors.netns import links
    from gstack.metadata.guests import serve_guests

    if "netns" not in runtime.drivers or links.missing_tools():
        return None
    return serve_guests(runtime.factory, runtime.drivers.get("netns").metadata_socket, issuer)


def serve_banner(config, base: str, key_path: str, port: int) -> str:
    """What ``gstack serve`` prints: where it serves and the configuration each client needs."""
    from gstack.bootstrap import ADMIN_USER, admin_password_path
    from gstack.tls import CA_CERT
    from gstack.universe import hosts as universe_hosts

    ca = os.path.join(config.data_dir, CA_CERT) if config.tls and not config.tls_cert else ""
    lines = [f"gstack is serving the GCE v1 API at {base}/compute/v1/",
             f"  database: {config.database_url.split('@')[-1]}",
             f"  credentials: {key_path} (service account key, owner of demo-project)",
             f"  sign-in: {ADMIN_USER}, password in {admin_password_path(config.data_dir)}"]
    if ca:
        lines.append(f"  TLS: certificates from the CA {ca} (also: gstack admin ca export)")
    elif config.tls:
        lines.append(f"  TLS: the certificate {config.tls_cert}")
    if config.proxy_port:
        lines += proxy_banner(config, key_path)
    if config.universe_domain:
        hosts = " ".join(universe_hosts(config.universe_domain))
        lines += ["", f"Universe {config.universe_domain}: resolve its hosts to this server (/etc/hosts or DNS):",
                  f"  127.0.0.1 {hosts}"]
        if port != 443:
            lines.append(f"  and map port 443 to {port} (e.g. iptables -t nat -A OUTPUT -p tcp -d 127.0.0.1 "
                         f"--dport 443 -j REDIRECT --to-ports {port})")
        # gcloud checks the universe's descriptor with a bare requests call, blind to custom_ca_certs_file
        lines += ["Point gcloud at it:"] + ([f"  gcloud config set core/custom_ca_certs_file {ca}"] if ca else [])
        lines.append(f"  {f'REQUESTS_CA_BUNDLE={ca} ' if ca else ''}gcloud config set core/universe_domain "
                     f"{config.universe_domain}")
        lines += ["  gcloud config set core/project demo-project",
                  "  gcloud config set core/check_gce_metadata false",
                  "  gcloud config set compute/zone us-central1-a",
                  f"  gcloud auth activate-service-account --key-file {key_path}",
                  "Client libraries: GOOGLE_CLOUD_UNIVERSE_DOMAIN=" + config.universe_domain
                  + (f" REQUESTS_CA_BUNDLE={ca} HTTPLIB2_CA_CERTS={ca} NODE_EXTRA_CA_CERTS={ca}" if ca else "")
                  + f" GOOGLE_APPLICATION_CREDENTIALS={key_path}", ""]
        return "\n" + "\n".join(lines)
    lines += ["", "Point gcloud at it:",
              f"  gcloud config set api_endpoint_overrides/compute {base}/compute/v1/",
              f"  gcloud config set auth/token_host {base}/token"]
    lines += [f"  gcloud config set core/custom_ca_certs_file {ca}"] if ca else []
    lines += ["  gcloud config set core/project demo-project",
              "  gcloud config set core/check_gce_metadata false",
              "  gcloud config set compute/zone us-central1-a",
              f"  gcloud auth activate-service-account --key-file {key_path}",
              "or sign in as a user" + ("" if config.tls else " (over plain HTTP gcloud also needs "
                                                               "OAUTHLIB_INSECURE_TRANSPORT=1)") + ":",
              f"  gcloud config set auth/auth_host {base}/o/oauth2/auth",
              "  gcloud auth login", ""]
    return "\n" + "\n".join(lines)


def proxy_banner(config, key_path: str) -> list[str]:
    """The lines for clients that reach gstack through its intercepting proxy."""
    from gstack.tls import CA_CERT

    ca = os.path.join(config.data_dir, CA_CERT)
    return ["", f"Intercepting proxy for clients that hard-code Google's hosts (Ansible, libcloud, Node): "
                f"port {config.proxy_port}",
            f"  HTTPS_PROXY=http://127.0.0.1:{config.proxy_port} REQUESTS_CA_BUNDLE={ca} SSL_CERT_FILE={ca} "
            f"NODE_EXTRA_CA_CERTS={ca} "
            f"GOOGLE_APPLICATION_CREDENTIALS={key_path}"]


@main.command()
@click.option("--data-dir", default=None)
@click.option("--threads", default=4, show_default=True, type=int)
def worker(data_dir: str | None, threads: int) -> None:
    """Run job workers only (scale out: several workers on one PostgreSQL database)."""
    from core.hypervisors.registry import default_registry
    from core.jobs import JobEngine
    from core.jobs.retention import start_retention
    from core.services.autoscalers import start_autoscaler
    from core.services.host_monitor import start_host_monitor
    from core.services.instance_group_managers.monitor import start_autoheal_monitor
    from core.services.resource_policies.scheduler import start_policy_scheduler
    from core.systemvms.watchdog import start_watchdog

    config = settings(data_dir)
    secure_data_dir(config.data_dir, config.database_url)
    sessions = factory(data_dir)
    drivers = default_registry(sessions, config.sim_latency, data_dir=config.data_dir)
    engine = JobEngine(sessions, drivers, workers=threads, max_workers=max(threads, config.max_workers))
    engine.start()
    threads_: list[PeriodicRounds] = []
    if config.host_check_interval > 0:
        threads_.append(start_host_monitor(sessions, drivers, config.host_check_interval, kick=engine.kick))
    if config.systemvm_check_interval > 0:
        threads_.append(start_watchdog(sessions, drivers, config.systemvm_check_interval,
                                       zone_vms=config.systemvm_zone_vms, kick=engine.kick))
    if config.autoheal_check_interval > 0:
        threads_.append(start_autoheal_monitor(sessions, config.autoheal_check_interval, kick=engine.kick))
    if config.autoscaler_interval > 0:
        threads_.append(start_autoscaler(sessions, drivers, config.autoscaler_interval, config.autoscaler_stabilization))
    if config.policy_check_interval > 0:
        threads_.append(start_policy_scheduler(sessions, config.policy_check_interval, kick=engine.kick))
    if config.operation_retention > 0:
        threads_.append(start_retention(sessions, config.operation_retention))
    settle()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"gstack worker {engine.owner} running {threads} threads", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    for thread in threads_:
        thread.stop()
    engine.stop()


main.add_command(admin)
main.add_command(db)
main.add_command(metadata)


if __name__ == "__main__":
    main()
