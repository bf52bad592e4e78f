"""State tables: one per stateful resource, the only place a status may change.

CloudStack keeps each VM's states in a state machine that refuses illegal moves; GCE's answers
depend on the same two things, the resource's status and what is asked of it (starting a RUNNING
instance succeeds and does nothing; resetting a TERMINATED one is refused with an exact error).
A :class:`StateTable` writes that down as data: status × action → a :class:`Move` (the status the
resource takes now, and the job that carries the action out), or a refusal. Use cases and jobs ask
the table and never compare status strings themselves, so every cell can be unit-tested and a new
action is one row, not a new ``if`` in five functions.

Actions are of two kinds, named alike: what a user asks (``start``, ``stop``, ``delete``) and what
a job reports when its work is done (``running``, ``stopped``, ``failed``). Both go through
:meth:`StateTable.move`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from core.errors import ComputeError


@dataclass(frozen=True)
class Move:
    """What one action does to a resource in one status.

    ``status`` is the status the resource takes at once, in the caller's transaction (``None``:
    it keeps its status). ``job`` names the job that carries the action out (``None``: there is
    nothing to run, and the Operation is DONE at once, as GCE's no-op answers are).
    """

    status: str | None = None
    job: str | None = None

    @property
    def is_noop(self) -> bool:
        return self.status is None and self.job is None


STAY = Move()
"""The action succeeds, the status stays and no job runs: GCE's no-op answers (start of a RUNNING
instance), or a change that touches only the body (setMachineType of a TERMINATED one)."""

Refusal = Callable[[str, str, str], ComputeError]
"""Builds the exact error for a refused cell from (resource path, status, action)."""


class IllegalMove(Exception):
    """A job reported an event its resource's status cannot take: a bug, never a user's error."""


class StateTable:
    """status × action → :class:`Move`; every cell not given is refused.

    ``refusals`` gives a cell-specific error builder, keyed like ``cells``; any other missing cell
    gets ``refuse``. A table is built once at import and is immutable.
    """

    def __init__(self, kind: str, statuses: Iterable[str], actions: Iterable[str],
                 cells: Mapping[tuple[str, str], Move], refuse: Refusal,
                 refusals: Mapping[tuple[str, str], Refusal] | None = None) -> None:
        self.kind = kind
        self.statuses: tuple[str, ...] = tuple(statuses)
        self.actions: tuple[str, ...] = tuple(actions)
        unknown = [key for key in [*cells, *(refusals or {})]
                   if key[0] not in self.statuses or key[1] not in self.actions]
        if unknown:
            raise ValueError(f"{kind}: cells outside the table: {unknown}")
        bad_targets = [m.status for m in cells.values() if m.status is not None and m.status not in self.statuses]
        if bad_targets:
            raise ValueError(f"{kind}: moves to unknown statuses: {bad_targets}")
        self._cells = dict(cells)
        self._refuse = refuse
        self._refusals = dict(refusals or {})

    def cell(self, status: str, action: str) -> Move | None:
        """The move for this cell, or ``None`` when the table refuses it."""
        self._check(status, action)
        return self._cells.get((status, action))

    def move(self, path: str, status: str, action: str) -> Move:
        """The move for ``action`` on the resource at ``path`` in ``status``; raises the exact
        :class:`ComputeError` of a refused cell."""
        found = self.cell(status, action)
        if found is None:
            raise self._refusals.get((status, action), self._refuse)(path, status, action)
        return found

    def event(self, status: str, action: str) -> Move:
        """The move a job's report makes; a refused cell is a bug (:class:`IllegalMove`)."""
        found = self.cell(status, action)
        if found is None:
            raise IllegalMove(f"{self.kind} in {status} cannot take '{action}'")
        return found

    def _check(self, status: str, action: str) -> None:
        if status not in self.statuses:
            raise IllegalMove(f"{self.kind} has no status {status!r}")
        if action not in self.actions:
            raise IllegalMove(f"{self.kind} has no action {action!r}")
