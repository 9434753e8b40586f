"""Tests of camloc.train (the layout of tests/ mirrors the package)."""
