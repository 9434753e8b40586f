"""The documentation site's machinery (mkdocs.yml, docs/hooks.py, docs/griffe_camloc.py), without a full build.

CI builds the site with ``mkdocs build --strict`` (``.ci/run``); these tests check the parts that
decide what it contains: the command-line reference is generated from the click group, the
docstring check finds what is missing, every executed notebook reaches the nav, the import-level
table is the one ``tests/test_layout.py`` enforces, and every public name has an API page.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import logging
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load("camloc_docs_hooks", DOCS / "hooks.py")


def _mkdocs_config():
    from mkdocs.config import load_config

    return load_config(str(ROOT / "mkdocs.yml"))


# ------------------------------------------------------------------------------------ the CLI page

def test_cli_page_is_generated_from_every_subcommand():
    import click
    import markdown

    from camloc.cli import main

    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert re.search(r"^::: mkdocs-click\n(    :.*\n)*    :module: camloc\.cli\n", page, flags=re.M)
    assert "    :command: main\n" in page
    config = _mkdocs_config()  # the site's own Markdown extensions, mkdocs-click among them
    html = markdown.Markdown(extensions=config["markdown_extensions"], extension_configs=config["mdx_configs"]).convert(page)
    ctx = click.Context(main, info_name="camloc")
    names = main.list_commands(ctx)
    assert len(names) >= 8  # the group is read, not a copy of it
    for name in names:
        command = main.get_command(ctx, name)
        assert re.search(rf'<h3 id="camloc-{re.escape(name)}">camloc {re.escape(name)}<', html), f"no section for camloc {name}"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                for opt in param.opts:
                    assert opt in html, f"camloc {name}: option {opt} missing from the page"


def test_every_page_is_in_the_nav():
    def pages(nav):
        for item in nav:
            values = item.values() if isinstance(item, dict) else [item]
            for value in values:
                if isinstance(value, list):
                    yield from pages(value)
                else:
                    yield value

    listed = set(pages(_mkdocs_config()["nav"]))
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "notebooks" not in p.parts}
    assert on_disk - listed == set(), "pages missing from the nav in mkdocs.yml (mkdocs build --strict fails)"
    assert listed - on_disk == set()


# ------------------------------------------------------------------------------------ docstrings

def _fake_module() -> types.ModuleType:
    fake = types.ModuleType("fake")

    def documented():
        """Has one."""

    def bare():
        pass

    class Good:
        """A documented class."""

        def method(self):
            """Documented."""

        def _private(self):
            pass

        def __repr__(self):
            return "Good()"

    class Holes:
        """A class with undocumented public members."""

        def method(self):
            pass

        @property
        def prop(self):
            return 1

        @staticmethod
        def static():
            pass

        @classmethod
        def klass(cls):
            pass

        @functools.cached_property
        def cached(self):
            return 2

        def documented(self):
            """Fine."""

    class Child(Good):
        """Inherits ``method`` (documented where it is defined): nothing to report here."""

    @dataclasses.dataclass
    class Record:
        value: int = 0

    class Undocumented:
        pass

    fake.documented, fake.bare, fake.Good, fake.Holes = documented, bare, Good, Holes
    fake.Child, fake.Record, fake.Undocumented, fake.CONSTANT = Child, Record, Undocumented, 3
    fake.__all__ = ["documented", "bare", "Good", "Holes", "Child", "Record", "Undocumented", "CONSTANT"]
    return fake


def test_docstring_check_names_every_missing_docstring():
    assert hooks.missing_docstrings(_fake_module()) == [
        "fake.Holes.method", "fake.Holes.prop", "fake.Holes.static", "fake.Holes.klass", "fake.Holes.cached",
        "fake.Record",  # dataclass() makes up a signature as __doc__: that is no docstring
        "fake.Undocumented", "fake.bare",
    ]


def test_docstring_check_passes_a_documented_module():
    fake = _fake_module()
    assert hooks.missing_docstrings(fake, ["documented", "Good", "Child", "CONSTANT"]) == []


def test_public_api_problems_stop_the_build(tmp_path):
    fake = _fake_module()
    fake._LAZY = {"bare": ("mod", "bare"), "documented": ("mod", "documented")}
    fake.__all__ = ["bare", "documented", "CONSTANT"]
    (tmp_path / "page.md").write_text("# API\n\n::: fake.mod.documented\n", encoding="utf-8")
    problems = hooks.public_api_problems(fake, tmp_path)
    assert problems == ["1 public objects have no docstring: fake.bare",
                        f"2 public names are on no page of {tmp_path} (add a '::: module.name' line): "
                        "CONSTANT (fake.CONSTANT), bare (fake.mod.bare)"]
    (tmp_path / "page.md").write_text("# API\n\n::: fake.mod.documented\n\n::: fake.mod.bare\n\n`CONSTANT` is 3.\n")
    assert hooks.public_api_problems(fake, tmp_path) == ["1 public objects have no docstring: fake.bare"]


def test_every_public_name_of_camloc_is_on_an_api_page():
    import camloc

    assert hooks.undocumented_names(camloc, DOCS / "api") == []
    # and every page entry exists: each ::: identifier names a public object or a camloc module
    public = set(hooks.public_objects(camloc).values())
    for identifier in hooks.rendered_identifiers(DOCS / "api"):
        module_path = ROOT / Path(*identifier.split("."))
        assert identifier in public or module_path.with_suffix(".py").exists() or module_path.is_dir(), identifier


# ------------------------------------------------------------------------------------ notebooks

def _notebook(path: Path, heading: str | None) -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [f"# {heading}\n", "\n", "Text."]}] if heading else []
    cells.append({"cell_type": "code", "metadata": {}, "execution_count": 1, "outputs": [], "source": ["1 + 1"]})
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")


def test_nav_lists_every_executed_notebook(tmp_path):
    config = _mkdocs_config()
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "02_evaluation.ipynb", "Evaluating on a WSOL split")
    _notebook(notebooks / "01_first-boxes.ipynb", None)
    _notebook(notebooks / "03_methods.ipynb", "CAM against Grad-CAM")
    (notebooks / "03_methods.error.txt").write_text("not a notebook")
    config["docs_dir"] = str(tmp_path)
    hooks.add_notebooks(config)
    section = [item["Notebooks"] for item in config["nav"] if isinstance(item, dict) and "Notebooks" in item]
    assert section == [[{"01 first boxes": "notebooks/01_first-boxes.ipynb"},
                         {"Evaluating on a WSOL split": "notebooks/02_evaluation.ipynb"},
                         {"CAM against Grad-CAM": "notebooks/03_methods.ipynb"}]]
    # the notebooks the nav lists are the ones mkdocs-jupyter renders (not executed again)
    jupyter = config["plugins"]["mkdocs-jupyter"].config
    assert jupyter["execute"] is False
    assert any(Path("notebooks/01_first-boxes.ipynb").match(pattern) for pattern in jupyter["include"])


def test_no_notebook_is_a_warning_that_strict_turns_into_a_failure(tmp_path, caplog):
    config = _mkdocs_config()
    assert config["strict"] is True
    config["docs_dir"] = str(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mkdocs"):
        assert hooks.add_notebooks(config) == []
    assert any(r.levelno == logging.WARNING and "no executed notebook" in r.getMessage() for r in caplog.records)
    assert logging.getLogger("mkdocs.hooks.camloc").parent.name.startswith("mkdocs")  # counted by --strict


def test_every_example_notebook_would_reach_the_nav(tmp_path):
    sources = sorted((ROOT / "examples" / "notebooks").glob("*.ipynb"))
    if not sources:
        pytest.skip("no notebook in examples/notebooks yet")
    (tmp_path / "notebooks").mkdir()
    for source in sources:
        (tmp_path / "notebooks" / source.name).write_bytes(source.read_bytes())
    entries = hooks.notebook_nav(tmp_path)
    assert [list(e.values())[0] for e in entries] == [f"notebooks/{s.name}" for s in sources]
    assert all(list(e)[0] for e in entries)


# ------------------------------------------------------------------------------------ layout page

def test_import_level_table_is_the_one_test_layout_enforces():
    layout_test = ROOT / "tests" / "test_layout.py"
    levels = hooks.import_levels(layout_test)
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        enforced = _load("camloc_test_layout_levels", layout_test).LEVELS
    finally:
        sys.path.remove(str(ROOT / "tests"))
    assert levels == [tuple(names) for names in enforced]
    table = hooks.levels_table(levels)
    lines = table.splitlines()
    assert len(lines) == 2 + len(levels)
    for i, names in enumerate(levels):
        assert lines[2 + i].startswith(f"| {i} | ")
        for name in names:
            assert f"`{name}`" in lines[2 + i]
    page = (DOCS / "layout.md").read_text(encoding="utf-8")
    assert hooks.LEVELS_MARKER in page
    rendered = hooks.on_page_markdown(page, None, {"config_file_path": str(ROOT / "mkdocs.yml")}, None)
    assert table in rendered and hooks.LEVELS_MARKER not in rendered


def test_layout_page_names_every_part_of_the_package():
    page = (DOCS / "layout.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "camloc").iterdir()):
        if path.name.startswith("_") or path.name.endswith(".egg-info") or path.name == "__pycache__":
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            assert f"`camloc/{path.name}/`" in page, f"docs/layout.md does not describe camloc/{path.name}/"
        elif path.suffix == ".py":
            assert re.search(rf"`(camloc/)?{re.escape(path.name)}`|`{path.stem}`", page), \
                f"docs/layout.md does not describe camloc/{path.name}"


# ------------------------------------------------------------------------------------ docstring rendering

griffe_camloc = _load("camloc_docs_griffe", DOCS / "griffe_camloc.py")


def test_examples_and_sphinx_roles_are_read_as_napoleon_does():
    text = "Find it.\n\nReturns:\n    A :class:`~camloc.cam.heads.HeadSpec`; see :meth:`Settings.rows`.\n\nExample:\n    >>> f()\n    [0]"
    assert griffe_camloc.camloc_docstring(text) == (
        "Find it.\n\nReturns:\n    A `HeadSpec`; see `Settings.rows`.\n\nExamples:\n    >>> f()\n    [0]")
    assert griffe_camloc.camloc_docstring("Args:\n    x: an Example: not a heading.") == "Args:\n    x: an Example: not a heading."


def test_camloc_docstrings_parse_as_the_site_renders_them():
    import griffe

    config = _mkdocs_config()
    python = config["plugins"]["mkdocstrings"].config["handlers"]["python"]
    options = python["options"]
    loader = griffe.GriffeLoader(
        extensions=griffe.load_extensions(*[str(e) for e in options["extensions"]]),
        search_paths=[str(ROOT)], docstring_parser=griffe.Parser(options["docstring_style"]),
        docstring_options=options["docstring_options"],
    )
    module = loader.load("camloc.cam.analysis")
    sections = {s.kind.value: s for s in module["analyze"].docstring.parsed}
    returns = sections["returns"].value
    assert len(returns) == 1 and returns[0].name == ""  # one wrapped description, not three items named "A"
    assert returns[0].description.startswith("A `HeadSpec`; ")
    settings = loader.load("camloc.eval.protocols")["Settings"]
    parsed = {s.kind.value: s for s in settings.members["rows"].docstring.parsed}
    assert "examples" in parsed and "admonition" not in parsed
