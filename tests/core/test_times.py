"""GCE's timestamps (``core.ids.rfc3339``): millisecond RFC 3339 in US Pacific time. The function
works out each minute's date and offset once; what it prints must be what the time zone database
says for every instant, across the daylight saving changes and at the rounding edges."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from core.ids import rfc3339

_PACIFIC = ZoneInfo("America/Los_Angeles")


def _reference(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, _PACIFIC)
    off = dt.strftime("%z")
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}" + off[:3] + ":" + off[3:]


_SPRING_2024, _FALL_2024 = 1710064800, 1730624400  # 2024-03-10 02:00 PST, 2024-11-03 01:00 PST


@settings(max_examples=3000, deadline=None)
@given(st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False))
def test_any_instant_prints_as_the_time_zone_says(ts):
    assert rfc3339(ts) == _reference(ts)


def test_the_offset_changes_on_the_hour_of_each_daylight_saving_change():
    assert rfc3339(_SPRING_2024 - 0.001) == "2024-03-10T01:59:59.999-08:00"
    assert rfc3339(_SPRING_2024) == "2024-03-10T03:00:00.000-07:00"
    assert rfc3339(_FALL_2024 - 0.001) == "2024-11-03T01:59:59.999-07:00"  # the hour again, in PST
    assert rfc3339(_FALL_2024) == "2024-11-03T01:00:00.000-08:00"
    for edge in (_SPRING_2024, _FALL_2024, _FALL_2024 - 3600):
        for step in range(-3000, 3000, 7):
            ts = edge + step / 1000
            assert rfc3339(ts) == _reference(ts), ts


def test_microseconds_round_as_datetime_rounds_them():
    """Half a microsecond up, or one below a whole second: the millisecond and second it falls in."""
    for ts in (1494135397.4479995, 995746832.9779994, 1e9 + 0.9999995, 59.9999999, 0.0, 1796410027.8596246):
        assert rfc3339(ts) == _reference(ts), ts
