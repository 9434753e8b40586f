"""How ``camloc localize`` writes its records: an aligned table, JSON lines, CSV rows or COCO results.

A record is one image's result (or error) as a dict, the same for every format; :class:`Formatter`
streams records in one format, :func:`write_records` writes a finished run's records at once.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> write_records([{"image": "cat.jpg", "class": 281, "label": "tabby", "score": 0.5,
    ...                 "box": [1, 2, 30, 40], "boxes": [[1, 2, 30, 40]], "width": 64, "height": 48}], "csv", out)
    >>> out.getvalue().splitlines()[0].split(",")[:4]
    ['image', 'class', 'label', 'score']
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from typing import TextIO

from ..utils.errors import UsageError

CSV_FIELDS = ["image", "class", "label", "score", "x0", "y0", "x1", "y1", "width", "height", "exact", "method", "nwc",
              "standard", "model", "error"]


#: Widths of the terminal table's columns after the image path (class, label, score, box).
_LABEL_WIDTH = 22


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
    label = _fit(str(d["label"]), _LABEL_WIDTH)
    box = "[" + ", ".join(f"{v:7.1f}" for v in d["box"]) + "]"
    method = d.get("method", "cam")
    kind = method if method != "cam" else "exact" if d["exact"] else "gradient"
    return f"{image}  {d['class']:>5}  {label}  {d['score']:5.3f}  {box}  {kind}"


def table_header(image_width: int = 0) -> str:
    """The table's header line, aligned with :func:`format_row`."""
    box = "box [x0, y0, x1, y1]"
    return f"{_fit('image', max(image_width, 5))}  {'class':>5}  {_fit('label', _LABEL_WIDTH)}  score  {box:<38}  map"


class Formatter:
    """Streams records as a table, JSON lines, CSV rows or one COCO detection-results array.

    CSV rows give the main box as x0..y1 and keep errors; the COCO array has ``image_id`` = path, ``category_id`` =
    class index, ``bbox`` = ``[x, y, w, h]``, ``score`` (one detection per box, error entries left out).
    ``image_width``: the table's image column (the longest path, within limits), so that its columns line up although
    rows stream out one by one.
    """

    def __init__(self, fmt: str, stream: TextIO | None = None, image_width: int = 0) -> None:
        if fmt not in ("table", "jsonl", "csv", "coco"):
            raise UsageError(f"unknown format {fmt!r}")
        self.fmt, self.stream, self.first = fmt, stream or sys.stdout, True
        self.image_width = image_width
        if fmt == "table":
            self.stream.write(table_header(image_width) + "\n")
        elif fmt == "csv":
            self.csv = csv.DictWriter(self.stream, CSV_FIELDS, extrasaction="ignore")
            self.csv.writeheader()
        elif fmt == "coco":
            self.stream.write("[")

    def __call__(self, d: dict) -> None:
        """Write one record (or, for COCO, its detections) and flush the stream."""
        if self.fmt == "table":
            self.stream.write(format_row(d, self.image_width) + "\n")
        elif self.fmt == "jsonl":
            self.stream.write(json.dumps(d) + "\n")
        elif self.fmt == "csv":
            row = dict(d)
            if "box" in d:
                row.update(zip(("x0", "y0", "x1", "y1"), d["box"], strict=True))
            self.csv.writerow(row)
        elif "error" not in d:
            for b in d["boxes"]:
                det = {"image_id": d["image"], "category_id": d["class"],
                       "bbox": [b[0], b[1], round(b[2] - b[0], 2), round(b[3] - b[1], 2)], "score": d["score"]}
                self.stream.write(("" if self.first else ",\n") + json.dumps(det))
                self.first = False
        self.stream.flush()

    def close(self) -> None:
        """Finish the output: close the COCO array (the other formats need nothing); the stream stays open."""
        if self.fmt == "coco":
            self.stream.write("]\n")
            self.stream.flush()


def write_records(records: Iterable[dict], fmt: str, fh: TextIO) -> None:
    """All records in one format."""
    out = Formatter(fmt, fh)
    for d in records:
        out(d)
    out.close()
