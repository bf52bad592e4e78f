"""``.. state-table:: module.path:NAME``: a resource's state table, drawn from the code's own table.

Each row is a status, each column an action; a cell reads ``→ STATUS`` (the status taken at once),
the job that carries the action out, ``stays`` (allowed, with no status change and no job: GCE's
no-op answers, or a change of the body alone) or ``refused``
(the table's exact Google error). Being generated, the page cannot drift from the code.
"""

from __future__ import annotations

import importlib

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from core.resources.states import StateTable


def cell_text(table: StateTable, status: str, action: str) -> str:
    """How the page shows one cell."""
    move = table.cell(status, action)
    if move is None:
        return "refused"
    if move.is_noop:
        return "stays"
    parts = [f"→ {move.status}"] if move.status else []
    if move.job:
        parts.append(f"job {move.job}")
    return ", ".join(parts)


def _table_of(target: str) -> StateTable:
    module, _, name = target.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not isinstance(found, StateTable):
        raise ValueError(f"{target} is not a StateTable")
    return found


def _row(texts: list[str], header: bool = False) -> nodes.row:
    row = nodes.row()
    for text in texts:
        entry = nodes.entry()
        entry += nodes.paragraph(text=text) if not header else nodes.strong(text=text)
        row += entry
    return row


class StateTableDirective(SphinxDirective):
    """Renders one :class:`~core.resources.states.StateTable`, actions as rows, statuses as columns
    (a table has few statuses and many actions; this way it fits the page)."""

    required_arguments = 1
    option_spec = {"actions": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        table = _table_of(self.arguments[0])
        actions = self.options.get("actions", "").split() or list(table.actions)
        group = nodes.tgroup(cols=len(table.statuses) + 1)
        for _ in range(len(table.statuses) + 1):
            group += nodes.colspec(colwidth=1)
        head = nodes.thead()
        head += _row(["action \\ status", *table.statuses], header=True)
        group += head
        body = nodes.tbody()
        for action in actions:
            body += _row([action, *(cell_text(table, status, action) for status in table.statuses)])
        group += body
        out = nodes.table(classes=["state-table"])
        out += nodes.title(text=f"The {table.kind} state table")
        out += group
        return [out]


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("state-table", StateTableDirective)
    return {"parallel_read_safe": True}
