"""Helpers several test modules share.

Test modules import from here (or from a conftest), never from one another: a helper inside a
``test_*`` module ties its importers to a module that changes for its own tests' sake, and hides
which of its names are tests and which are tools. tests/unit/test_test_layout.py keeps it so.
"""

import pytest

# Their asserts fail with pytest's detailed messages, as they did inside the test modules.
pytest.register_assert_rewrite(*(f"tests.helpers.{name}" for name in ("compute", "core", "libvirt", "networks", "oauth")))
