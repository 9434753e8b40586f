"""The panels of a picture of results: which result, on which photo, where in the grid.

:func:`layout` reads what :func:`camloc.show <camloc.viz.render.show>` is given (a result, a list of
them, or ``columns`` of settings to compare) as panels row by row; :func:`read_photos` reads each
panel's photo once and checks it against its result's size. Every argument and picture is checked
here, before a figure exists.
"""

from __future__ import annotations

import numbers
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..data.imaging import load_image
from ..utils.errors import UsageError

#: Names results give in-memory inputs (no file to draw on).
IN_MEMORY = re.compile(r"<(image|tensor) \d+>")

#: A panel: ``(result, its picture or None for the result's own file, column header or None)``.
Panel = tuple[Any, Any, str | None]


def check_alpha(alpha: Any) -> None:
    """Refuse an ``alpha`` that is not an opacity from 0 to 1 (a UsageError naming the fix)."""
    if not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
        raise UsageError(f"alpha is the heat map's opacity, from 0 to 1, not {alpha!r}")


def _is_result(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("image", "width", "height", "label", "score", "class_index", "boxes", "cam"))


def _result_list(obj: Any, what: str) -> list:
    """``obj`` as a non-empty list of results, or a UsageError naming the fix."""
    if _is_result(obj) or not isinstance(obj, (list, tuple)):
        raise UsageError(f"{what} must be a list of camloc results (camloc.boxes gives one), not {type(obj).__name__}")
    if not obj:
        raise UsageError(f"nothing to draw: {what} is empty")
    for i, r in enumerate(obj):
        if isinstance(r, (list, tuple)):
            raise UsageError(f"{what}[{i}] is a list (camloc.boxes with topk or 2-D classes gives a list per image): "
                             "pass one flat list, e.g. [r for per_image in results for r in per_image]")
        if not _is_result(r):
            raise UsageError(f"{what}[{i}] is a {type(r).__name__}, not a camloc result: "
                             "pass what camloc.boxes returns")
    return list(obj)


def _sources(images: Any, n: int) -> list:
    """One picture (or None: the result's own file) per result, never silently truncated."""
    if images is None:
        return [None] * n
    if not isinstance(images, (list, tuple)):
        raise UsageError(f"images must be a list of {n} pictures, one per result (None where the result's own file "
                         f"will do), not a {type(images).__name__}")
    if len(images) != n:
        raise UsageError(f"got {len(images)} images for {n} results: give one per result, in the same order "
                         "(None where the result's own file will do)")
    return list(images)


def layout(results: Any, images: Any, columns: Any, ncols: Any) -> tuple[list[Panel], int, int]:
    """The panels, row by row, as ``(result, picture or None, column header or None)``, and the grid's shape.

    Args:
        results: a result or a list of them (or None, with ``columns``).
        images: the pictures of results of in-memory inputs (see :func:`camloc.viz.render.show`).
        columns: ``{column title: results, one per image}``, or None.
        ncols: panels per row for a list of results, or None.

    Returns:
        ``(panels, rows, columns)``.

    Raises:
        UsageError: nothing to draw, or arguments that contradict each other.
    """
    if ncols is not None and (isinstance(ncols, bool) or not isinstance(ncols, numbers.Integral) or ncols < 1):
        raise UsageError(f"ncols is the number of panels per row, a positive integer, not {ncols!r}")
    if columns is not None:
        if results is not None:
            raise UsageError("give results or columns={title: results}, not both")
        if ncols is not None:
            raise UsageError("ncols applies to a list of results; with columns, each setting is one column")
        if not isinstance(columns, Mapping) or not columns:
            raise UsageError("columns must be a non-empty dict {column title: results, one per image}")
        lists = {str(name): _result_list(rs, f"column {name!r}") for name, rs in columns.items()}
        (first, n), *_ = ((name, len(rs)) for name, rs in lists.items())
        for name, rs in lists.items():
            if len(rs) != n:
                raise UsageError(f"column {name!r} has {len(rs)} results and column {first!r} {n}: "
                                 "give one per image in each")
        sources = _sources(images, n)
        cells = [(rs[i], sources[i], name if i == 0 else None) for i in range(n) for name, rs in lists.items()]
        return cells, n, len(lists)
    if results is None:
        raise UsageError("nothing to draw: pass a result or a list of results (what camloc.boxes returns)")
    if _is_result(results):
        if isinstance(images, (list, tuple)):
            if len(images) != 1:
                raise UsageError(f"got {len(images)} images for one result: pass its picture alone")
            images = images[0]
        return [(results, images, None)], 1, 1
    rs = _result_list(results, "results")
    sources = _sources(images, len(rs))
    cols = min(4, len(rs)) if ncols is None else min(int(ncols), len(rs))
    return [(r, s, None) for r, s in zip(rs, sources, strict=True)], -(-len(rs) // cols), cols


def read_photos(cells: list[Panel]) -> list[np.ndarray]:
    """Every panel's photo (H x W x 3 uint8 RGB), each read once, checked against its result's size."""
    loaded: dict[Any, np.ndarray] = {}
    photos = []
    for i, (result, source, _) in enumerate(cells):
        if source is None and IN_MEMORY.fullmatch(str(result.image)):
            raise UsageError(
                f"result {i} ({result.image}) was computed from an in-memory image, so there is no file to draw it on: "
                "pass its picture, result.show(image=...) or camloc.show(results, images=[...]) with one PIL image, "
                "H x W x 3 uint8 array or path per result"
            )
        key = ("file", os.fspath(result.image)) if source is None else ("object", id(source))
        if key not in loaded:
            loaded[key] = _read(result.image if source is None else source)
        photo = loaded[key]
        h, w = photo.shape[:2]
        if (w, h) != (result.width, result.height):
            raise UsageError(
                f"the picture for result {i} ({result.image}) is {w}x{h} px, but the result was computed on a "
                f"{result.width}x{result.height} px image: pass the picture it was computed from"
            )
        photos.append(photo)
    return photos


def _read(source: Any) -> np.ndarray:
    """A picture as H x W x 3 uint8 RGB; a torch tensor must hold uint8 pixels (C x H x W)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(source, torch.Tensor):
        if source.dtype != torch.uint8:
            raise UsageError(f"a {source.dtype} tensor is network input, not a picture: pass uint8 pixels "
                             "(C x H x W), a PIL image, an H x W x 3 uint8 array or a path")
        source = source.detach().cpu().numpy()
    return np.asarray(load_image(source))
