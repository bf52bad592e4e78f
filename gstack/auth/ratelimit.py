"""Failure-based rate limits: failed sign-ins, failed token requests and rejected API credentials.

Only failures count, so a busy but well-behaved client is never slowed down, while guessing
passwords, codes or tokens is. Who is limited, and why so:

- API calls and token requests: failures count per caller address and per credential presented
  (the digest of the token or assertion). The credential is always checked first, and a valid one
  is always served: failures from one source (a broken client behind the same proxy, an attacker)
  never lock out a valid credential. Only the refusal of an invalid one becomes 429 instead of 401.
  Tokens, refresh tokens, codes and keys are 256-bit secrets: a limit there bounds the noise, not
  the guessing, which is hopeless anyway.
- Passwords can be guessed, so a sign-in from a source over its limit is refused without looking at
  the password, right or wrong. Failures count per (account, address), with a backoff: each time that
  pair runs over its limit again, its window doubles (up to 64 times); per address over all accounts
  (password spraying), with a higher limit; and per account over all addresses, with a limit high
  enough (``LOGIN_ACCOUNT``: 500 an hour) that one attacker cannot lock the real user out, who signs
  in from another address. A correct password clears its (account, address) failures.

The caller address is the client's, behind a reverse proxy too (GSTACK_TRUSTED_PROXIES,
:mod:`gstack.proxies`). Counters live in this process (a sliding window per key): with N API
processes behind a load balancer an attacker gets N times the limit.

Limits are ``GSTACK_AUTH_<KIND>_LIMIT`` failures per ``GSTACK_AUTH_<KIND>_WINDOW`` seconds, with
KIND one of LOGIN (per account and address), LOGIN_ADDRESS, LOGIN_ACCOUNT, TOKEN, API.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass

from gstack.metrics import count_refusal

DEFAULTS = {"login": (10, 300.0), "login_address": (100, 300.0), "login_account": (500, 3600.0),
            "token": (60, 60.0), "api": (120, 60.0)}
BACKOFF = frozenset({"login"})  # kinds whose window doubles each time a key runs over its limit again
MAX_DOUBLINGS = 6


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
    """Sliding-window failure counters keyed by strings such as ``login:ip:1.2.3.4``.

    A backoff kind locks a key when it reaches its limit, for the window; a failure while the key
    is still remembered (within twice its last lock after it ended) locks it again at once, for
    twice as long. A key that stays clean that long starts afresh."""

    def __init__(self, max_keys: int = 100_000):
        self.limits = {kind: Limit.from_env(kind) for kind in DEFAULTS}
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}
        self._locks: dict[str, tuple[float, int, float]] = {}  # backoff keys: (locked until, times locked, for)
        self._lock = threading.Lock()

    def _recent(self, key: str, limit: Limit, now: float) -> deque[float] | None:
        events = self._events.get(key)
        while events and events[0] <= now - limit.window:
            events.popleft()
        return events

    def _backoff(self, key: str, now: float) -> tuple[float, int]:
        until, strikes, duration = self._locks.get(key, (0.0, 0, 0.0))
        if strikes and now > until + 2 * duration:
            del self._locks[key]  # clean for twice its last lock: forgotten
            return 0.0, 0
        return until, strikes

    def blocked(self, kind: str, *keys: str) -> float:
        """Seconds to wait before trying again if any key is over its limit, else 0."""
        limit, now = self.limits[kind], time.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                full = f"{kind}:{key}"
                if kind in BACKOFF:
                    wait = max(wait, self._backoff(full, now)[0] - now)
                    continue
                events = self._recent(full, limit, now)
                if events and len(events) >= limit.failures:
                    wait = max(wait, events[0] + limit.window - now)
        return wait

    def fail(self, kind: str, *keys: str) -> None:
        limit, now = self.limits[kind], time.monotonic()
        with self._lock:
            if len(self._events) >= self.max_keys:
                self._events.clear()  # a flood of distinct keys: forget rather than grow without bound
                self._locks.clear()
            for key in keys:
                full = f"{kind}:{key}"
                events = self._recent(full, limit, now)
                if events is None:
                    events = self._events[full] = deque()
                events.append(now)
                if len(events) > limit.failures:
                    events.popleft()
                if kind in BACKOFF:
                    _, strikes = self._backoff(full, now)
                    if strikes or len(events) >= limit.failures:
                        lock = limit.window * 2 ** min(strikes, MAX_DOUBLINGS)
                        self._locks[full] = (now + lock, strikes + 1, lock)
                        events.clear()

    def forgive(self, kind: str, *keys: str) -> None:
        """A success (a correct password) clears those keys' failures."""
        with self._lock:
            for key in keys:
                self._events.pop(f"{kind}:{key}", None)
                self._locks.pop(f"{kind}:{key}", None)

    @staticmethod
    def refused(kind: str) -> None:
        """Count a 429 answered because of ``kind``'s limit (``gstack_ratelimit_refusals_total``)."""
        count_refusal(kind)


LIMITER = FailureLimiter()
