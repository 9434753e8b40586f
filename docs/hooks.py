"""MkDocs hooks of the camloc site (``hooks:`` in mkdocs.yml); excluded from the site itself.

* **Docstrings**: every name in ``camloc.__all__`` and every public method, function and property
  its classes define must have its own docstring, and every one of those names must be rendered on
  an API page (``::: camloc.x.y`` in ``docs/api/*.md``); otherwise the build stops, listing them.
* **Notebooks**: every ``docs/notebooks/*.ipynb`` (the executed copies
  ``python examples/notebooks/run.py --out docs/notebooks`` writes) is added to the nav under
  "Notebooks", so no name is hard-coded; an empty or missing folder is an error (``--strict`` fails)
  so that a site without its notebooks is never published silently.
* **Import levels**: ``<!-- import-levels -->`` in a page becomes the table of the package's import
  levels, read from ``LEVELS`` in ``tests/test_layout.py`` (the test that enforces them).

Example:
    >>> import types
    >>> fake = types.ModuleType("fake"); fake.__all__ = ["f"]; fake.f = lambda: None
    >>> missing_docstrings(fake)
    ['fake.f']
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import json
import logging
import re
import types
from pathlib import Path
from typing import Any, Iterable, Optional

from mkdocs.exceptions import PluginError

log = logging.getLogger("mkdocs.hooks.camloc")

#: Where the executed notebooks are, relative to docs_dir, and the nav section that lists them.
NOTEBOOKS = "notebooks"
NOTEBOOK_SECTION = "Notebooks"
#: The API reference pages, relative to docs_dir.
API_PAGES = "api"


# ----------------------------------------------------------------------------------------- docstrings

def _own_doc(obj: Any) -> Optional[str]:
    """The docstring written for ``obj`` itself (not inherited, not made up by ``dataclass``)."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return None
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
        return None  # dataclass() writes the signature as __doc__ when there is none
    return doc


def _unwrap(member: Any) -> Optional[Any]:
    """The function behind a class member (method, static/class method, property), else None."""
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    elif isinstance(member, property):
        member = member.fget
    elif isinstance(member, functools.cached_property):
        member = member.func
    member = inspect.unwrap(member) if callable(member) else member
    return member if inspect.isfunction(member) else None


def missing_docstrings(module: types.ModuleType, names: Optional[Iterable[str]] = None) -> list[str]:
    """Public objects of ``module`` without a docstring of their own, as ``module.Name[.member]``.

    ``names`` defaults to ``module.__all__``. Classes and functions must have a docstring; so must
    every public (no leading underscore) method, static or class method and property a public class
    defines itself. Constants are skipped (they cannot carry a docstring at run time).

    Example:
        >>> import types
        >>> fake = types.ModuleType("fake"); fake.__all__ = ["f"]; fake.f = lambda: None
        >>> missing_docstrings(fake)
        ['fake.f']
    """
    found = []
    for name in sorted(module.__all__ if names is None else names):
        obj = getattr(module, name)
        where = f"{module.__name__}.{name}"
        if not (inspect.isclass(obj) or callable(obj)):
            continue
        if _own_doc(obj) is None:
            found.append(where)
        if inspect.isclass(obj):
            for member_name, member in vars(obj).items():
                function = None if member_name.startswith("_") else _unwrap(member)
                if function is not None and _own_doc(function) is None:
                    found.append(f"{where}.{member_name}")
    return found


def public_objects(package: types.ModuleType) -> dict[str, str]:
    """Each public name of camloc -> the dotted path the API pages render it by (``camloc.api.boxes``)."""
    lazy = {name: f"{package.__name__}.{module}.{attr}" for name, (module, attr) in package._LAZY.items()}
    out = {}
    for name in package.__all__:
        if name in lazy:
            out[name] = lazy[name]
        else:  # imported eagerly in camloc/__init__.py: render it where it is defined
            obj = getattr(package, name)
            module = getattr(obj, "__module__", None) if (inspect.isclass(obj) or callable(obj)) else None
            out[name] = f"{module}.{name}" if module else f"{package.__name__}.{name}"
    return out


def rendered_identifiers(api_dir: Path) -> set[str]:
    """Every ``::: identifier`` of mkdocstrings in the Markdown files under ``api_dir``."""
    found = set()
    for page in sorted(api_dir.rglob("*.md")):
        found.update(re.findall(r"^:::\s+(\S+)", page.read_text(encoding="utf-8"), flags=re.M))
    return found


def undocumented_names(package: types.ModuleType, api_dir: Path) -> list[str]:
    """Public names of ``package`` that no API page renders; a constant may be named in prose instead."""
    pages = sorted(Path(api_dir).rglob("*.md"))
    shown = rendered_identifiers(Path(api_dir))
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    missing = []
    for name, path in sorted(public_objects(package).items()):
        if path in shown:
            continue
        obj = getattr(package, name)
        if not (inspect.isclass(obj) or callable(obj)) and f"`{name}`" in text:
            continue  # a constant, named in a page's prose
        missing.append(f"{name} ({path})")
    return missing


# ----------------------------------------------------------------------------------------- notebooks

def notebook_title(path: Path) -> str:
    """The notebook's first Markdown heading, else its file name made readable."""
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError) as error:
        raise PluginError(f"{path}: not a readable notebook ({error}); run examples/notebooks/run.py again") from error
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", []))
            match = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", source, flags=re.M)
            if match:
                return match.group(1)
    return Path(path).stem.replace("_", " ").replace("-", " ").capitalize()


def notebook_nav(docs_dir: Path) -> list[dict[str, str]]:
    """Nav entries for every executed notebook in ``docs_dir/notebooks``, in file-name order."""
    pages = sorted((Path(docs_dir) / NOTEBOOKS).glob("*.ipynb"))
    return [{notebook_title(p): f"{NOTEBOOKS}/{p.name}"} for p in pages]


def _replace_section(nav: list, title: str, entries: list) -> bool:
    """Put ``entries`` under the nav section ``title`` (searched at any depth); False if there is none."""
    for item in nav:
        if isinstance(item, dict) and title in item:
            item[title] = entries
            return True
        if isinstance(item, dict):
            for value in item.values():
                if isinstance(value, list) and _replace_section(value, title, entries):
                    return True
    return False


# ----------------------------------------------------------------------------------------- import levels

#: The marker a page writes where the import-level table goes.
LEVELS_MARKER = "<!-- import-levels -->"


def import_levels(layout_test: Path) -> list[tuple[str, ...]]:
    """``LEVELS`` of ``tests/test_layout.py``, bottom to top, read with ``ast`` (nothing is imported)."""
    tree = ast.parse(Path(layout_test).read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(target, ast.Name) and target.id == "LEVELS" for target in targets):
            return [tuple(names) for names in ast.literal_eval(node.value)]
    raise PluginError(f"{layout_test} defines no LEVELS list: the architecture page reads its import levels there")


def levels_table(levels: list[tuple[str, ...]]) -> str:
    """A Markdown table of the import levels: each level's modules and the levels they may import."""
    rows = ["| level | modules | may import camloc modules of |", "|---|---|---|"]
    for i, names in enumerate(levels):
        allowed = "level 0" if i == 0 else f"levels 0 to {i}"
        rows.append(f"| {i} | {', '.join(f'`{n}`' for n in names)} | {allowed} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------- the hooks

def add_notebooks(config: Any) -> list[dict[str, str]]:
    """Put every executed notebook under the nav's Notebooks section (appended if the nav has none).

    An empty or missing ``docs/notebooks`` is logged as a warning, which ``--strict`` turns into a
    failed build; ``mkdocs serve`` without the notebooks still works.
    """
    docs_dir = Path(config["docs_dir"])
    entries = notebook_nav(docs_dir)
    if not entries:
        log.warning(f"no executed notebook in {docs_dir / NOTEBOOKS}: run "
                    "python examples/notebooks/run.py --out docs/notebooks first (--strict fails on this)")
    if config["nav"] is not None and not _replace_section(config["nav"], NOTEBOOK_SECTION, entries):
        config["nav"].append({NOTEBOOK_SECTION: entries})
    return entries


def public_api_problems(package: types.ModuleType, api_dir: Path) -> list[str]:
    """What stops the build: public objects without docstrings, public names on no API page."""
    problems = []
    missing = missing_docstrings(package)
    if missing:
        problems.append(f"{len(missing)} public objects have no docstring: " + ", ".join(missing))
    unrendered = undocumented_names(package, api_dir)
    if unrendered:
        problems.append(f"{len(unrendered)} public names are on no page of {api_dir} "
                        "(add a '::: module.name' line): " + ", ".join(unrendered))
    return problems


def on_config(config: Any) -> Any:
    """Fill the Notebooks section of the nav; stop on missing docstrings or unrendered public names."""
    add_notebooks(config)
    problems = public_api_problems(importlib.import_module("camloc"), Path(config["docs_dir"]) / API_PAGES)
    if problems:
        raise PluginError("; ".join(problems))
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Put the import-level table of ``tests/test_layout.py`` where a page asks for it."""
    if LEVELS_MARKER not in markdown:
        return markdown
    layout_test = Path(config["config_file_path"]).parent / "tests" / "test_layout.py"
    return markdown.replace(LEVELS_MARKER, levels_table(import_levels(layout_test)))
