"""The application factory: database, job engine, drivers, OAuth, and the route table."""

from __future__ import annotations

import io
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from functools import partial

from flask import Flask, Response, g, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException

import core.services  # noqa: F401  (registers job handlers)
import core.systemvms  # noqa: F401  (registers the system VM job handlers)
from core import migrations
from core.db import configure_engine, engine_options, write_session
from core.errors import ComputeError
from core.hypervisors import DriverRegistry
from core.hypervisors.registry import default_registry
from core.jobs import JobEngine
from core.jobs.retention import Retention, start_retention
from core.models import Base
from core.services.autoscalers import AutoscalerRounds, start_autoscaler
from core.services.host_monitor import HostMonitor, start_host_monitor
from core.services.instance_group_managers.monitor import AutohealMonitor, start_autoheal_monitor
from core.services.resource_policies.scheduler import PolicyScheduler, start_policy_scheduler
from core.services.seed import seed
from core.systemvms.watchdog import Watchdog, start_watchdog
from gstack import api, console, datadir, metrics, universe
from gstack.api.fastread import FastReads
from gstack.api.registry import run
from gstack.auth.guard import AccessCache, resource_endpoint
from gstack.auth.validator import GstackValidator
from gstack.auth.views import bp as oauth_bp
from gstack.config import Settings
from gstack.gce import batch, contract
from gstack.gce.discovery import methods
from gstack.gce.errors import error_response, from_exception
from gstack.limits import LIMIT_KEY, BodyLimit, too_large_message
from gstack.logs import log_request
from gstack.proxies import TrustedProxies, parse_networks

log = logging.getLogger("gstack.http")
# oauthlib insists on HTTPS; gstack is often served on plain loopback HTTP behind nothing.
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")


@dataclass
class Runtime:
    """What the views need beyond Flask: the database, the job engine, drivers and auth."""

    settings: Settings
    db: SQLAlchemy
    factory: sessionmaker
    drivers: DriverRegistry
    engine: JobEngine
    validator: GstackValidator
    access_cache: AccessCache = field(default_factory=AccessCache)
    host_monitor: HostMonitor | None = None
    systemvm_watchdog: Watchdog | None = None
    autoheal_monitor: AutohealMonitor | None = None
    autoscaler: AutoscalerRounds | None = None
    policy_scheduler: PolicyScheduler | None = None
    retention: Retention | None = None

    def __post_init__(self):
        self.resource_endpoint = resource_endpoint(self.validator)

    def engine_kick(self, kind: str | None = None) -> None:
        self.engine.kick(kind)

    def stop(self) -> None:
        """Stop the background threads of this process (job workers, host monitor)."""
        for thread in (self.host_monitor, self.systemvm_watchdog, self.autoheal_monitor, self.autoscaler,
                       self.policy_scheduler, self.retention):
            if thread is not None:
                thread.stop()
        self.engine.stop()


def _flask_rule(path: str) -> str:
    return "/compute/v1/" + path.replace("{", "<").replace("}", ">")


def register_routes(app: Flask) -> None:
    for method in methods():
        app.add_url_rule(_flask_rule(method.path), endpoint=method.id, view_func=partial(_view, method),
                         methods=[method.http_method])


def _view(method, **params):
    return run(method, params)


class MethodOverride:
    """``X-HTTP-Method-Override`` on a POST, as Google's front end honours it.

    google-api-python-client turns a GET whose URL exceeds 2048 bytes (a long ``filter=``) into
    ``POST`` + ``X-HTTP-Method-Override: GET`` with the query string as a form body; the request
    is served as the GET it stands for, its form body moved back into the query string."""

    VERBS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        override = (environ.get("HTTP_X_HTTP_METHOD_OVERRIDE") or "").strip().upper()
        if environ.get("REQUEST_METHOD") == "POST" and override in self.VERBS:
            environ["REQUEST_METHOD"] = override
            form = (environ.get("CONTENT_TYPE") or "").startswith("application/x-www-form-urlencoded")
            if override in ("GET", "DELETE") and form:
                try:
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                except ValueError:
                    length = 0
                body = environ["wsgi.input"].read(length).decode("latin-1") if length > 0 else ""
                environ["QUERY_STRING"] = "&".join(p for p in (environ.get("QUERY_STRING", ""), body) if p)
                environ["wsgi.input"] = io.BytesIO(b"")
                environ["CONTENT_LENGTH"] = "0"
                environ.pop("CONTENT_TYPE", None)
        return self.wsgi_app(environ, start_response)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    datadir.secure(settings.data_dir, settings.database_url)
    app = Flask(__name__)
    # ``.../zones//instances`` is not ``.../zones/instances``: no redirect to another resource's path,
    # a JSON 404 like any other unknown URL.
    app.url_map.merge_slashes = False
    app.config["GSTACK"] = settings
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(settings.database_url, settings.db_pool_max)
    app.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
    db = SQLAlchemy(model_class=Base)
    db.init_app(app)
    with app.app_context():
        engine = configure_engine(db.engine, mmap_bytes=MMAP_BYTES)
        migrations.prepare(engine)  # SchemaNotCurrent for a database behind this build
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        if settings.seed:
            with write_session(factory) as session:
                seed(session)
    drivers = default_registry(factory, settings.sim_latency, data_dir=settings.data_dir)
    job_engine = JobEngine(factory, drivers, workers=settings.workers, max_workers=settings.max_workers)
    runtime = Runtime(settings, db, factory, drivers, job_engine, GstackValidator(lambda: db.session))
    app.extensions["gstack"] = runtime
    fast = FastReads(app.wsgi_app, runtime, settings.log_requests)
    limited = BodyLimit(MethodOverride(fast), settings.max_request_bytes, settings.max_batch_bytes)
    app.wsgi_app = TrustedProxies(limited, parse_networks(settings.trusted_proxies))  # type: ignore[method-assign]
    register_routes(app)
    metrics.install(app, runtime)
    app.add_url_rule("/batch/compute/v1", "batch", partial(batch.handle, app), methods=["POST"])
    app.add_url_rule("/batch", "batch_root", partial(batch.handle, app), methods=["POST"])
    app.register_blueprint(oauth_bp)
    app.register_blueprint(universe.bp)
    console.register(app)
    _error_handlers(app)
    if settings.log_requests:
        _request_log(app)
    contract.install(app, settings.data_dir)  # off unless GSTACK_CHECK_RESPONSES is set (the tests)
    assert api.HANDLERS
    if settings.run_jobs:
        job_engine.start()
        if settings.host_check_interval > 0:
            runtime.host_monitor = start_host_monitor(factory, drivers, settings.host_check_interval,
                                                      kick=job_engine.kick)
        if settings.systemvm_check_interval > 0:
            runtime.systemvm_watchdog = start_watchdog(factory, drivers, settings.systemvm_check_interval,
                                                       zone_vms=settings.systemvm_zone_vms, kick=job_engine.kick)
        if settings.autoheal_check_interval > 0:
            runtime.autoheal_monitor = start_autoheal_monitor(factory, settings.autoheal_check_interval,
                                                              kick=job_engine.kick)
        if settings.autoscaler_interval > 0:
            runtime.autoscaler = start_autoscaler(factory, drivers, settings.autoscaler_interval,
                                                  settings.autoscaler_stabilization)
        if settings.policy_check_interval > 0:
            runtime.policy_scheduler = start_policy_scheduler(factory, settings.policy_check_interval,
                                                              kick=job_engine.kick)
        if settings.operation_retention > 0:
            runtime.retention = start_retention(factory, settings.operation_retention)
    else:  # jobs run in ``gstack worker`` processes: operations.wait hears when they finish one
        job_engine.listen()
    return app


# SQLite reads the API's pages through a memory map instead of a read() per database page: a
# 500-item list page reads ~1 MB of bodies, and measured 0.83 -> 0.44 ms per page for its query (the
# API's engine only: its reads are the large ones). The first 32 MiB of the file only: mapped pages
# that were read count in the process's RSS (as file pages the OS can drop, but they count); a map of
# the whole file showed 737 MB RSS at 100k instances after a filter scanned them all
# (bench/scale.py), 127 MB at 1k.
MMAP_BYTES = 32 << 20


def _error_handlers(app: Flask) -> None:
    @app.errorhandler(ComputeError)
    def compute_error(exc: ComputeError) -> Response:
        return from_exception(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.code == 404:
            return error_response(404, "notFound", f"The requested URL {request.path} was not found on this server.")
        if exc.code == 405:
            allowed = ", ".join(getattr(exc, "valid_methods", None) or [])
            return error_response(405, "httpMethodNotAllowed",
                                  f"Method {request.method} is not allowed for {request.path}.",
                                  headers={"Allow": allowed} if allowed else None)
        if exc.code == 413:  # a chunked body that ran past the limit (BodyLimit refused a known length)
            return error_response(413, "badRequest", too_large_message(request.environ.get(LIMIT_KEY, 0)))
        return error_response(exc.code or 500, "badRequest", exc.description or exc.name)

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Response:
        code = secrets.token_hex(6)
        log.exception("internal error %s on %s %s", code, request.method, request.path)
        return error_response(500, "backendError", f"Internal error. Please try again or contact Google Support. "
                                                   f"(Code: '{code}')")


def _request_log(app: Flask) -> None:
    """One line per request (:func:`gstack.logs.log_request`)."""

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _log(resp: Response) -> Response:
        log_request(request.method, request.path, resp.status_code,
                    (time.perf_counter() - g.get("started", time.perf_counter())) * 1000)
        return resp
