"""Tests of camloc.cli (the layout of tests/ mirrors the package)."""
