"""When a resource policy is due: snapshot schedule slots and instance schedule cron times.

Pure functions of a policy's body and an instant (epoch seconds), so the scheduler can be asked
"what was due at T" for any T: the periodic thread passes the wall clock, ``gstack admin
resource-policies run --at T`` an instant of the operator's choosing (how the tests run a week of
schedules in seconds).

Snapshot schedules follow GCE's documented rules, in UTC: an hourly schedule starts every
``hoursInCycle`` hours from its ``startTime`` (counted from that time on 1970-01-01, so a cycle that
divides 24 starts at the same times every day), a daily one every day at ``startTime``, a weekly
one on each listed day at that day's ``startTime``. A slot missed (the process was down) is not made
up: only the latest slot counts, as GCE takes one snapshot when its window comes round.

Instance schedules use unix-cron (``minute hour day-of-month month day-of-week``: ``*``, lists,
ranges, ``/`` steps, names of months and days) in the policy's ``timeZone``; when both day fields
are restricted a day matching either one matches, as in cron.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo as TimeZone

from core.resources.store import Body

HOUR, DAY = 3600, 86400
WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
_START = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def start_hour(value: str) -> int | None:
    """The hour of a ``HH:MM`` start time, or None when it is not one."""
    m = _START.match(value)
    return int(m.group(1)) * 60 + int(m.group(2)) if m else None


def _minutes(value: str) -> int:
    minutes = start_hour(value)
    if minutes is None:
        raise ValueError(value)
    return minutes


def last_slot(schedule: Body, now: float) -> float:
    """The latest scheduled start at or before ``now`` of a snapshot schedule (a validated one)."""
    if "hourlySchedule" in schedule:
        cycle = schedule["hourlySchedule"]
        period = int(cycle["hoursInCycle"]) * HOUR
        offset = _minutes(cycle["startTime"]) * 60
        return offset + ((now - offset) // period) * period
    if "dailySchedule" in schedule:
        cycle = schedule["dailySchedule"]
        period = int(cycle.get("daysInCycle", 1)) * DAY
        offset = _minutes(cycle["startTime"]) * 60
        return offset + ((now - offset) // period) * period
    best = float("-inf")
    day_start = (now // DAY) * DAY
    for entry in schedule["weeklySchedule"]["dayOfWeeks"]:
        weekday = WEEKDAYS.index(entry["day"])
        for back in range(8):  # this week's day or last week's
            start = day_start - back * DAY
            slot = start + _minutes(entry["startTime"]) * 60
            if dt.datetime.fromtimestamp(start, dt.UTC).weekday() == weekday and slot <= now:
                best = max(best, slot)
                break
    return best


# -- cron -----------------------------------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                        "nov", "dec"), 1)}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NONE: dict[str, int] = {}
_FIELDS = ((0, 59, _NONE), (0, 23, _NONE), (1, 31, _NONE), (1, 12, _MONTHS), (0, 7, _DAYS))


@dataclass(frozen=True)
class Cron:
    """A parsed unix-cron expression: the minutes, hours, days, months and weekdays (0 = Sunday)
    it fires on, and whether each day field was restricted (cron's either-day rule)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    def day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays


def _value(token: str, names: dict[str, int]) -> int:
    token = token.lower()
    if token in names:
        return names[token]
    if not token.isdigit():
        raise ValueError(token)
    return int(token)


def _field(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(part)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            first, last = _value(a, names), _value(b, names)
        else:
            first = _value(base, names)
            last = high if step else first
        if not low <= first <= last <= high:
            raise ValueError(part)
        out.update(range(first, last + 1, step or 1))
    return frozenset(out)


def parse_cron(expr: str) -> Cron:
    """The expression parsed; ValueError when it is not five valid cron fields."""
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(expr)
    values = [_field(text, low, high, names) for text, (low, high, names) in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in values[4])  # 7 is Sunday too
    return Cron(values[0], values[1], values[2], values[3], weekdays, parts[2] == "*", parts[4] == "*")


def _times_of(cron: Cron, day: dt.date, tz: TimeZone, reverse: bool) -> list[float]:
    if not cron.day_matches(day):
        return []
    out = [dt.datetime(day.year, day.month, day.day, h, m, tzinfo=tz).timestamp()
           for h in cron.hours for m in cron.minutes]
    return sorted(out, reverse=reverse)


def previous_fire(cron: Cron, tz: TimeZone, now: float, horizon_days: int = 366 * 5) -> float | None:
    """The latest time at or before ``now`` the expression fires (None within the horizon)."""
    today = dt.datetime.fromtimestamp(now, tz).date()
    for back in range(horizon_days):
        for t in _times_of(cron, today - dt.timedelta(days=back), tz, reverse=True):
            if t <= now:
                return t
    return None


def next_fire(cron: Cron, tz: TimeZone, now: float, horizon_days: int = 366 * 5) -> float | None:
    """The earliest time after ``now`` the expression fires (None within the horizon)."""
    today = dt.datetime.fromtimestamp(now, tz).date()
    for ahead in range(horizon_days):
        for t in _times_of(cron, today + dt.timedelta(days=ahead), tz, reverse=False):
            if t > now:
                return t
    return None


def parse_rfc3339(value: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp (ValueError when it is not one)."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(value)
    return parsed.timestamp()
