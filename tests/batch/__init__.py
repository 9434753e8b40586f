"""Tests of camloc.batch (the layout of tests/ mirrors the package)."""
