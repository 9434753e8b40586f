"""A results gallery: one self-contained ``index.html`` beside a run's results, opened from disk.

``camloc localize --out DIR`` and ``camloc evaluate --out DIR`` write ``DIR/index.html`` with this
module: a card per result (a thumbnail linking to the full picture, the class, score and box; for an
evaluation the ground-truth class and a hit or miss per row), a class filter (every class with its
count), a free-text filter on name and label, sorting by score or name, and the failed inputs in
their own section with their reasons.

Pictures: ``localize`` links each overlay and its thumbnail (``DIR/thumbs/``, :func:`thumbnail`);
``evaluate`` draws the first images as the protocol saw them, a panel per row
(:func:`evaluation_picture`, ``DIR/pictures/``). Per-image files are named after their images
(:mod:`camloc.viz.filenames`). Each ``localize`` card says which region of the image the model saw.

The page needs no server and no network: its style and script are inline, a Content-Security-Policy
forbids fetching anything but pictures from its own folder, and every link is relative (the page
works from ``file://`` and after its folder is moved). The rows are embedded once as JSON in a
``<script type="application/json">`` and drawn by the page's script, a page of cards at a time, so
10,000 rows stay quick to open; every text from the data is set as text (never as markup) and the
JSON is escaped so that no file name or label can end the script element.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from camloc.viz.gallery import write_page
    >>> out = Path(tempfile.mkdtemp())            # the run's folder; the pictures' paths are relative to it
    >>> write_page(out, [{"image": "a.jpg", "class": 281, "label": "tabby", "score": 0.43,
    ...            "box": [1, 2, 30, 40], "picture": "overlays/a.png", "thumb": "thumbs/a.jpg"}],
    ...            [{"image": "b.jpg", "reason": "not an image"}], title="camloc localize").relative_to(out)
    PosixPath('index.html')
"""

from __future__ import annotations

import html
import importlib.resources
import json
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ..data.imaging import encode_image, region_text
from ..utils.atomic import atomic_write_bytes, atomic_write_text
from ..utils.defaults import EVALUATION_PICTURES
from .drawing import dashed_frame
from .filenames import artifact_stems

#: The page's file name in an output folder.
PAGE = "index.html"
#: Folder of the thumbnails in an output folder.
THUMBS = "thumbs"
#: A thumbnail's longest side, in pixels.
THUMB_SIZE = 256
#: JPEG quality of the thumbnails.
THUMB_QUALITY = 85
#: Cards drawn at once; "Show more" adds as many again.
PAGE_SIZE = 200
#: Colours of an evaluation's rows in its pictures and badges (Okabe-Ito, told apart with colour blindness,
#: then Tol's muted; orange is the ground truth's). More rows than colours reuse them in order.
ROW_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#000000", "#332288", "#882255",
               "#44AA99", "#999933", "#AA4499")
#: The ground truth's colour (dashed).
TRUTH_COLOUR = "#E69F00"
#: Folder of an evaluation's full pictures in an output folder (JPEG, about 190 KB for 4 panels: the default 100
#: pictures take about 20 MB).
PICTURES = "pictures"
#: JPEG quality of an evaluation's full pictures.
PICTURE_QUALITY = 88


@cache
def template(name: str) -> str:
    """A file of the page (``gallery.html``, ``gallery.css``, ``gallery.js``), read from the package data.

    The page is ``gallery.html`` with ``{title}``, ``{header}``, ``{class_name}``, ``{outcome}``, ``{n}``,
    ``{style}`` (``gallery.css``), ``{script}`` (``gallery.js``) and ``{data}`` filled in by
    :func:`render_page`; the three files live in ``camloc/viz/templates/`` so that they can be
    edited and checked as HTML, CSS and JavaScript.

    Example:
        >>> template("gallery.html").startswith("<!DOCTYPE html>")
        True
    """
    return importlib.resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


def link(relative: str) -> str:
    """A relative path (``/``-separated, inside the output folder) as a URL the page can use.

    Every character a URL gives a meaning to is percent-encoded (``%``, ``#``, ``?``, spaces,
    non-ASCII), so the browser opens exactly that file.

    Example:
        >>> link("overlays/photos/cat #1 100%.png")
        'overlays/photos/cat%20%231%20100%25.png'
    """
    return quote(os.fsencode(relative), safe="/")


def _jpeg(bgr: np.ndarray, quality: int) -> bytes:
    import cv2

    return encode_image(bgr, ".jpg", cv2.IMWRITE_JPEG_QUALITY, quality)


def thumbnail(bgr: np.ndarray, size: int = THUMB_SIZE) -> bytes:
    """A JPEG of ``bgr`` (H x W x 3 uint8, OpenCV's order), its longest side at most ``size`` pixels.

    Example:
        >>> import cv2, numpy as np
        >>> jpeg = thumbnail(cv2.imread("examples/images/cat.jpg"))     # 451 x 300: 256 x 170
        >>> cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape
        (170, 256, 3)
    """
    import cv2

    h, w = bgr.shape[:2]
    scale = size / max(h, w)
    if scale < 1:
        bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return _jpeg(bgr, THUMB_QUALITY)


def row_colours(rows: Sequence[str]) -> dict[str, str]:
    """Each row's colour (:data:`ROW_COLOURS` in order), the same in the pictures and on the page.

    Example:
        >>> row_colours(["cam", "nwc+pas"])
        {'cam': '#0072B2', 'nwc+pas': '#D55E00'}
    """
    return {r: ROW_COLOURS[i % len(ROW_COLOURS)] for i, r in enumerate(rows)}


def _number(v: Any, digits: int = 4) -> Any:
    return None if v is None else round(float(v), digits)


def _item(d: dict, rows: Sequence[str]) -> dict:
    """A card in the page's compact form (short keys: 10,000 rows stay a few MB)."""
    out: dict[str, Any] = {"n": str(d["image"])}
    if d.get("class") is not None:
        out["c"] = int(d["class"])
    out["l"] = str(d.get("label", d.get("class", "")))
    if d.get("score") is not None:
        out["s"] = _number(d["score"])
    if d.get("box") is not None:
        out["b"] = [_number(v, 1) for v in d["box"]]
    if d.get("region") is not None:
        out["r"] = [_number(v, 1) for v in d["region"]]
        out["m"] = str(d.get("region_mode", "crop"))
    if d.get("picture"):
        out["o"] = link(d["picture"])
    if d.get("thumb") or d.get("picture"):
        out["t"] = link(d.get("thumb") or d["picture"])
    if d.get("predicted") is not None:
        out["p"] = str(d["predicted"])
    if rows:
        hits = d.get("hits") or {}
        out["h"] = [[hits[r].get("hit"), _number(hits[r].get("iou"), 3)] if r in hits else [None, None] for r in rows]
    return out


def _script_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` in it at all."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(
    items: Sequence[dict],
    errors: Sequence[dict] = (),
    *,
    title: str,
    notes: Sequence[str] = (),
    rows: Sequence[str] = (),
    table: tuple[Sequence[str], Sequence[Sequence[Any]]] | None = None,
    class_name: str = "class",
    no_picture: str = "no picture",
) -> str:
    """The page's HTML: the gallery of ``items``, then the failed ``errors``.

    Args:
        items: one dict per card: ``image`` (its name), ``class`` (index) and ``label`` (the class the
            filter groups by), ``score``, ``box`` ([x0, y0, x1, y1]), ``region`` and ``region_mode``
            (the part of the image the model saw, ``full`` or ``crop``), ``picture`` (the full picture)
            and ``thumb`` (its thumbnail; the picture itself where absent), ``predicted`` (the
            predicted label, where ``label`` is the ground truth) and ``hits`` (``{row: {"hit":
            bool, "iou": float}}`` for each of ``rows``). Only ``image`` is required; paths are
            relative to the page's folder.
        errors: ``{"image", "reason"}`` per input that gave no result.
        title: the page's title.
        notes: lines said under the title (settings, what a hit means, what was left out).
        rows: an evaluation's rows (variants), each with its colour, a badge per card and an
            outcome filter.
        table: ``(header, rows)`` of a small table under the notes (an evaluation's metrics).
        class_name: what the class filter is called (``ground-truth class`` for an evaluation).
        no_picture: what a card without a picture says (why there is none).
    """
    colours = row_colours(rows)
    data = {"items": [_item(d, rows) for d in items],
            "errors": [{"n": str(e["image"]), "r": str(e["reason"])} for e in errors],
            "rows": [{"name": r, "colour": colours[r]} for r in rows], "pageSize": PAGE_SIZE, "className": class_name,
            "noPicture": no_picture}
    esc = html.escape
    parts = [f"<h1>{esc(title)}</h1>"]
    summary = f"{len(items)} result{'s' * (len(items) != 1)}, {len(errors)} failed input{'s' * (len(errors) != 1)}"
    parts.append(f'<p class="summary">{esc(summary)}</p>')
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    if table is not None:
        head, body = table
        parts.append('<table class="metrics"><thead><tr>' + "".join(f"<th>{esc(str(h))}</th>" for h in head)
                     + "</tr></thead><tbody>" + "".join(
                         "<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>" for row in body)
                     + "</tbody></table>")
    outcome = ""
    if rows:
        options = "".join(f'<option value="{k}:{i}">{esc(word)} in {esc(r)}</option>'
                          for i, r in enumerate(rows) for k, word in (("miss", "miss"), ("hit", "hit")))
        outcome = f'<label>Outcome <select id="outcome"><option value="">all</option>{options}</select></label>'
    return template("gallery.html").format(
        title=esc(title), header="\n".join(parts), class_name=esc(class_name.capitalize()), outcome=outcome,
        n=len(items), style=template("gallery.css"), script=template("gallery.js"), data=_script_json(data))


def write_page(out: Path, items: Sequence[dict], errors: Sequence[dict] = (), **page: Any) -> Path:
    """Write ``out/index.html`` (atomically): :func:`render_page` of ``items`` and ``errors``.

    Args:
        out: the output folder; every path in ``items`` is relative to it.
        items: one dict per card (see :func:`render_page`).
        errors: ``{"image", "reason"}`` per input that gave no result.
        **page: :func:`render_page`'s keywords (``title`` is required).

    Returns:
        The page's path.
    """
    path = Path(out) / PAGE
    atomic_write_text(path, render_page(items, errors, **page))
    return path


def _bgr(colour: str) -> tuple[int, int, int]:
    return int(colour[5:7], 16), int(colour[3:5], 16), int(colour[1:3], 16)


def evaluation_picture(view, panels: Sequence[tuple[str, str, Sequence[int] | None, tuple[str, bool], bool | None]],
                       header: Sequence[str] = (), scale: int = 2) -> np.ndarray:
    """An evaluated image as the protocol saw it, a panel per row; the ``header`` lines on top.

    Each panel is its 224 x 224 input ``scale`` times larger with the row's heat map, the ground-truth boxes dashed in
    orange and the row's box in the row's colour, under a title (the row's colour, name, hit or miss).

    Args:
        view: an :class:`camloc.eval.records.ImageView`.
        panels: ``(title, colour, box on the 224 x 224 input or None, (method, nwc) of its map, hit)`` per row.
        header: lines of text above the panels (the image, its classes, the legend).
        scale: enlargement of the 224 x 224 input.

    Returns:
        BGR uint8: the panels in a grid of ``ceil(sqrt(len(panels)))`` columns.

    Example:
        >>> import tempfile, timm, camloc
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> root = tempfile.mkdtemp()
        >>> test = write_synthetic(root, SyntheticSpec(classes=2, size=32, train=1, train_fullsup=1, test=2))["test"]
        >>> model, settings = timm.create_model("resnet18", num_classes=2), camloc.Settings("wsolevaluation")
        >>> result = camloc.evaluate(model, camloc.read_dataset(test), root, settings, progress=False, views=1)
        >>> view = result.views["images/test/00000.png"]                # the first image's input and maps
        >>> panels = [("cam: hit", "#0072B2", [10, 20, 200, 180], ("cam", False), True),
        ...           ("nwc: miss", "#D55E00", [0, 0, 50, 50], ("cam", True), False)]
        >>> evaluation_picture(view, panels, ["images/test/00000.png"]).shape   # 2 panels of 448 x 448 side by side
        (512, 902, 3)
    """
    import cv2

    size = 224 * scale
    photo = cv2.resize(view.rgb()[:, :, ::-1], (size, size), interpolation=cv2.INTER_LINEAR)
    tiles = [_evaluation_tile(view, photo, panel, scale) for panel in panels]
    grid = _tile_grid(tiles, size, _TITLE_BAR)
    if not header:
        return grid
    return _with_header(grid, header)


#: Height in pixels of a panel's title bar in :func:`evaluation_picture`.
_TITLE_BAR = 30


def _corners(box: Sequence[float], scale: int, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """A box on the 224 x 224 input as the corners of its pixels in the enlarged panel (within it)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return (x0 * scale, y0 * scale), (min(x1 * scale + scale - 1, size - 1), min(y1 * scale + scale - 1, size - 1))


def _evaluation_tile(view: Any, photo: np.ndarray,
                     panel: tuple[str, str, Sequence[int] | None, tuple[str, bool], bool | None],
                     scale: int) -> np.ndarray:
    """One row's panel: its title bar over the photo with the row's heat map, the truth and the row's box."""
    import cv2

    title, colour, box, key, hit = panel
    size, black = photo.shape[0], (0, 0, 0)
    heat = cv2.applyColorMap(cv2.resize(view.u8(key), (size, size), interpolation=cv2.INTER_LINEAR),
                             cv2.COLORMAP_JET)
    tile = cv2.addWeighted(photo, 0.5, heat, 0.5, 0)
    for gt in view.truth:
        (x0, y0), (x1, y1) = _corners(gt, scale, size)
        dashed_frame(tile, (x0, y0, x1 + 1, y1 + 1), 2, _bgr(TRUTH_COLOUR), dash=10)
    if box is not None:
        p0, p1 = _corners(box, scale, size)
        cv2.rectangle(tile, p0, p1, (255, 255, 255), 5)  # a white rim: the line stays visible on any heat
        cv2.rectangle(tile, p0, p1, _bgr(colour), 3)
    head = np.full((_TITLE_BAR, size, 3), 255, np.uint8)
    cv2.rectangle(head, (6, 7), (24, 23), _bgr(colour), -1)
    cv2.rectangle(head, (6, 7), (24, 23), black, 1)
    verdict = (0, 110, 20) if hit else (20, 20, 170) if hit is False else black
    cv2.putText(head, title, (32, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, verdict, 1, cv2.LINE_AA)
    return np.concatenate([head, tile], axis=0)


def _tile_grid(tiles: list[np.ndarray], size: int, bar: int, gap: int = 6) -> np.ndarray:
    """The panels on white in ``ceil(sqrt(n))`` columns, row by row, ``gap`` pixels apart."""
    import math

    cols = max(1, math.ceil(math.sqrt(len(tiles))))
    rows = math.ceil(len(tiles) / cols)
    grid = np.full((rows * (size + bar) + (rows - 1) * gap, cols * size + (cols - 1) * gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = r * (size + bar + gap), c * (size + gap)
        grid[y:y + size + bar, x:x + size] = tile
    return grid


def _with_header(grid: np.ndarray, header: Sequence[str], line: int = 24) -> np.ndarray:
    """``grid`` under the ``header`` lines, black on white, ``line`` pixels apart."""
    import cv2

    top = np.full((line * len(header) + 10, grid.shape[1], 3), 255, np.uint8)
    for i, text in enumerate(header):
        cv2.putText(top, text, (6, 18 + i * line), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([top, grid], axis=0)


def _metrics_table(result) -> tuple[list[str], list[list[str]]]:
    """The result's numbers per row, as the command's table shows them."""
    rows = result.metrics
    keys = [k for k in ("top1_cls", "top5_cls", "gt_known_loc", "top1_loc", "maxboxacc", "maxboxacc_v2", "pxap")
            if any(k in r for r in rows.values())]
    body = [[name] + ["-" if r.get(k) is None else f"{r[k]:.2f}" for k in keys] for name, r in rows.items()]
    return ["variant"] + keys, body


def write_evaluation(out: Path, result, pictures: int = EVALUATION_PICTURES) -> Path:
    """Write ``out/index.html`` for an evaluation: a card per scored image, the failed ones, the metrics.

    A card has the image's picture where ``result.views`` has one, its ground-truth class, prediction and score, and a
    hit or miss with the IoU per row; the failed images come with their reasons.

    Pictures go to ``out/pictures/`` (a panel per row, see :func:`evaluation_picture`, its header
    saying which region of the image the model saw) and ``out/thumbs/``, each written atomically and
    named after its image id (``images/0001.png`` gives ``pictures/images/0001.jpg``; see
    :mod:`camloc.viz.filenames`).

    Args:
        out: the output folder.
        result: an :class:`camloc.eval.evaluation.EvaluationResult` made with ``per_image`` (and ``views``).
        pictures: how many pictures were asked for (said on the page).

    Example:
        >>> import tempfile, timm, camloc
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> root = tempfile.mkdtemp()
        >>> test = write_synthetic(root, SyntheticSpec(classes=2, size=32, train=1, train_fullsup=1, test=2))["test"]
        >>> model, settings = timm.create_model("resnet18", num_classes=2), camloc.Settings("wsolevaluation")
        >>> result = camloc.evaluate(model, camloc.read_dataset(test), root, settings, progress=False, views=1)
        >>> write_evaluation(Path(root) / "gallery", result).relative_to(root)   # a picture for the first image only
        PosixPath('gallery/index.html')
    """
    out = Path(out)
    s = result.settings
    rows = [r.name for r in s.rows()]
    colours = row_colours(rows)
    truth_named = s.cam_class == "gt"
    pre = result.preprocess
    seen = ([f"each panel is what the model saw: {region_text(pre['mode'], pre['input_size'], pre['resize_size'])}"]
            if {"mode", "input_size", "resize_size"} <= set(pre) else [])
    # image ids are paths relative to the image root: the pictures' folders mirror them
    stems = artifact_stems([rec["image_id"] for rec in result.per_image if rec["image_id"] in result.views],
                           folders=[os.curdir])
    items = []
    for rec in result.per_image:
        item = {"image": rec["image_id"], "class": rec["label"],
                "label": rec.get("label_name") or f"class {rec['label']}",
                "predicted": (f"{rec['predicted_name']} ({rec['predicted']})" if rec.get("predicted_name") else
                              f"class {rec['predicted']}"), "score": rec["score"],
                "hits": rec["rows"]}
        view = result.views.get(rec["image_id"])
        if view is not None:
            panels = _panels(rec, s.rows(), colours)
            header = [rec["image_id"][-70:], f"truth: {item['label']}; predicted: {item['predicted']}, "
                                             f"{rec['score']:.3f}",
                      "dashed orange: ground truth; each panel: that row's map and box", *seen]
            item["picture"] = f"{PICTURES}/{stems[rec['image_id']]}.jpg"
            item["thumb"] = f"{THUMBS}/{stems[rec['image_id']]}.jpg"
            atomic_write_bytes(out / item["picture"], _jpeg(evaluation_picture(view, panels, header), PICTURE_QUALITY))
            atomic_write_bytes(out / item["thumb"], thumbnail(evaluation_picture(view, panels, scale=1)))
        items.append(item)
    errors = [{"image": f["image_id"], "reason": f["reason"]} for f in result.failed]
    return write_page(out, items, errors, title=f"camloc evaluate: {result.dataset.get('metadata') or out.name}",
                      notes=_evaluation_notes(result, len(result.views), pictures), rows=rows,
                      table=_metrics_table(result), class_name="ground-truth class" if truth_named else "label",
                      no_picture=f"no picture (pictures for the first {len(result.views)} images only)")


def _panels(rec: dict, rows: Sequence, colours: dict[str, str]) -> list[tuple]:
    """An evaluated image's panels (:func:`evaluation_picture`), one per row, titled with its hit or miss and IoU."""
    panels = []
    for r in rows:
        e = rec["rows"].get(r.name, {})
        verdict = "hit" if e.get("hit") else "miss" if e.get("hit") is False else "no verdict"
        title = f"{r.name}: {verdict}" + (f", IoU {e['iou']:.3f}" if e.get("iou") is not None else "")
        panels.append((title, colours[r.name], e.get("box"), (r.method, r.nwc), e.get("hit")))
    return panels


def _evaluation_notes(result, drawn: int, asked: int) -> list[str]:
    s = result.settings
    n = len(result.per_image)
    notes = [f"{result.dataset.get('n', n)} images, {len(result.failed)} failed; protocol {s.protocol}, "
             f"maps of the {'ground-truth' if s.cam_class == 'gt' else 'top-1'} class, "
             f"box convention {s.box_convention}"
             + (f", model {result.dataset['model']}" if result.dataset.get("model") else "")]
    if s.protocol == "rethinking":
        notes.append("a hit is what GT-known Loc counts: the row's one box (its fixed threshold) reaches IoU >= 0.5 "
                     "with a ground-truth box, on the 224 x 224 center crop of the 256 x 256 resize")
    elif result.operating_points:
        points = ", ".join(f"{r} {p['tau']:.3f}" for r, p in result.operating_points.items())
        metric = next(iter(result.operating_points.values()))["metric"]
        how = "any contour's box" if metric == "maxboxacc_v2" else "the largest contour's box"
        auto = (" (an automatic rule's own threshold)" if any(s.rule(r.variant) != "percentile" for r in s.rows())
                else "")
        notes.append(f"a hit is at the row's operating point, the tau of its best {metric} accuracy at IoU 50 over "
                     f"the split ({points}): {how} of U > tau x the row's standard{auto} reaches IoU >= 0.5; so a "
                     "row's hits average to that accuracy. The box and IoU shown are the best such box, for the "
                     "pictured images")
    else:
        notes.append("no hit or miss per image: the box metrics were not computed (masks only, or --metrics without "
                     "maxboxacc_v2 at IoU 50 or maxboxacc)")
    notes.append(f"pictures for the first {drawn} of {n} scored images (at most {asked}: --gallery-images), every "
                 "image listed; a picture has a panel per row: the protocol's 224 x 224 input with that row's heat "
                 "map and box (in the row's colour), the ground truth dashed in orange")
    return notes
