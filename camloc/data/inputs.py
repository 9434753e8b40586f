"""What a batch run reads: files as given, folders walked recursively, ``@list.txt`` files of paths.

Nothing is skipped in silence: a folder (or subfolder) that cannot be listed, a folder without
images and a list file that names none are *problems*, each with its reason, which a batch run
reports as error rows next to the images' results.

Example:
    >>> import tempfile
    >>> from camloc.data.inputs import find_inputs
    >>> found = find_inputs(["examples/images"])
    >>> found.paths[:1]
    ['examples/images/cat.jpg']
    >>> find_inputs([tempfile.mkdtemp()]).problems      # an empty folder
    [('...', 'no images in this folder or below it (looked for .bmp, ...)')]
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..utils.errors import UsageError
from .metadata import text_lines

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Inputs:
    """The images a batch run will read, and the inputs that yielded none.

    Attributes:
        paths: image paths in input order (files as given, folders sorted); a missing file is kept,
            it becomes an error row like any unreadable image.
        problems: ``(input, reason)`` for each folder that could not be listed or held no image, and
            each list file that named none.
    """

    paths: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def _walk(folder: str, problems: list[tuple[str, str]]) -> list[str]:
    """Image files under ``folder`` (sorted); unlistable subfolders go to ``problems``."""

    def unreadable(exc: OSError) -> None:
        where = exc.filename or folder
        problems.append((str(where), f"cannot list this folder ({exc.strerror or exc}); check its permissions"))

    before = len(problems)
    found = [os.path.join(root, f) for root, _, files in os.walk(folder, onerror=unreadable) for f in files
             if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
    if not found and len(problems) == before:
        kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
        problems.append((folder, f"no images in this folder or below it (looked for {kinds})"))
    return sorted(found)


def find_inputs(items: Iterable[str]) -> Inputs:
    """Expand a batch run's arguments into image paths.

    Files are taken as given, folders walked recursively (image extensions, sorted), ``@list.txt``
    read line by line (blank lines and ``#`` comments skipped).

    Raises:
        UsageError: for a ``@list`` file that does not exist or cannot be read (nothing can be run
            from it), or one with a line that is not UTF-8 text (naming the line).
    """
    paths: list[str] = []
    problems: list[tuple[str, str]] = []
    for item in items:
        if item.startswith("@"):
            listing = Path(item[1:])
            if not listing.is_file():
                raise UsageError(f"{listing}: no such list file (an @ argument names a text file of image paths)")
            listed = [line for _, line in text_lines(listing, UsageError) if not line.startswith("#")]
            if not listed:
                problems.append((item, "this list file names no images"))
            paths.extend(listed)
        elif os.path.isdir(item):
            paths.extend(_walk(item, problems))
        else:
            paths.append(item)
    return Inputs(paths, problems)


def expand_inputs(items: Iterable[str]) -> list[str]:
    """:func:`find_inputs`' paths, for callers that want no partial answer.

    Raises:
        UsageError: naming the first input that yielded no images or could not be listed.

    Example:
        >>> expand_inputs(["examples/images"])[:1]
        ['examples/images/cat.jpg']
    """
    found = find_inputs(items)
    if found.problems:
        where, reason = found.problems[0]
        raise UsageError(f"{where}: {reason}")
    return found.paths
