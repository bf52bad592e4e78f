"""Identifiers and times in GCE's formats."""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import secrets
import time
from datetime import datetime
from zoneinfo import ZoneInfo

_PACIFIC = ZoneInfo("America/Los_Angeles")


def new_uid() -> int:
    """A random unsigned id below 2**63 (fits a signed BIGINT), never 0."""
    return secrets.randbits(63) or 1


def operation_name(now: float | None = None) -> str:
    """``operation-<epoch ms>-<13 hex>-<8 hex>-<8 hex>``, the shape GCE uses."""
    ms = int((now if now is not None else time.time()) * 1000)
    return f"operation-{ms}-{secrets.token_hex(7)[:13]}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def rfc3339(ts: float) -> str:
    """Millisecond RFC 3339 in US Pacific time, as the real service prints it.

    The date, hour, minute and offset are those of the timestamp's minute, worked out once per
    minute (a request prints several, each cost ~25 µs through the time zone): the offset changes
    only on the hour."""
    frac, whole = math.modf(ts)
    seconds, micros = int(whole), round(frac * 1e6)  # as datetime.fromtimestamp rounds (half even)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    elif micros < 0:
        seconds, micros = seconds - 1, micros + 1_000_000
    head, offset = _minute(seconds // 60)
    return f"{head}{seconds % 60:02d}.{micros // 1000:03d}{offset}"


@functools.lru_cache(maxsize=128)
def _minute(minute: int) -> tuple[str, str]:
    dt = datetime.fromtimestamp(minute * 60, _PACIFIC)
    off = dt.strftime("%z")
    return dt.strftime("%Y-%m-%dT%H:%M:"), off[:3] + ":" + off[3:]


def fingerprint(content: object) -> str:
    """8 bytes of SHA-256 over the canonical content, URL-safe base64 (gcloud re-encodes it so)."""
    import orjson

    raw = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:8]).decode()


def fingerprint_matches(given: str | None, current: str) -> bool:
    """Compare by decoded bytes, so standard and URL-safe base64 of the same value both match."""
    if given is None:
        return False

    def decode(v: str) -> bytes:
        try:
            return base64.urlsafe_b64decode(v.replace("+", "-").replace("/", "_") + "==")
        except (ValueError, TypeError):
            return b"\x00invalid" + v.encode()

    return secrets.compare_digest(decode(given), decode(current))
