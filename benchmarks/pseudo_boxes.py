"""Pseudo-boxes for training a detector: how good they are, what they cost, and the scorer against pycocotools.

On efficientnet_lite0 (offline ImageNet weights) and the COCO photos of ``$CAMLOC_DATA/coco-masks`` (true boxes:
every instance of each photo's dominant category), ``camloc localize --format coco-instances --metadata`` runs

* single-label: the top-1 class's box per photo, scored by its softmax probability;
* multi-label: every class whose sigmoid score exceeds ``--score-threshold`` (at most ``--max-classes``);

and prints, for each, the run's seconds and peak memory of this process, and the report of
:mod:`camloc.eval.pseudoboxes` (AP50, the best F1, precision and recall by score threshold). Then it times
camloc's scoring of the multi-label run's boxes against pycocotools' ``COCOeval`` (``useCats=0``, IoU 0.5) on
the same boxes, side by side, and prints both AP50s. Usage::

    python benchmarks/pseudo_boxes.py [--data DIR] [--score-threshold 0.5] [--max-classes 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from camloc.cli import main
from camloc.data.location import data_root, missing_data
from camloc.data.metadata import read_dataset
from camloc.eval.pseudoboxes import pseudo_box_quality


def localize(images: Path, meta: Path, out: Path, *extra: str) -> float:
    """Run ``camloc localize`` in this process; its wall seconds."""
    t0 = time.perf_counter()
    res = CliRunner().invoke(main, ["localize", str(images), "--metadata", str(meta), "--out", str(out), "--format",
                                    "coco-instances", "--no-overlays", "--quiet", *extra])
    seconds = time.perf_counter() - t0
    if res.exit_code != 0:
        sys.exit(f"camloc localize failed: {res.output[-2000:]}")
    print(res.stderr.rstrip())
    return seconds


def pycocotools_ap50(rows: list[dict], meta: Path) -> float:
    """pycocotools' AP at IoU 0.5, classes ignored, of the rows' boxes against the metadata's true boxes."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    samples = {s.image_id: s for s in read_dataset(meta)}
    images, annotations, results = [], [], []
    for i, image_id in enumerate(sorted({r["image"] for r in rows}), 1):
        sample = samples[str(Path(image_id).relative_to(meta))]
        images.append({"id": i, "width": sample.width, "height": sample.height})
        for x0, y0, x1, y1 in sample.boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)})
        for r in (r for r in rows if r["image"] == image_id and r.get("class") is not None):
            for x0, y0, x1, y1 in r["boxes"]:
                results.append({"image_id": i, "category_id": 1, "score": r["score"],
                                "bbox": [x0, y0, x1 - x0, y1 - y0]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.params.useCats = 0
        ev.params.maxDets = [1, 10, 1000]  # every box counts (the multi-label run has up to 100 an image)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1])


def median_time(fn, repeats: int) -> tuple[float, object]:
    value = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="the folder holding coco-masks/ [$CAMLOC_DATA]")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--max-classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = args.data or data_root()
    if root is None or not (root / "coco-masks" / "image_ids.txt").is_file():
        sys.exit(missing_data("coco-masks"))
    meta = root / "coco-masks"
    with tempfile.TemporaryDirectory() as tmp:
        print("== single-label (top-1 class, softmax score)")
        single = localize(meta / "images", meta, Path(tmp) / "single")
        print(f"   {single:.1f} s")
        print(f"== multi-label (sigmoid score > {args.score_threshold}, at most {args.max_classes} classes an image)")
        multi = localize(meta / "images", meta, Path(tmp) / "multi", "--multilabel", "--score-threshold",
                         str(args.score_threshold), "--max-classes", str(args.max_classes))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
        print(f"   {multi:.1f} s; peak memory of this process {peak} MiB")
        rows = [json.loads(line) for line in (Path(tmp) / "multi" / "results.jsonl").read_text().splitlines()]
    samples = read_dataset(meta)
    ours_s, quality = median_time(lambda: pseudo_box_quality(rows, samples, str(meta)), args.repeats)
    theirs_s, theirs = median_time(lambda: pycocotools_ap50(rows, meta), args.repeats)
    boxes = len(quality.any_class.scores)
    print(f"== scoring the multi-label run's {boxes} boxes (median of {args.repeats})")
    print(f"   camloc      {ours_s * 1000:8.1f} ms  AP50 {quality.any_class.ap50():.6f} (and the own-class matching)")
    print(f"   pycocotools {theirs_s * 1000:8.1f} ms  AP50 {theirs:.6f}")
    print(f"   ratio {theirs_s / ours_s:.1f}x")


if __name__ == "__main__":
    main_()
