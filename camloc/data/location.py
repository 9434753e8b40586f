"""Where the real photos live: the folder the ``CAMLOC_DATA`` environment variable names.

The research datasets with boxes and masks (``imagenet-val``, ``cub-train``, ``coco-masks``, ...) are
not shipped with camloc. The tests, benchmarks, example scripts and notebooks read them from one
folder, found by one rule (:func:`data_root`): the folder ``CAMLOC_DATA`` names. When it is unset
there is no such folder, and each caller says so in its own way: a test skips with a reason naming
``CAMLOC_DATA``, a script stops with one line (:func:`missing_data`) saying to set it or to pass the
folder on the command line, a notebook falls back to a synthetic split.

Only :mod:`os` and :mod:`pathlib` are imported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: The environment variable that names the folder of real photos.
DATA_ENV = "CAMLOC_DATA"


def data_root(*, environ: Mapping[str, str] | None = None) -> Path | None:
    """The folder of real photos ``$CAMLOC_DATA`` names, or ``None`` when it is unset.

    The folder is not checked: callers say what they need from it (a test skips when a split is
    absent, a script stops with a message).

    Args:
        environ: Where ``CAMLOC_DATA`` is looked up (default :data:`os.environ`); an empty value
            counts as unset.

    Returns:
        ``Path($CAMLOC_DATA)`` as given, or ``None``.

    Example:
        >>> data_root(environ={"CAMLOC_DATA": "/data/wsol"}).as_posix()
        '/data/wsol'
        >>> data_root(environ={}) is None
        True
    """
    value = (os.environ if environ is None else environ).get(DATA_ENV)
    return Path(value) if value else None


def missing_data(option: str | None = "--data") -> str:
    """The one line a script stops with when it has no folder of real photos.

    Args:
        option: The script's command-line option that names the folder (or a split inside it);
            ``None`` for a script that reads ``CAMLOC_DATA`` alone.

    Returns:
        The message, naming ``CAMLOC_DATA`` and ``option``.

    Example:
        >>> missing_data("--folder")
        'no folder of real photos: set CAMLOC_DATA to it, or pass --folder'
        >>> missing_data(None)
        'no folder of real photos: set CAMLOC_DATA to it'
    """
    return f"no folder of real photos: set {DATA_ENV} to it" + (f", or pass {option}" if option else "")
