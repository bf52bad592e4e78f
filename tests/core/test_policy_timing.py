"""The time rules of resource policies (core.services.resource_policies.timing): snapshot schedule
slots and the cron parser of instance schedules, at chosen instants."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from core.services.resource_policies import timing


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_daily_slot_is_today_or_yesterday():
    daily = {"dailySchedule": {"daysInCycle": 1, "startTime": "04:00"}}
    assert timing.last_slot(daily, at("2026-03-10T05:30:00+00:00")) == at("2026-03-10T04:00:00+00:00")
    assert timing.last_slot(daily, at("2026-03-10T03:59:59+00:00")) == at("2026-03-09T04:00:00+00:00")
    assert timing.last_slot(daily, at("2026-03-10T04:00:00+00:00")) == at("2026-03-10T04:00:00+00:00")


def test_hourly_slots_repeat_every_cycle_from_the_start_time():
    every6 = {"hourlySchedule": {"hoursInCycle": 6, "startTime": "02:00"}}
    assert timing.last_slot(every6, at("2026-03-10T09:00:00+00:00")) == at("2026-03-10T08:00:00+00:00")
    assert timing.last_slot(every6, at("2026-03-10T01:00:00+00:00")) == at("2026-03-09T20:00:00+00:00")


def test_weekly_slot_is_the_latest_listed_day():
    weekly = {"weeklySchedule": {"dayOfWeeks": [{"day": "MONDAY", "startTime": "10:00"},
                                                {"day": "THURSDAY", "startTime": "22:00"}]}}
    # 2026-03-10 is a Tuesday.
    assert timing.last_slot(weekly, at("2026-03-10T12:00:00+00:00")) == at("2026-03-09T10:00:00+00:00")
    assert timing.last_slot(weekly, at("2026-03-09T09:00:00+00:00")) == at("2026-03-05T22:00:00+00:00")
    assert timing.last_slot(weekly, at("2026-03-12T22:00:00+00:00")) == at("2026-03-12T22:00:00+00:00")


def test_cron_fields():
    cron = timing.parse_cron("*/15 8-10,20 * jan-mar mon-fri")
    assert cron.minutes == {0, 15, 30, 45} and cron.hours == {8, 9, 10, 20}
    assert cron.months == {1, 2, 3} and cron.weekdays == {1, 2, 3, 4, 5}
    assert timing.parse_cron("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    for bad in ("* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "*/0 * * * *", "a b c d e",
                "5-1 * * * *"):
        with pytest.raises(ValueError):
            timing.parse_cron(bad)


def test_cron_previous_and_next_fire_in_a_time_zone():
    paris = ZoneInfo("Europe/Paris")
    weekdays_at_8 = timing.parse_cron("0 8 * * 1-5")
    saturday_noon = at("2026-03-14T12:00:00+01:00")
    assert timing.previous_fire(weekdays_at_8, paris, saturday_noon) == at("2026-03-13T08:00:00+01:00")
    assert timing.next_fire(weekdays_at_8, paris, saturday_noon) == at("2026-03-16T08:00:00+01:00")
    # Either day field matches when both are restricted (cron's rule): the 1st, or any Sunday.
    either = timing.parse_cron("0 0 1 * sun")
    assert timing.next_fire(either, ZoneInfo("UTC"), at("2026-03-02T00:00:00+00:00")) == at("2026-03-08T00:00:00+00:00")
    assert timing.next_fire(either, ZoneInfo("UTC"), at("2026-03-29T00:00:00+00:00")) == at("2026-04-01T00:00:00+00:00")
    never = timing.parse_cron("0 0 31 2 *")  # February 31st
    assert timing.next_fire(never, ZoneInfo("UTC"), at("2026-01-01T00:00:00+00:00"), horizon_days=800) is None


def test_rfc3339():
    assert timing.parse_rfc3339("2026-03-10T04:00:00Z") == at("2026-03-10T04:00:00+00:00")
    with pytest.raises(ValueError):
        timing.parse_rfc3339("2026-03-10T04:00:00")
