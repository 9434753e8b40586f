"""Tests of camloc.viz (the layout of tests/ mirrors the package)."""
