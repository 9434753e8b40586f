"""Datasets in the wsolevaluation metadata layout (PROTOCOLS.md section 4).

A metadata folder holds comma-separated text files, one record per line, image paths relative to
the image root: ``image_ids.txt``, ``class_labels.txt``, ``image_sizes.txt`` and
``localization.txt`` (boxes ``id,x0,y0,x1,y1``, several lines per image allowed). Files may lack a
final newline. Every malformed line is reported with its file and line number.

``image_sizes.txt`` may be empty, as wsolevaluation's OpenImages metadata ships it: a sample's size
is then ``None`` (unknown) until its image is read (:func:`image_size`), as the reference evaluator
reads every image and mask at its own size. A file that lists some images but not all is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..utils.errors import CamlocError, ImageError


class MetadataError(CamlocError):
    """A metadata file is missing or has a malformed line."""


@dataclass(frozen=True)
class Sample:
    """One image of a dataset: its id (a path relative to the image root) and annotations.

    ``width`` and ``height`` are the original image size in pixels, or ``None`` when the split's
    ``image_sizes.txt`` is empty (the size then comes from the image itself).
    """

    image_id: str
    label: int
    width: int | None
    height: int | None
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

    An empty ``image_sizes.txt`` (wsolevaluation's OpenImages metadata) leaves every size ``None``:
    evaluation then takes each image's own size.

    Raises:
        MetadataError: naming the file and line of a malformed record, an id without a label, an
            ``image_sizes.txt`` that lists some images but not all, or a box outside its image.
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
    if sizes:
        missing = [image_id for image_id in ids if image_id not in sizes]
        if missing:
            raise MetadataError(
                f"{root / 'image_sizes.txt'}: sizes for {len(ids) - len(missing)} of {len(ids)} images (none for "
                f"{missing[0]}): give every image its size, or leave it empty to take sizes from the images"
            )
    samples = []
    for image_id in ids:
        if image_id not in labels:
            raise MetadataError(f"{root / 'class_labels.txt'}: no line for image {image_id}")
        w, h = sizes.get(image_id, (None, None))
        samples.append(Sample(image_id, labels[image_id], w, h, tuple(boxes.get(image_id, ())),
                              tuple(masks.get(image_id, ())), tuple(dict.fromkeys(ignores.get(image_id, ())))))
    return samples


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, without decoding the pixels.

    The size is the one after its EXIF orientation, as camloc's reader,
    :func:`camloc.data.imaging.load_image`, sees it.

    Raises:
        ImageError: the file is missing or not an image.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except FileNotFoundError as exc:
        raise ImageError(path, "no such file; check the image root (--images)") from exc
    except Exception as exc:  # noqa: BLE001 - PIL raises many types on broken data
        raise ImageError(path, f"cannot read its size ({type(exc).__name__}: {exc}); "
                               "re-encode or replace the file") from exc
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
