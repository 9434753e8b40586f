"""Datasets in the wsolevaluation metadata layout (PROTOCOLS.md section 4).

A metadata folder holds comma-separated text files, one record per line, image paths relative to
the image root: ``image_ids.txt``, ``class_labels.txt``, ``image_sizes.txt`` and
``localization.txt`` (boxes ``id,x0,y0,x1,y1``, several lines per image allowed). Files may lack a
final newline. Every malformed line is reported with its file and line number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..errors import CamlocError


class MetadataError(CamlocError):
    """A metadata file is missing or has a malformed line."""


@dataclass(frozen=True)
class Sample:
    """One image of a dataset: its id (a path relative to the image root) and annotations."""

    image_id: str
    label: int
    width: int
    height: int
    boxes: tuple[tuple[float, float, float, float], ...] = field(default_factory=tuple)
    masks: tuple[str, ...] = field(default_factory=tuple)
    ignore: tuple[str, ...] = field(default_factory=tuple)


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    if not path.is_file():
        raise MetadataError(f"{path}: missing metadata file")
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if line:
                yield number, [part.strip() for part in line.split(",")]


def _ints(path: Path, number: int, parts: list[str], count: int, kind=int) -> list:
    if len(parts) != count:
        raise MetadataError(f"{path}:{number}: expected {count} comma-separated fields, got {len(parts)}")
    try:
        return [parts[0]] + [kind(p) for p in parts[1:]]
    except ValueError as exc:
        raise MetadataError(f"{path}:{number}: {exc}") from exc


def read_dataset(metadata: str | os.PathLike, check_boxes: bool = True) -> list[Sample]:
    """Read a split: one :class:`Sample` per line of ``image_ids.txt``, in order.

    ``localization.txt`` holds boxes (``id,x0,y0,x1,y1``) or masks (``id,mask.png,ignore.png``,
    the ignore path possibly empty); a separate ``mask_localization.txt`` adds masks to a box split.
    Several lines per image give several boxes or mask instances.

    Raises:
        MetadataError: naming the file and line of a malformed record, an id without a label or
            size, or a box outside its image.
    """
    root = Path(metadata)
    ids = [parts[0] for _, parts in _lines(root / "image_ids.txt")]
    labels = {}
    for number, parts in _lines(root / "class_labels.txt"):
        image_id, label = _ints(root / "class_labels.txt", number, parts, 2)
        labels[image_id] = label
    sizes = {}
    for number, parts in _lines(root / "image_sizes.txt"):
        image_id, w, h = _ints(root / "image_sizes.txt", number, parts, 3)
        sizes[image_id] = (w, h)
    boxes: dict[str, list] = {}
    masks: dict[str, list] = {}
    ignores: dict[str, list] = {}
    for name in ("localization.txt", "mask_localization.txt"):
        loc = root / name
        if name == "mask_localization.txt" and not loc.is_file():
            continue
        for number, parts in _lines(loc):
            if len(parts) == 3:
                masks.setdefault(parts[0], []).append(parts[1])
                if parts[2]:
                    ignores.setdefault(parts[0], []).append(parts[2])
                continue
            image_id, x0, y0, x1, y1 = _ints(loc, number, parts, 5, float)
            if check_boxes and image_id in sizes:
                w, h = sizes[image_id]
                if not (0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h):
                    raise MetadataError(f"{loc}:{number}: box {x0, y0, x1, y1} lies outside its {w}x{h} image")
            boxes.setdefault(image_id, []).append((x0, y0, x1, y1))
    samples = []
    for image_id in ids:
        for table, what in ((labels, "class_labels.txt"), (sizes, "image_sizes.txt")):
            if image_id not in table:
                raise MetadataError(f"{root / what}: no line for image {image_id}")
        w, h = sizes[image_id]
        samples.append(Sample(image_id, labels[image_id], w, h, tuple(boxes.get(image_id, ())),
                              tuple(masks.get(image_id, ())), tuple(dict.fromkeys(ignores.get(image_id, ())))))
    return samples
