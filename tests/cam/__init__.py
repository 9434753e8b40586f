"""Tests of camloc.cam (the layout of tests/ mirrors the package)."""
