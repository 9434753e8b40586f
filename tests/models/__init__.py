"""Tests of camloc.models (the layout of tests/ mirrors the package)."""
