"""Tests of camloc.eval (the layout of tests/ mirrors the package)."""
