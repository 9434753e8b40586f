"""Atomic file writes: readers see the old file or the whole new one, never half of it.

A new file gets the mode an ordinary ``open(path, "w")`` would give it (``0o666`` less the process's
umask); a file that is replaced keeps its mode.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

PathLike = str | os.PathLike


def current_umask() -> int:
    """The process's umask, read without changing it where the system says it.

    That is Linux's ``/proc/self/status``; elsewhere the umask is set and restored at once.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777  # a replaced file keeps its mode
    except OSError:
        return 0o666 & ~current_umask()


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file beside ``path`` (parents created), then rename it into place.

    Example:
        >>> import os, tempfile, numpy
        >>> from camloc.utils.atomic import atomic_write
        >>> path = os.path.join(tempfile.mkdtemp(), "out", "map.npy")   # "out" does not exist yet
        >>> atomic_write(path, lambda fh: numpy.save(fh, numpy.ones((7, 7), numpy.float32)))
        >>> numpy.load(path).shape
        (7, 7)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600: give the file the mode open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically, encoded as UTF-8 (:func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"))
