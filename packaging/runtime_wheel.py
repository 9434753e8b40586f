"""Build ``camloc-runtime``: the wheel of camloc's torch-free runtime, from this checkout.

``camloc.runtime`` (:class:`~camloc.runtime.OnnxLocalizer`) runs a file of ``camloc export`` with
onnxruntime, Pillow, NumPy and OpenCV. This script packs exactly the modules it loads into a wheel of
its own, which requires those four and nothing else: no torch, no timm. The modules are found, not
listed: starting from ``camloc.runtime``, every camloc module imported at module level (imports under
``if TYPE_CHECKING:`` and inside functions are not followed), with the ``__init__`` of each package on
the way. A module that imports torch at module level is refused, so the wheel cannot carry one.

The files are camloc's own, byte for byte: ``camloc`` includes the runtime already, so install
``camloc-runtime`` only where ``camloc`` is not installed (the two own the same files).

Usage::

    python packaging/runtime_wheel.py [--out build/dist]
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "camloc"
NAME = "camloc-runtime"
#: What the runtime needs at run time (every one also a requirement of camloc or of its ``onnx`` extra).
REQUIRES = ("numpy", "pillow", "onnxruntime", "opencv-python-headless")
#: Top-level packages the wheel's modules must never import when they load.
FORBIDDEN = ("torch", "torchvision", "timm", "numba", "matplotlib")


def version() -> str:
    """The version of camloc, read from ``camloc/__init__.py`` without importing it."""
    match = re.search(r'^__version__ = "([^"]+)"', (PACKAGE / "__init__.py").read_text(encoding="utf-8"), re.M)
    if not match:
        raise SystemExit("camloc/__init__.py has no __version__")
    return match.group(1)


def module_path(module: str) -> Path:
    """The file of a camloc module (``camloc.cam.rules`` -> ``camloc/cam/rules.py``, a package -> its __init__)."""
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _loaded_imports(tree: ast.Module) -> list[ast.stmt]:
    """The import statements a module runs when it loads.

    Those at top level and in ``try`` / ``if`` blocks there, but not under ``if TYPE_CHECKING:`` and not
    inside functions or classes.
    """
    found: list[ast.stmt] = []
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
    return found


def imports(module: str) -> tuple[set[str], set[str]]:
    """``(camloc modules, other top-level packages)`` that ``module`` imports when it loads."""
    path = module_path(module)
    ours, others = set(), set()
    for node in _loaded_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            target = _resolve(module, path.name == "__init__.py", node)
            names = [target] + [f"{target}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] == "camloc":
                if module_path(name).exists():
                    ours.add(name)
            elif name:
                others.add(name.split(".")[0])
    return ours, others


def closure(start: str = "camloc.runtime") -> list[str]:
    """Every camloc module that loading ``start`` loads, with the packages above each; sorted.

    Raises:
        SystemExit: one of them imports a :data:`FORBIDDEN` package when it loads.
    """
    pending = [start, *(f"{start}.{p.stem}" for p in module_path(start).parent.glob("*.py") if p.stem != "__init__")]
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        ours, others = imports(module)
        bad = sorted(set(FORBIDDEN) & others)
        if bad:
            raise SystemExit(f"{module_path(module).relative_to(ROOT)} imports {', '.join(bad)} when it loads: "
                             "the runtime must not")
        parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        pending += sorted((ours | parents) - seen)
    return sorted(seen)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def metadata(ver: str) -> str:
    """The wheel's METADATA (core metadata 2.1)."""
    lines = [
        "Metadata-Version: 2.1", f"Name: {NAME}", f"Version: {ver}",
        "Summary: camloc's runtime: object boxes from a camloc export (ONNX) with onnxruntime, without torch",
        "License: MIT", "Requires-Python: >=3.10", *(f"Requires-Dist: {r}" for r in REQUIRES),
    ]
    return "\n".join(lines) + "\n"


def build(out: Path) -> Path:
    """Write the wheel into ``out``; returns its path."""
    ver = version()
    dist_info = f"{NAME.replace('-', '_')}-{ver}.dist-info"
    files = {module_path(m).relative_to(ROOT).as_posix(): module_path(m).read_bytes() for m in closure()}
    files[f"{dist_info}/METADATA"] = metadata(ver).encode()
    files[f"{dist_info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: camloc packaging/runtime_wheel.py\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{dist_info}/licenses/LICENSE"] = (ROOT / "LICENSE").read_bytes()
    record = "\n".join([*(_record_line(n, d) for n, d in files.items()), f"{dist_info}/RECORD,,"]) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{NAME.replace('-', '_')}-{ver}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist_info}/RECORD", record)
    return wheel


def main(argv: list[str] | None = None) -> int:
    """Build the wheel and print its path and the modules in it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "dist", help="folder for the wheel")
    args = parser.parse_args(argv)
    wheel = build(args.out)
    print(f"{wheel} ({wheel.stat().st_size / 1e3:.0f} kB): {', '.join(closure())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
