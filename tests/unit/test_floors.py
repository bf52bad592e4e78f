"""The floors of DESIGN.md, read from the code: the import-linter contracts (pyproject.toml) hold,
and no core module hides an import of another core module inside a function, where a cycle
between floors could pass unseen until the call."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The driver registry imports an optional driver only when a cluster chooses it (libvirt needs
# libvirt-python); that lazy import is the one the floors allow.
LAZY_ALLOWED = {ROOT / "core" / "hypervisors" / "registry.py"}


def _imports_inside_functions(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and ((node.module or "").startswith("core") or node.level):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {fn.name}() imports {node.module}")
            elif isinstance(node, ast.Import):
                found += [f"{path.relative_to(ROOT)}:{node.lineno} {fn.name}() imports {a.name}"
                          for a in node.names if a.name.startswith("core")]
    return found


def test_no_core_module_imports_core_inside_a_function():
    offenders = [hit for path in sorted((ROOT / "core").rglob("*.py")) if path not in LAZY_ALLOWED
                 for hit in _imports_inside_functions(path)]
    assert offenders == []


def test_the_import_contracts_hold():
    run = subprocess.run([sys.executable, "-c", "import sys, importlinter.cli as c; sys.exit(c.lint_imports(no_cache=True))"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout
