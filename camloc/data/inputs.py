"""What a batch run reads: files as given, folders walked recursively, ``@list.txt`` files of paths."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import UsageError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def expand_inputs(items: Iterable[str]) -> list[str]:
    """Files as given, folders walked recursively (image extensions, sorted), ``@list.txt`` read line by line.

    Missing paths are kept: they become error entries like any unreadable file.

    Example:
        >>> expand_inputs(["examples/images"])[:1]
        ['examples/images/cat.jpg']
    """
    out: list[str] = []
    for item in items:
        if item.startswith("@"):
            listing = Path(item[1:])
            if not listing.is_file():
                raise UsageError(f"{listing}: no such list file")
            with open(listing, encoding="utf-8") as fh:
                out.extend(line.strip() for line in fh if line.strip() and not line.startswith("#"))
        elif os.path.isdir(item):
            found = [os.path.join(root, f) for root, _, files in os.walk(item) for f in files
                     if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
            out.extend(sorted(found))
        else:
            out.append(item)
    return out
