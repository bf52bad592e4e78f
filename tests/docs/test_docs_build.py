"""The documentation builds with warnings as errors, and its API coverage table is the code's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytest.importorskip("sphinx", reason="sphinx is not installed (pip install -e '.[docs]')")


def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                             "-d", str(tmp_path / "doctrees"), os.path.join(ROOT, "docs"), str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index", "quickstart", "concepts", "operators-guide", "api-coverage", "security", "architecture"):
        assert (out / f"{page}.html").exists(), page

    from gstack.api import HANDLERS
    from gstack.gce.discovery import methods

    coverage = (out / "api-coverage.html").read_text()
    implemented = [m.id for m in methods() if m.id in HANDLERS]
    missing = [m.id for m in methods() if m.id not in HANDLERS]
    assert f"gstack implements <strong>{len(implemented)}</strong> of the <strong>{len(methods())}</strong>" in coverage
    for method_id in implemented[:5] + missing[:5] + ["compute.instances.insert"]:
        assert method_id in coverage
    row = coverage.split("compute.instances.insert", 1)[1].split("</tr>", 1)[0]
    assert "implemented" in row and "not implemented" not in row


def test_state_tables_page_cells_come_from_the_tables():
    sys.path.insert(0, os.path.join(ROOT, "docs", "_ext"))
    try:
        from state_tables import cell_text
    finally:
        sys.path.pop(0)
    from core.services.instances.states import TABLE

    assert cell_text(TABLE, "TERMINATED", "start") == "→ PROVISIONING, job instances.run"
    assert cell_text(TABLE, "RUNNING", "start") == "stays"
    assert cell_text(TABLE, "TERMINATED", "reset") == "refused"
