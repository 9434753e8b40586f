"""Tests of camloc.data (the layout of tests/ mirrors the package)."""
