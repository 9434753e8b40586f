"""Package namespaces whose names are imported on first use, so importing a package costs nothing.

A package lists its public names as ``{name: (module, attribute)}`` and takes its ``__getattr__``
and ``__dir__`` from :func:`lazy_namespace`; ``import camloc.eval`` then loads none of its
modules, and ``camloc.eval.Settings`` imports ``camloc.eval.protocols`` the first time it is read.
This is how ``camloc score`` reaches the scorer without loading torch (PEP 562).

Example:
    >>> import sys
    >>> getattr_, dir_ = lazy_namespace("camloc.utils", {"atomic_write_text": ("atomic", "atomic_write_text")})
    >>> getattr_("atomic_write_text").__name__
    'atomic_write_text'
    >>> dir_()
    ['atomic_write_text']
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

#: Packages whose absence means camloc is installed only in part (the camloc-runtime wheel, without torch).
PARTIAL = ("camloc", "torch", "torchvision", "timm")


def lazy_namespace(
    package: str, names: dict[str, tuple[str, str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for public names imported on first use.

    Args:
        package: the package's ``__name__``.
        names: each public name and the (module relative to ``package``, attribute) it comes from.

    Returns:
        ``(__getattr__, __dir__)``: the first looks a name up, imports its module, and stores the
        value in the package so later lookups skip it; the second lists ``names`` sorted.
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = names[name]
        try:
            loaded = importlib.import_module(f".{module}", package)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in PARTIAL:
                raise
            raise ModuleNotFoundError(
                f"{package}.{name} needs the whole camloc package (pip install camloc), which this environment lacks "
                f"({exc.name} is not installed); camloc.runtime works without it", name=exc.name) from exc
        value = getattr(loaded, attribute)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__

