"""How the files a run writes for each image are named: after the image, readable, never two alike.

An image's *stem* is its path relative to the input folder it was found in (``photos/cats/a.jpg``
under ``photos/`` gives ``cats/a``), or its file name (``a``) when it was given as a file or in a
list; the extension is dropped, and each artifact adds its own (``overlays/cats/a.png``,
``thumbs/cats/a.jpg``, ``maps/cats/a.npy``). The output folder mirrors the input folders.

Two images with the same stem (``x/a.jpg`` and ``y/a.jpg`` given as files, ``a.jpg`` and ``a.png``
in one folder; compared ignoring case, as some file systems do) are told apart in input order: the
first keeps the stem, the next ones get ``~2``, ``~3``, ... (``a``, ``a~2``). Stems already given to
images in an output folder (a resumed run, :func:`unique_stems`' ``taken``) stay theirs and are never
given to another image, so a resumed run never overwrites a finished image's files. A file name too
long for the file system keeps its start and ends in ``~`` and 16 hex digits of its SHA-1.

Example:
    >>> artifact_stems(["photos/cats/a.jpg", "photos/dogs/a.jpg", "b/a.png"], folders=["photos"])
    {'photos/cats/a.jpg': 'cats/a', 'photos/dogs/a.jpg': 'dogs/a', 'b/a.png': 'a'}
    >>> artifact_stems(["x/a.jpg", "y/a.jpg", "y/A.png"])
    {'x/a.jpg': 'a', 'y/a.jpg': 'a~2', 'y/A.png': 'A~3'}
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import PurePath

#: Longest file name, in bytes, that common file systems take (ext4, APFS, NTFS in UTF-16 units).
NAME_MAX = 255
#: Bytes of a file name kept free for what follows a stem: ``~N``, ``.class281``, the ending.
_ENDINGS_ROOM = 40


def input_stem(path: str, folders: Sequence[str] = ()) -> str:
    """An image's stem: its path relative to the first of ``folders`` it lies in, else its file name.

    The extension is dropped and the parts are joined with ``/``; a file name too long to take an
    ending is shortened (:data:`NAME_MAX`).

    Example:
        >>> input_stem("photos/cats/a.jpg", ["photos"]), input_stem("/tmp/b.png")
        ('cats/a', 'b')
    """
    full = os.path.abspath(path)
    parts: tuple[str, ...] = (os.path.basename(full),)
    for folder in folders:
        try:
            rel = os.path.relpath(full, os.path.abspath(folder))
        except ValueError:  # another drive
            continue
        if rel != os.curdir and rel != os.pardir and not rel.startswith(os.pardir + os.sep):
            parts = PurePath(rel).parts
            break
    *dirs, name = parts
    stem = os.path.splitext(name)[0] or name
    return "/".join([*dirs, _short(stem)])


def _short(name: str) -> str:
    """``name`` itself, or its start and ``~`` + 16 hex digits of its SHA-1 where it is too long for a file name."""
    budget = NAME_MAX - _ENDINGS_ROOM
    if len(name.encode("utf-8", "surrogateescape")) <= budget:
        return name
    mark = "~" + hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    head = ""
    for c in name:
        if len((head + c + mark).encode("utf-8", "surrogateescape")) > budget:
            break
        head += c
    return head + mark


def unique_stems(stems: Sequence[tuple[str, str]], taken: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{key: stem}`` with no stem given twice: in order, the first of a stem keeps it, the next get ``~2``, ``~3``.

    Args:
        stems: ``(key, wanted stem)`` per item, in input order; one key (an image) always gets one stem.
        taken: stems given before, ``{key: stem}`` (an output folder's finished images): such a key keeps
            its stem, and no other key gets it.

    Stems are compared ignoring case (``A`` and ``a`` would be one file on macOS and Windows).

    Example:
        >>> unique_stems([("new.jpg", "a"), ("old.jpg", "a")], taken={"old.jpg": "a"})
        {'new.jpg': 'a~2', 'old.jpg': 'a'}
    """
    taken = dict(taken or {})
    used = {stem.casefold() for stem in taken.values()}
    out: dict[str, str] = {}
    for key, stem in stems:
        if key in out:
            continue
        if key in taken:
            out[key] = taken[key]
            continue
        name, n = stem, 1
        while name.casefold() in used:
            n += 1
            name = f"{stem}~{n}"
        used.add(name.casefold())
        out[key] = name
    return out


def artifact_stems(paths: Sequence[str], folders: Sequence[str] = (), taken: Mapping[str, str] | None = None
                   ) -> dict[str, str]:
    """Each input path's stem (:func:`input_stem`), made unique (:func:`unique_stems`); keyed by the path as given.

    The same file under two spellings (``a.jpg``, ``./a.jpg``) gets one stem.

    Args:
        paths: the run's images, in input order (all of them, also those a resumed run skips).
        folders: the input folders they were found in.
        taken: ``{path: stem}`` recorded in the output folder before (see :func:`unique_stems`).
    """
    ident = {p: os.path.abspath(p) for p in [*paths, *(taken or {})]}
    recorded = {ident[p]: stem for p, stem in (taken or {}).items()}
    stems = unique_stems([(ident[p], input_stem(p, folders)) for p in paths], recorded)
    return {p: stems[ident[p]] for p in paths}
