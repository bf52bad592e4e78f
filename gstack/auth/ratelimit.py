"""Failure-based rate limits: failed sign-ins, failed token requests and rejected API credentials.

Only failures count, so a busy but well-behaved client is never slowed down, while guessing
passwords, codes or tokens is. Failures count per caller address, and sign-in failures also per
account. Counters live in this process (a sliding window per key): with N
API processes behind a load balancer an attacker gets N times the limit, still far too few tries
to matter against 256-bit tokens, and enough to stop password guessing.

Limits are ``GSTACK_AUTH_<KIND>_LIMIT`` failures per ``GSTACK_AUTH_<KIND>_WINDOW`` seconds, with
KIND one of LOGIN, TOKEN, API.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass

DEFAULTS = {"login": (10, 300.0), "token": (60, 60.0), "api": (120, 60.0)}


@dataclass(frozen=True)
class Limit:
    failures: int
    window: float

    @classmethod
    def from_env(cls, kind: str) -> Limit:
        failures, window = DEFAULTS[kind]
        prefix = f"GSTACK_AUTH_{kind.upper()}_"
        return cls(int(os.environ.get(prefix + "LIMIT", failures)), float(os.environ.get(prefix + "WINDOW", window)))


class FailureLimiter:
    """Sliding-window failure counters keyed by strings such as ``login:ip:1.2.3.4``."""

    def __init__(self, max_keys: int = 100_000):
        self.limits = {kind: Limit.from_env(kind) for kind in DEFAULTS}
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, limit: Limit, now: float) -> deque[float] | None:
        events = self._events.get(key)
        while events and events[0] <= now - limit.window:
            events.popleft()
        return events

    def blocked(self, kind: str, *keys: str) -> float:
        """Seconds to wait before trying again if any key is over its limit, else 0."""
        limit, now = self.limits[kind], time.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                events = self._recent(f"{kind}:{key}", limit, now)
                if events and len(events) >= limit.failures:
                    wait = max(wait, events[0] + limit.window - now)
        return wait

    def fail(self, kind: str, *keys: str) -> None:
        limit, now = self.limits[kind], time.monotonic()
        with self._lock:
            if len(self._events) >= self.max_keys:
                self._events.clear()  # a flood of distinct keys: forget rather than grow without bound
            for key in keys:
                events = self._recent(f"{kind}:{key}", limit, now)
                if events is None:
                    events = self._events[f"{kind}:{key}"] = deque()
                events.append(now)
                if len(events) > limit.failures:
                    events.popleft()

    def forgive(self, kind: str, *keys: str) -> None:
        """A success (a correct password) clears that account's failures."""
        with self._lock:
            for key in keys:
                self._events.pop(f"{kind}:{key}", None)


LIMITER = FailureLimiter()
