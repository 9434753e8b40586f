"""A ``camloc localize`` folder's gallery: ``index.html`` from its journal and ``run.json``, in input order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data.imaging import region_text
from ..viz.gallery import write_page
from .pipeline import JOURNAL, MANIFEST, in_order
from .results import is_no_class


def write_gallery(out: Path, paths: list[str]) -> Path:
    """``out/index.html`` (:mod:`camloc.viz.gallery`) from the folder's journal, in input order.

    The page has a card per result (its thumbnail linking to its overlay, class, label, score, box), the failed
    inputs with their reasons, and the model and settings of ``out/run.json``.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from camloc.batch.gallery import write_gallery
        >>> out = Path(tempfile.mkdtemp())         # a run's folder (here one without results yet)
        >>> write_gallery(out, ["examples/images/cat.jpg"]).relative_to(out)
        PosixPath('index.html')

    Raises:
        OSError: the page cannot be written.
    """
    items, errors, none = [], [], []
    for d in in_order(paths, [out / JOURNAL]):
        if "error" in d:
            errors.append({"image": d["image"], "reason": d["error"]})
        elif is_no_class(d):
            none.append(d["image"])
        else:
            items.append({"image": d["image"], "class": d.get("class"), "label": d.get("label"),
                          "score": d.get("score"), "box": d.get("box"), "region": d.get("region"),
                          "region_mode": d.get("region_mode"), "picture": d.get("overlay"), "thumb": d.get("thumb")})
    notes = _run_notes(out, items)
    if none:
        shown = ", ".join(Path(p).name for p in none[:20]) + (f" and {len(none) - 20} more" if len(none) > 20 else "")
        notes.append(f"{len(none)} image{'s' * (len(none) != 1)} had no class above the score threshold: {shown}")
    return write_page(out, items, errors, title=f"camloc localize: {out.resolve().name}", notes=notes,
                      no_picture="no picture (written with --no-overlays)")


def _run_notes(out: Path, items: list[dict]) -> list[str]:
    """What made the results (from ``run.json``) and what the pictures show, as lines for the page."""
    notes = []
    try:
        run = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        run = None
    if isinstance(run, dict):
        model = run.get("model") or run.get("checkpoint") or "?"
        standard = _standard_text(run.get("standard"))
        which = f"top-{run['topk']} classes" if run.get("topk") else (
            f"class {run['class']}" if run.get("class") is not None else
            f"every class whose sigmoid score exceeds {run['multilabel'][0]} (at most {run['multilabel'][1]} an image)"
            if run.get("multilabel") is not None
            else "the top-1 class")
        how = (f"threshold and NWC from the calibration {run['calibration']}" if run.get("calibration") else
               f"NWC {'on' if run.get('nwc') else 'off'}, {standard}")
        notes.append(f"model {model}, method {run.get('method') or 'cam'}, {how}; localizing {which}"
                     + ("; every region's box" if run.get("all_regions") else ""))
        pre = run.get("preprocess")
        if isinstance(pre, dict) and {"mode", "input_size", "resize_size"} <= set(pre):
            notes.append(f"the model saw {region_text(pre['mode'], pre['input_size'], pre['resize_size'])} "
                         "(each card's region, in original pixels)")
    if items and not any(d.get("picture") for d in items):
        notes.append("no pictures: the run was made with --no-overlays")
    elif items:
        notes.append("pictures: the heat map over the region of the photo the model saw (framed in magenta dashes; "
                     "outside it, what a center crop leaves out, is dimmed), the box in green with the label and "
                     "score; click a thumbnail for the full overlay; boxes are [x0, y0, x1, y1] in original pixels")
    return notes


def _standard_text(recorded: Any) -> str:
    """A manifest's threshold rule in words (``threshold 0.35 x p90 (PaS)``)."""
    from ..cam.rules import ThresholdRule

    try:
        standard = ThresholdRule(**recorded)
    except (TypeError, ValueError):
        return f"threshold {recorded}"
    kind = {"percentile": " (PaS)", "max": ""}.get(standard.name, " (automatic)")
    return f"threshold {standard.label}{kind}"
