"""Sphinx configuration of the gstack documentation."""

project = "gstack"
author = "gstack developers"
copyright = "2026, gstack developers"
extensions = []
exclude_patterns = ["_build"]
try:
    import furo  # noqa: F401

    html_theme = "furo"
except ImportError:  # the docs still build with Sphinx's default theme
    html_theme = "alabaster"
