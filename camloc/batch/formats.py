"""How ``camloc localize`` writes its records: an aligned table, JSON lines, CSV rows, COCO results or instances.

A record is one image's result (or error) as a dict, the same for every format; :class:`Formatter`
streams records in one format, :func:`write_records` writes a finished run's records at once. Every
format says which region of the image the model saw (``region``, ``[x0, y0, x1, y1]`` in original
pixels, and ``region_mode``, ``full`` or ``crop``): JSON lines as those keys, CSV as the columns
``region_mode`` and ``region_x0`` .. ``region_y1``, COCO as ``region_bbox`` (``[x, y, w, h]``) and
``region_mode`` in each detection, the table as its ``seen`` column under a line naming the region.
``coco-instances`` is a COCO instances file of the boxes, for training a detector on them (:class:`Formatter`).

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> write_records([{"image": "cat.jpg", "class": 281, "label": "tabby", "score": 0.5, "box": [1, 2, 30, 40],
    ...                 "boxes": [[1, 2, 30, 40]], "width": 64, "height": 48, "region": [4, 0, 60, 48],
    ...                 "region_mode": "crop"}], "csv", out)
    >>> out.getvalue().splitlines()[0].split(",")[:4]
    ['image', 'class', 'label', 'score']
    >>> out.getvalue().splitlines()[1].split(",")[10:15]     # the region the model saw: mode, x0, y0, x1, y1
    ['crop', '4', '0', '60', '48']
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from ..utils.errors import UsageError
from .results import is_no_class

#: The formats :class:`Formatter` writes.
FORMATS = ("table", "jsonl", "csv", "coco", "coco-instances")

#: Where the region the model saw goes in a CSV row.
REGION_FIELDS = ["region_x0", "region_y0", "region_x1", "region_y1"]
CSV_FIELDS = ["image", "class", "label", "score", "x0", "y0", "x1", "y1", "width", "height", "region_mode",
              *REGION_FIELDS, "exact", "method", "nwc", "standard", "model", "error"]


#: Widths of the terminal table's columns after the image path (class, label, score, box).
_LABEL_WIDTH = 22
#: Width of the table's ``seen`` column (the region the model saw, in whole pixels).
_SEEN_WIDTH = 24


def _fit(text: str, width: int, keep_end: bool = False) -> str:
    """``text`` padded to ``width``, or cut to it with an ellipsis (paths keep their end, labels their start)."""
    if len(text) <= width:
        return text.ljust(width)
    return "…" + text[len(text) - width + 1:] if keep_end else text[:width - 1] + "…"


def format_row(d: dict, image_width: int = 0) -> str:
    """One line of the readable table; columns line up when every row gets the same ``image_width``."""
    image = _fit(d["image"], max(image_width, 5), keep_end=True)
    if "error" in d:
        return f"{image}  ERROR  {d['error']}"
    if is_no_class(d):
        return f"{image}  {'-':>5}  no class scores above {d.get('score_threshold')}"
    label = _fit(str(d["label"]), _LABEL_WIDTH)
    box = "[" + ", ".join(f"{v:7.1f}" for v in d["box"]) + "]"
    method = d.get("method", "cam")
    kind = method if method != "cam" else "exact" if d["exact"] else "gradient"
    return f"{image}  {d['class']:>5}  {label}  {d['score']:5.3f}  {box}  {_seen(d):<{_SEEN_WIDTH}}  {kind}"


def _seen(d: dict) -> str:
    """The table's ``seen`` cell: ``whole image``, or the crop's ``[x0, y0, x1, y1]`` in whole pixels."""
    if "region" not in d:
        return "?"
    if d.get("region_mode") == "full":
        return "whole image"
    return "[" + ", ".join(f"{v:4.0f}" for v in d["region"]) + "]"


def table_header(image_width: int = 0) -> str:
    """The table's header line, aligned with :func:`format_row`."""
    box = "box [x0, y0, x1, y1]"
    return (f"{_fit('image', max(image_width, 5))}  {'class':>5}  {_fit('label', _LABEL_WIDTH)}  score  {box:<36}  "
            f"{'seen':<{_SEEN_WIDTH}}  map")


class Formatter:
    """Streams records as a table, JSON lines, CSV rows, one COCO detection-results array or a COCO instances file.

    CSV rows give the main box as x0..y1 and the region the model saw as region_x0..region_y1, and keep errors; the
    COCO array has ``image_id`` = path, ``category_id`` = class index, ``bbox`` = ``[x, y, w, h]``, ``score``,
    ``region_bbox`` (the region seen, ``[x, y, w, h]``) and ``region_mode`` (one detection per box, error entries
    left out). ``coco-instances`` is the file a detector's COCO loader reads: ``images`` (``id`` 1, 2, ... in
    order, ``file_name`` the path, ``width``, ``height``; an image without a box is listed too, failed ones are
    not), ``annotations`` (``id``, ``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]``, ``area`` = w h,
    ``iscrowd`` 0, ``score``) and ``categories`` (``id`` = class index + 1, as COCO's ids start at 1 and detectors
    keep 0 for the background, ``name``, ``class`` = the model's class index): every class of ``labels``, or
    without them the classes that occur. ``image_width``: the table's image column (the longest path, within
    limits), so that its columns line up although rows stream out one by one. ``seen``: what the model saw of
    each image, in words (:func:`camloc.data.imaging.region_text`), the table's first line (``model saw: ...``).

    Example:
        >>> import io, json
        >>> out = io.StringIO()
        >>> f = Formatter("coco-instances", out, labels=["cat", "dog"])
        >>> f({"image": "a.jpg", "class": 1, "label": "dog", "score": 0.9, "boxes": [[10, 20, 50, 80]],
        ...    "width": 64, "height": 96})
        >>> f.close()
        >>> coco = json.loads(out.getvalue())
        >>> coco["images"]
        [{'id': 1, 'file_name': 'a.jpg', 'width': 64, 'height': 96}]
        >>> coco["annotations"][0]["bbox"], coco["annotations"][0]["area"], coco["categories"][1]
        ([10, 20, 40, 60], 2400, {'id': 2, 'name': 'dog', 'class': 1})
    """

    def __init__(self, fmt: str, stream: TextIO | None = None, image_width: int = 0, seen: str | None = None,
                 labels: Sequence[str] | None = None) -> None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}")
        self.fmt, self.stream, self.first = fmt, stream or sys.stdout, True
        self.image_width = image_width
        self.labels = list(labels) if labels is not None else None
        self.images: dict[str, dict] = {}
        self.categories: dict[int, str] = {}
        self.annotation_id = 0
        if fmt == "table":
            if seen:
                self.stream.write(f"model saw: {seen}; seen: that region of each image, in its pixels\n")
            self.stream.write(table_header(image_width) + "\n")
        elif fmt == "csv":
            self.csv = csv.DictWriter(self.stream, CSV_FIELDS, extrasaction="ignore")
            self.csv.writeheader()
        elif fmt == "coco":
            self.stream.write("[")
        elif fmt == "coco-instances":
            self.stream.write('{"info": {"description": "boxes written by camloc localize"}, "annotations": [')

    def __call__(self, d: dict) -> None:
        """Write one record (or, for COCO, its detections or annotations) and flush the stream."""
        if self.fmt == "table":
            self.stream.write(format_row(d, self.image_width) + "\n")
        elif self.fmt == "jsonl":
            self.stream.write(json.dumps(d) + "\n")
        elif self.fmt == "csv":
            row = dict(d)
            if d.get("box"):
                row.update(zip(("x0", "y0", "x1", "y1"), d["box"], strict=True))
            if "region" in d:
                row.update(zip(REGION_FIELDS, d["region"], strict=True))
            self.csv.writerow(row)
        elif "error" not in d:
            for det in self._instances(d) if self.fmt == "coco-instances" else self._detections(d):
                self.stream.write(("" if self.first else ",\n") + json.dumps(det))
                self.first = False
        self.stream.flush()

    def _detections(self, d: dict) -> list[dict]:
        """A result's entries of the COCO detection-results array, one per box."""
        seen = {"region_bbox": _xywh(d["region"]), "region_mode": d.get("region_mode")} if "region" in d else {}
        return [{"image_id": d["image"], "category_id": d["class"], "bbox": _xywh(b), "score": d["score"], **seen}
                for b in d["boxes"]]

    def _instances(self, d: dict) -> list[dict]:
        """A result's annotations of the COCO instances file, one per box; its image is listed once."""
        image = self.images.setdefault(d["image"], {"id": len(self.images) + 1, "file_name": d["image"],
                                                    "width": d["width"], "height": d["height"]})
        if is_no_class(d):
            return []
        self.categories.setdefault(d["class"], d.get("label") or f"class {d['class']}")
        annotations = []
        for b in d["boxes"]:
            x, y, w, h = _xywh(b)
            self.annotation_id += 1
            annotations.append({"id": self.annotation_id, "image_id": image["id"], "category_id": d["class"] + 1,
                                "bbox": [x, y, w, h], "area": round(w * h, 2), "iscrowd": 0, "score": d["score"]})
        return annotations

    def close(self) -> None:
        """Finish the output: close the COCO array or instances file (the other formats need nothing).

        The stream stays open.
        """
        if self.fmt == "coco":
            self.stream.write("]\n")
        elif self.fmt == "coco-instances":
            names = dict(enumerate(self.labels)) if self.labels is not None else dict(sorted(self.categories.items()))
            categories = [{"id": c + 1, "name": name, "class": c} for c, name in names.items()]
            self.stream.write(f'], "images": {json.dumps(list(self.images.values()))}, '
                              f'"categories": {json.dumps(categories)}}}\n')
        self.stream.flush()


def _xywh(box: list[float]) -> list[float]:
    """``[x0, y0, x1, y1]`` as COCO's ``[x, y, w, h]`` (sizes rounded to 0.01 px)."""
    return [box[0], box[1], round(box[2] - box[0], 2), round(box[3] - box[1], 2)]


def write_records(records: Iterable[dict], fmt: str, fh: TextIO, seen: str | None = None,
                  labels: Sequence[str] | None = None) -> None:
    """All records in one format (``seen``, ``labels``: see :class:`Formatter`)."""
    out = Formatter(fmt, fh, seen=seen, labels=labels)
    for d in records:
        out(d)
    out.close()
