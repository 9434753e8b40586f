"""Every example in camloc's docstrings runs and shows what it says it shows.

The examples are collected with :mod:`doctest` from every module of the package and run from the
project's root (they name files such as ``examples/images/cat.jpg`` relative to it), with ``...``
standing for any text and runs of whitespace treated as one space.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "camloc"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__" and ">>>" in path.read_text(encoding="utf-8"):
            names.append(".".join(parts))
    return names


@pytest.mark.parametrize("name", _module_names())
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("CAMLOC_QUIET", "1")
    module = importlib.import_module(name)
    failures: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, name) if t.examples]
    assert tests, f"{name} mentions '>>>' but doctest finds no example in it"
    for test in tests:
        runner.run(test, out=failures.append)
    assert not failures, "".join(failures)
