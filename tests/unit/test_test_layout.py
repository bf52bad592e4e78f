"""The test tree's own layout: no test module imports from another test module; shared helpers
live in tests/helpers (or a conftest)."""

from __future__ import annotations

import ast
import pathlib

TESTS = pathlib.Path(__file__).resolve().parents[1]


def _is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def imported_test_modules(source: str, package: str) -> list[str]:
    """The ``test_*`` modules that ``source`` (a module of ``package``) imports from, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            if _is_test_module(module):
                found.append(module)
            else:  # from tests.api import test_networks
                found += [f"{module}.{a.name}" for a in node.names if a.name.startswith("test_")]
    return found


def test_no_test_module_imports_another():
    offenders = []
    for path in sorted(TESTS.rglob("test_*.py")):
        package = ".".join(path.relative_to(TESTS.parent).parent.parts)
        offenders += [f"{path.relative_to(TESTS.parent)} imports {m}"
                      for m in imported_test_modules(path.read_text(), package)]
    assert offenders == []


def test_the_check_sees_every_spelling():
    source = ("from tests.api.test_networks import done\n"
              "import tests.api.test_disks\n"
              "from tests.api import test_projects\n"
              "from .test_images import make\n"
              "def f():\n    from ..hypervisors.test_libvirt_lifecycle import body\n"
              "from tests.helpers.networks import done\n"
              "from tests.conftest import unique\n")
    assert imported_test_modules(source, "tests.api") == [
        "tests.api.test_networks", "tests.api.test_disks", "tests.api.test_projects", "tests.api.test_images",
        "tests.hypervisors.test_libvirt_lifecycle"]
