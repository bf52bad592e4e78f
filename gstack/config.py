"""Settings from the environment (``GSTACK_*``). The embedded default needs none of them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from core.db import DEFAULT_POOL_MAX, sqlite_url


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "gstack")


@dataclass
class Settings:
    data_dir: str = field(default_factory=default_data_dir)
    database_url: str = ""
    db_pool_max: int = DEFAULT_POOL_MAX  # database connections per process at most (see core.db.engine_options)
    # Base URL for selfLinks; empty = the URL the caller used (what gcloud's override points at).
    base_url: str = ""
    workers: int = 4
    # job worker threads the pool may grow to under load (each job mostly waits on a hypervisor);
    # below ``workers``: no growth
    max_workers: int = 32
    run_jobs: bool = True
    seed: bool = True
    wait_timeout: float = 100.0  # operations.wait: GCE returns after at most ~2 minutes
    sim_latency: dict | float = 0.0
    log_requests: bool = True
    host_check_interval: float = 30.0  # seconds between host checks; 0 turns the monitor off
    systemvm_check_interval: float = 10.0  # seconds between system VM watchdog rounds; 0 = off
    autoheal_check_interval: float = 2.0  # seconds between autohealing rounds over managed groups; 0 = off
    # seconds between resource-policy rounds (snapshot and instance schedules); 0 = off
    policy_check_interval: float = 60.0
    systemvm_zone_vms: bool = False  # deploy a console proxy and storage VM in every zone up front
    autoscaler_interval: float = 10.0  # seconds between autoscaler rounds (CPU samples, decisions); 0 = off
    # the scale-in stabilisation window of policies that name none (GCE's is 600 s; tests shorten it)
    autoscaler_stabilization: float = 600.0
    max_request_bytes: int = 4 * 1024 * 1024  # a request body over this is refused (413) before it is read
    max_batch_bytes: int = 32 * 1024 * 1024  # the same for a whole batch (each part then meets the above)
    # a project's unfinished Operations beyond this are refused (403 rateLimitExceeded); 0 = no bound
    max_queued_operations: int = 1000
    # seconds a finished Operation is kept (GCE: at least an hour, up to 14 days); 0 = kept forever
    operation_retention: float = 86400.0
    trusted_proxies: str = ""  # addresses/networks whose X-Forwarded-* headers are believed (gstack/proxies.py)
    # HTTPS (gstack/tls.py): on with a certificate from the data directory's CA, or the operator's own
    tls: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    # a universe domain (e.g. example.internal): gstack answers as compute.UNIVERSE, links follow
    universe_domain: str = ""
    # the intercepting proxy for clients that hard-code Google's hosts (gstack/intercept.py); 0 = off
    proxy_port: int = 0

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        env = os.environ
        s = cls()
        s.data_dir = env.get("GSTACK_DATA_DIR", s.data_dir)
        s.database_url = env.get("GSTACK_DATABASE_URL", "")
        s.db_pool_max = max(1, int(env.get("GSTACK_DB_POOL_MAX", s.db_pool_max)))
        s.base_url = env.get("GSTACK_BASE_URL", "")
        s.workers = int(env.get("GSTACK_WORKERS", s.workers))
        s.max_workers = int(env.get("GSTACK_MAX_WORKERS", s.max_workers))
        s.run_jobs = env.get("GSTACK_RUN_JOBS", "1") not in ("0", "false", "no")
        s.wait_timeout = float(env.get("GSTACK_WAIT_TIMEOUT", s.wait_timeout))
        s.log_requests = env.get("GSTACK_LOG_REQUESTS", "1") not in ("0", "false", "no")
        s.host_check_interval = float(env.get("GSTACK_HOST_CHECK_INTERVAL", s.host_check_interval))
        s.systemvm_check_interval = float(env.get("GSTACK_SYSTEMVM_CHECK_INTERVAL", s.systemvm_check_interval))
        s.autoheal_check_interval = float(env.get("GSTACK_AUTOHEAL_INTERVAL", s.autoheal_check_interval))
        s.policy_check_interval = float(env.get("GSTACK_POLICY_CHECK_INTERVAL", s.policy_check_interval))
        s.systemvm_zone_vms = env.get("GSTACK_SYSTEMVM_ZONE_VMS", "0") in ("1", "true", "yes")
        s.autoscaler_interval = float(env.get("GSTACK_AUTOSCALER_INTERVAL", s.autoscaler_interval))
        s.autoscaler_stabilization = float(env.get("GSTACK_AUTOSCALER_STABILIZATION", s.autoscaler_stabilization))
        s.max_request_bytes = int(env.get("GSTACK_MAX_REQUEST_BYTES", s.max_request_bytes))
        s.max_batch_bytes = int(env.get("GSTACK_MAX_BATCH_BYTES", s.max_batch_bytes))
        s.max_queued_operations = int(env.get("GSTACK_MAX_QUEUED_OPERATIONS", s.max_queued_operations))
        s.operation_retention = float(env.get("GSTACK_OPERATION_RETENTION", s.operation_retention))
        s.trusted_proxies = env.get("GSTACK_TRUSTED_PROXIES", s.trusted_proxies)
        s.tls_cert = env.get("GSTACK_TLS_CERT", s.tls_cert)
        s.tls_key = env.get("GSTACK_TLS_KEY", s.tls_key)
        s.tls = env.get("GSTACK_TLS", "0") in ("1", "true", "yes") or bool(s.tls_cert)
        universe = env.get("GSTACK_UNIVERSE_DOMAIN", s.universe_domain).strip().strip(".").lower()
        s.universe_domain = "" if universe == "googleapis.com" else universe  # Google's own is the default
        s.proxy_port = int(env.get("GSTACK_PROXY_PORT", s.proxy_port))
        latency = env.get("GSTACK_SIM_LATENCY", "")
        if latency:
            s.sim_latency = json.loads(latency) if latency.strip().startswith("{") else float(latency)
        for key, value in overrides.items():
            if value is not None:
                setattr(s, key, value)
        s.tls = s.tls or bool(s.universe_domain)  # a universe's clients derive only https:// hosts
        if not s.database_url:
            s.database_url = sqlite_url(s.data_dir)
        return s
