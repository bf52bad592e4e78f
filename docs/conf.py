"""Sphinx configuration of the gstack documentation (``sphinx-build -W docs docs/_build``)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))  # api_coverage: the coverage table, from the route table
sys.path.insert(0, os.path.dirname(HERE))  # gstack itself, for that table

project = "gstack"
author = "gstack developers"
copyright = "2026, gstack developers"
extensions = ["api_coverage", "state_tables"]
exclude_patterns = ["_build"]
templates_path: list[str] = []
html_title = "gstack"
try:
    import furo  # noqa: F401

    html_theme = "furo"
except ImportError:  # the docs still build with Sphinx's default theme
    html_theme = "alabaster"
