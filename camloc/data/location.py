"""Where the real photos live: the folder ``CAMLOC_DATA`` names, else ``shared/data`` beside the project.

The research datasets with boxes and masks (``imagenet-val``, ``cub-train``, ``coco-masks``, ...) are
not shipped with camloc. The tests, benchmarks, example scripts and notebooks read them from one
folder, found by one rule (:func:`data_root`): the folder the ``CAMLOC_DATA`` environment variable
names, else ``<project root>/../shared/data``, the ``shared/data`` folder beside the checkout.

Only :mod:`os` and :mod:`pathlib` are imported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: The environment variable that names the folder of real photos.
DATA_ENV = "CAMLOC_DATA"


def project_root() -> Path | None:
    """The camloc checkout this package is imported from, or ``None`` for an installed copy.

    The checkout is the folder above the ``camloc`` package when it holds ``pyproject.toml`` (a git
    clone, installed with ``pip install -e .`` or put on ``sys.path``); a wheel installed into
    site-packages has no project beside it.

    Returns:
        The project's root folder (absolute), or ``None``.
    """
    root = Path(__file__).resolve().parent.parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def data_root(project: Path | str | None = None, *, environ: Mapping[str, str] | None = None) -> Path:
    """The folder of real photos: ``$CAMLOC_DATA``, else ``shared/data`` beside the project.

    The folder is not checked: callers say what they need from it (a test skips when a split is
    absent, a benchmark stops with a message).

    Args:
        project: The project's root folder; ``shared/data`` beside it (``project/../shared/data``) is
            the default. ``None``: the checkout camloc is imported from (:func:`project_root`).
        environ: Where ``CAMLOC_DATA`` is looked up (default :data:`os.environ`); an empty value
            counts as unset.

    Returns:
        ``Path($CAMLOC_DATA)`` as given, else the absolute ``shared/data`` folder beside ``project``.

    Raises:
        FileNotFoundError: ``CAMLOC_DATA`` is unset, no ``project`` is given and camloc is installed
            without a project beside it (a wheel): there is no default folder to name.

    Example:
        >>> from pathlib import Path
        >>> data_root(Path("/src/camloc"), environ={}).as_posix()
        '/src/shared/data'
        >>> data_root(Path("/src/camloc"), environ={"CAMLOC_DATA": "/data/wsol"}).as_posix()
        '/data/wsol'
    """
    value = (os.environ if environ is None else environ).get(DATA_ENV)
    if value:
        return Path(value)
    if project is None:
        project = project_root()
        if project is None:
            raise FileNotFoundError(
                f"camloc is installed without its project beside it ({Path(__file__).resolve().parent.parent}): "
                f"set {DATA_ENV} to the folder of the real photos"
            )
    return Path(project).absolute().parent / "shared" / "data"
