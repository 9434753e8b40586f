"""The architecture holds: imports run one way (command line down to data), no circles, a fast start.

Every ``import`` in camloc, at module level or inside a function, is read with ``ast``; each camloc
module has a level (below), and no module may import one of a higher level. The import graph
between modules must have no cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PACKAGE = Path(__file__).resolve().parent.parent / "camloc"

#: Bottom to top. A module's level is that of the longest prefix listed; ``camloc`` itself is on top.
LEVELS = [
    ("camloc.utils",),
    ("camloc.data",),
    ("camloc.cam",),
    ("camloc.viz",),
    ("camloc.batch",),
    ("camloc.runtime",),
    ("camloc.models",),
    ("camloc.deploy",),
    ("camloc.eval",),
    ("camloc.train",),
    ("camloc.api",),
    ("camloc.cli", "camloc.__main__"),
]


def level(module: str) -> int:
    if module == "camloc":
        return len(LEVELS)
    best, rank = "", None
    for i, names in enumerate(LEVELS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, rank = name, i
    assert rank is not None, f"{module} has no level: add it to LEVELS in {__file__}"
    return rank


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """camloc modules imported anywhere in ``module`` (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "camloc")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "camloc":
                continue
            for alias in node.names:  # `from . import heads` names a module, `from .x import y` a name
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known}


GRAPH = {m: imports(m, p, modules()) for m, p in modules().items()}


def test_every_module_has_a_level():
    for m in GRAPH:
        level(m)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_upward_import(module):
    upward = sorted(t for t in GRAPH[module] if level(t) > level(module))
    assert not upward, f"{module} (level {level(module)}) reaches up to {upward}"


def test_no_import_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH[m]):
            if t == m:
                continue
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_the_walker_sees_relative_and_function_level_imports():
    # evaluate imports boxacc at module level; the cli imports the pipeline inside a function
    assert "camloc.eval.boxacc" in GRAPH["camloc.eval.evaluation"]
    assert "camloc.batch.pipeline" in GRAPH["camloc.cli.localize"]
    assert "camloc.cam.heads" in GRAPH["camloc.cam.analysis"]


def test_every_subpackage_says_what_it_owns():
    for m, path in modules().items():
        if path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
            assert doc and len(doc) > 40, f"{m}/__init__.py needs a docstring saying what the package owns"


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_help_does_not_import_torch():
    loaded = _loaded_after(
        "from click.testing import CliRunner\nfrom camloc.cli import main\n"
        "for args in (['--help'], ['localize', '--help'], ['evaluate', '--help'], ['finetune', '--help']):\n"
        "    assert CliRunner().invoke(main, args).exit_code == 0"
    )
    assert "torch" not in loaded


def test_score_loads_neither_torch_nor_timm(tmp_path):
    # saved maps in, numbers out: the scorer reads the metadata, the maps and the masks, nothing more
    from .helpers import synthetic_split

    meta, _, masks = synthetic_split(tmp_path)
    maps = tmp_path / "maps"
    maps.mkdir()
    for i in range(6):
        m = np.asarray(Image.open(masks / f"{i}.png").convert("L").resize((224, 224)), np.float64) / 255.0
        np.save(maps / f"{i}.png.npy", m)
    loaded = _loaded_after(
        "from click.testing import CliRunner\nfrom camloc.cli import main\n"
        f"res = CliRunner().invoke(main, ['score', '--metadata', {str(meta)!r}, '--scoremaps', {str(maps)!r},"
        f" '--masks', {str(masks)!r}, '--interval', '0.01', '--quiet', '--json'])\n"
        "assert res.exit_code == 0, res.output\n"
        "assert '\"maxboxacc_v2\": 100.0' in res.stdout, res.stdout"
    )
    assert not {"torch", "torchvision", "timm"} & loaded, sorted({"torch", "torchvision", "timm"} & loaded)


def test_import_camloc_is_light():
    loaded = _loaded_after("import camloc")
    assert not {"torch", "cv2", "numba", "matplotlib", "camloc.models.registry"} & loaded


def test_lazy_names_resolve():
    import camloc

    for name in camloc.__all__:
        assert getattr(camloc, name) is not None, name


def test_no_module_is_named_like_a_function_it_holds():
    # a package that re-exported such a function would hide the module (camloc.eval.evaluate was both)
    clash = []
    for path in PACKAGE.rglob("*.py"):
        names = {node.name for node in ast.parse(path.read_text(encoding="utf-8")).body
                 if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        if path.stem in names:
            clash.append(str(path.relative_to(PACKAGE)))
    assert not clash, clash


#: The most lines a function, a class and a module may span (a def or class from its signature to its last
#: line, decorators aside): beyond these a reader can no longer see a piece of code whole.
MAX_LINES = {"function": 60, "class": 200, "module": 500}


def test_no_function_class_or_module_is_too_long():
    kinds = {ast.FunctionDef: "function", ast.AsyncFunctionDef: "function", ast.ClassDef: "class"}
    big = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(PACKAGE))
        if len(text.splitlines()) > MAX_LINES["module"]:
            big.append(f"{where}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            kind = kinds.get(type(node))
            if kind and node.end_lineno - node.lineno + 1 > MAX_LINES[kind]:
                big.append(f"{where}: {kind} {node.name} {node.end_lineno - node.lineno + 1} lines")
    assert not big, f"split these by meaning (limits {MAX_LINES}): {big}"


def test_the_top_level_holds_only_the_entry_points():
    # every other module lives in the package of its job (utils, data, cam, viz, batch, models, eval, train, cli)
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "api.py"], top


#: Test modules that may sit directly in tests/: about the top level (camloc/api.py, the docs, the
#: examples and notebooks beside the package) or about every module at once, not one subpackage.
CROSS_CUTTING_TESTS = {
    "test_api.py", "test_api_errors.py", "test_docs.py", "test_doctests.py", "test_examples.py",
    "test_layout.py", "test_notebooks.py",
}


def test_the_tests_mirror_the_package():
    # one tests/<name>/ package per camloc subpackage; a test of one subpackage lives in its folder
    tests = Path(__file__).resolve().parent
    subpackages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    missing = [name for name in subpackages if not (tests / name / "__init__.py").is_file()]
    assert not missing, f"camloc has subpackages without a tests/<name>/ package: {missing}"
    loose = sorted(p.name for p in tests.glob("test_*.py") if p.name not in CROSS_CUTTING_TESTS)
    assert not loose, f"move these into the tests/<subpackage>/ folder of what they test: {loose}"
    strays = sorted(p.name for p in tests.iterdir() if p.is_dir() and (p / "__init__.py").is_file()
                    and p.name not in subpackages)
    assert not strays, f"test folders with no camloc subpackage of that name: {strays}"


def test_dir_shows_the_public_api_only():
    loaded = subprocess.run([sys.executable, "-c", "import camloc; print(' '.join(dir(camloc)))"],
                            capture_output=True, text=True, check=True).stdout.split()
    import camloc

    assert set(loaded) == set(camloc.__all__) | {"__version__"}
    assert not {"Any", "annotations", "importlib"} & set(loaded)
