"""The state-table mechanism itself: refused cells raise the table's errors, events that a status
cannot take are bugs, and a table cannot name statuses or actions it does not have."""

from __future__ import annotations

import pytest

from core.errors import ComputeError, ResourceNotReady
from core.resources.states import STAY, IllegalMove, Move, StateTable


def _refuse(path: str, status: str, action: str) -> ComputeError:
    return ResourceNotReady(f"{path} is {status}: cannot {action}")


def _busy(path: str, status: str, action: str) -> ComputeError:
    return ResourceNotReady(f"{path} is busy")


TABLE = StateTable("lamp", ["OFF", "ON", "BROKEN"], ["switch_on", "switch_off", "burnt"],
                   {("OFF", "switch_on"): Move("ON", "lamps.light"), ("ON", "switch_on"): STAY,
                    ("ON", "switch_off"): Move("OFF"), ("ON", "burnt"): Move("BROKEN")},
                   _refuse, refusals={("BROKEN", "switch_on"): _busy})


def test_moves_and_noops():
    assert TABLE.move("l1", "OFF", "switch_on") == Move("ON", "lamps.light")
    assert TABLE.move("l1", "ON", "switch_on").is_noop
    assert not TABLE.move("l1", "ON", "switch_off").is_noop


def test_refusals_carry_the_tables_errors():
    with pytest.raises(ResourceNotReady, match="l1 is OFF: cannot switch_off"):
        TABLE.move("l1", "OFF", "switch_off")
    with pytest.raises(ResourceNotReady, match="l1 is busy"):
        TABLE.move("l1", "BROKEN", "switch_on")


def test_events_a_status_cannot_take_are_bugs():
    assert TABLE.event("ON", "burnt") == Move("BROKEN")
    with pytest.raises(IllegalMove):
        TABLE.event("OFF", "burnt")
    with pytest.raises(IllegalMove):
        TABLE.cell("MELTED", "switch_on")
    with pytest.raises(IllegalMove):
        TABLE.cell("ON", "paint")


def test_a_table_names_only_its_own_statuses_and_actions():
    with pytest.raises(ValueError, match="outside"):
        StateTable("x", ["A"], ["go"], {("B", "go"): STAY}, _refuse)
    with pytest.raises(ValueError, match="unknown statuses"):
        StateTable("x", ["A"], ["go"], {("A", "go"): Move("Z")}, _refuse)
