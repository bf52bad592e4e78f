"""``.. api-coverage::``: the compute v1 methods and whether gstack implements them.

Generated at build time from the code's own route table: every method of the discovery document
(``gstack.gce.discovery.methods()``) is a route, and a method is implemented when a handler is
registered for it (``gstack.api.HANDLERS``); the others answer Google's UNIMPLEMENTED error.
"""

from __future__ import annotations

from collections import defaultdict

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def coverage() -> dict[str, list[tuple[str, str, str, bool]]]:
    """Collection -> [(method id, HTTP method, path, implemented)], from the running code."""
    from gstack.api import HANDLERS
    from gstack.gce.discovery import methods

    out: dict[str, list[tuple[str, str, str, bool]]] = defaultdict(list)
    for m in methods():
        out[m.resource].append((m.id, m.http_method, m.path, m.id in HANDLERS))
    return dict(sorted(out.items()))


def _literal(text: str) -> str:
    return "``" + text + "``"


def coverage_rst() -> list[str]:
    table = coverage()
    total = sum(len(v) for v in table.values())
    done = sum(ok for v in table.values() for *_, ok in v)
    lines = [f"gstack implements **{done}** of the **{total}** methods of compute v1 "
             f"({len(table)} collections).", "",
             ".. list-table:: Collections", "   :header-rows: 1", "   :widths: 40 20 20", "",
             "   * - collection", "     - implemented", "     - methods"]
    for resource, rows in table.items():
        lines += [f"   * - `{resource}`_", f"     - {sum(ok for *_, ok in rows)}", f"     - {len(rows)}"]
    lines.append("")
    for resource, rows in table.items():
        lines += [resource, "-" * len(resource), "",
                  ".. list-table::", "   :header-rows: 1", "   :widths: 35 10 45 10", "",
                  "   * - method", "     - HTTP", "     - path", "     - status"]
        for method_id, http, path, ok in rows:
            lines += [f"   * - {_literal(method_id)}", f"     - {http}", f"     - {_literal(path)}",
                      "     - implemented" if ok else "     - not implemented"]
        lines.append("")
    return lines


class ApiCoverage(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(coverage_rst(), source="api-coverage"), container)
        return container.children


def setup(app):
    app.add_directive("api-coverage", ApiCoverage)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
