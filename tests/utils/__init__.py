"""Tests of camloc.utils (the layout of tests/ mirrors the package)."""
