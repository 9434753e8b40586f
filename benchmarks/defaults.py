"""The default region (whole image or centre crop) and the default offline model, measured on real photos.

For each offline model (efficientnet_lite0, lite1, lite2) on the real splits in the folder
``CAMLOC_DATA`` names (imagenet-val, cub-test, coco-masks), three parts, each chosen with --parts:

* ``accuracy``: what ``camloc localize`` / ``camloc.boxes`` give, with the model's own preprocessing
  (its timm ``pretrained_cfg``: 224, 240 or 260 px, bicubic) and camloc's default boxes (NWC, PaS),
  for each region: ``crop`` (resize the shorter side to input / crop_pct, centre crop) and ``full``
  (the whole image squashed to the input size). One forward pass per image and region gives

  - ``top1``: Top-1 classification (imagenet-val: the label; cub-test and coco-masks: the top-1
    class is one of the image's ImageNet classes in ``imagenet_candidates.txt``);
  - ``gt_known``: the default box in original pixels has IoU >= 0.5 (inclusive pixels,
    :func:`camloc.eval.boxacc.iou_matrix`) with a ground-truth box; the map is of the label
    (imagenet-val, coco-masks: ImageNet indices) or of the top-1 class (cub-test: CUB labels are not
    ImageNet classes; ``cam_class="top1"`` as ``camloc evaluate --cam-class top1``);
  - ``gt_known_edge``: the same, over the images with a ground-truth box within 2% of the image's border;
  - ``maxboxacc_v2`` (and ``pxap`` on coco-masks): the same maps scored by camloc's wsolevaluation
    scorer (:class:`camloc.eval.scoring.WsolScorer`, which ``camloc score`` uses; 1,000 thresholds
    ``tau x p90``, the ``nwc+pas`` row) in the whole image's 224 x 224 frame: a crop's map is
    placed where the crop lies in the image, zero outside it (the crop never looks there).

* ``protocols``: ``camloc.evaluate`` under both protocols of docs/protocols.md, whose geometry is
  fixed at 224 px for every model: ``rethinking`` (256 x 256, centre crop 224: GT-known Loc and Top-1
  Cls) and ``wsolevaluation`` (the whole image at 224 x 224: MaxBoxAccV2, PxAP), rows ``cam`` and
  ``nwc+pas``; cub-test with ``cam_class="top1"``.

* ``speed``: images per second of ``camloc.boxes`` (paths in, boxes out: decoding included) at batch
  16, each model in each region, interleaved over --repeats runs in one process (the median).

Every image of each split is used unless --max-images subsamples it (every k-th image, so the
subset is the same on every run). The output names the machine (``lscpu``) and writes JSON to --out.
Usage::

    CAMLOC_DATA=DIR python benchmarks/defaults.py --out defaults.json [--parts accuracy,protocols]
    CAMLOC_DATA=DIR python benchmarks/defaults.py --out speed.json --parts speed [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import camloc
from camloc.cam.boxes import minmax, upsample
from camloc.cam.stages import batch_maps
from camloc.data.location import data_root, missing_data
from camloc.data.metadata import Sample, read_dataset
from camloc.eval.boxacc import iou_matrix
from camloc.eval.protocols import Settings
from camloc.eval.scoring import WsolScorer, masks_or_none
from camloc.utils.defaults import SIZE

MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
SPLITS = ("imagenet-val", "cub-test", "coco-masks")
REGIONS = ("crop", "full")
PARTS = ("accuracy", "protocols", "speed")
#: The split whose labels are not ImageNet classes: its maps are of the top-1 class.
TOP1_SPLITS = ("cub-test",)
#: A ground-truth box this close to the border (a fraction of the side) counts as touching it.
EDGE = 0.02
#: The wsolevaluation row the accuracy part scores: the default boxes' NWC maps, swept at tau x p90.
ROW = "nwc+pas"


def machine() -> str:
    """The CPU as lscpu names it, with its core count and the OS."""
    name = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        name = fields.get("Model name", name).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{name}, {torch.get_num_threads()} threads of {os.cpu_count()} CPUs ({platform.system()})"


@dataclass
class Split:
    """A split's samples (possibly every k-th), its folder, and the ImageNet classes each image accepts."""

    name: str
    root: Path
    samples: list[Sample]
    step: int
    total: int
    accepted: dict[str, set[int]] = field(default_factory=dict)

    def paths(self) -> list[str]:
        return [str(self.root / s.image_id) for s in self.samples]

    def images(self) -> list:
        """The photos decoded once (the accuracy part runs every model and region over them)."""
        return [camloc.load_image(p) for p in tqdm(self.paths(), desc=f"{self.name} decode", unit="img", leave=False)]

    def correct(self, sample: Sample, predicted: int) -> bool:
        """Top-1 right: the label on ImageNet splits, else one of the image's ImageNet candidates."""
        return predicted in self.accepted.get(sample.image_id, {sample.label})


def read_split(root: Path, name: str, max_images: int | None) -> Split:
    samples = read_dataset(root / name)
    step = max(1, math.ceil(len(samples) / max_images)) if max_images else 1
    accepted = {}
    candidates = root / name / "imagenet_candidates.txt"
    if candidates.is_file():
        for line in candidates.read_text().splitlines():
            if line.strip():
                parts = line.split(",")
                accepted[parts[0]] = {int(v) for v in parts[-1].split(";")}
    return Split(name, root / name, samples[::step], step, len(samples), accepted)


def touches_edge(sample: Sample) -> bool:
    w, h = sample.width, sample.height
    return any(x0 <= EDGE * w or y0 <= EDGE * h or x1 >= (1 - EDGE) * w or y1 >= (1 - EDGE) * h
               for x0, y0, x1, y1 in sample.boxes)


def frame_map(cam: torch.Tensor, geom) -> np.ndarray:
    """A raw map placed in the whole image's 224 x 224 frame: bicubic onto where the input lies, min-max, 0 outside."""
    x0, y0, x1, y1 = geom.box_to_original((0, 0, geom.input_width, geom.input_height))
    fx, fy = SIZE / geom.width, SIZE / geom.height
    c0, r0 = max(0, round(x0 * fx)), max(0, round(y0 * fy))
    c1, r1 = min(SIZE, round(x1 * fx)), min(SIZE, round(y1 * fy))
    out = np.zeros((SIZE, SIZE), np.float64)
    out[r0:r1, c0:c1] = minmax(upsample(cam[None], (r1 - r0, c1 - c0)))[0].numpy()
    return out


def accuracy(model: torch.nn.Module, split: Split, images: list, region: str, batch_size: int) -> dict:
    """Top-1, GT-known Loc (all, at the edge), MaxBoxAccV2 and PxAP of the default boxes in one region."""
    loc = camloc.Localizer(model, resize=region)
    settings = Settings("wsolevaluation", (ROW,), metrics=("maxboxacc_v2", "pxap"))
    has_masks = any(s.masks for s in split.samples)
    scorer = WsolScorer(settings, boxes=True, masks=has_masks)
    top1, hits, edge = [], [], []
    bar = tqdm(total=len(split.samples), desc=f"{split.name} {region}", unit="img", leave=False)
    for x, geoms, names, rows in loc.batches(images, batch_size):
        chunk = split.samples[rows]
        classes = None if split.name in TOP1_SPLITS else [s.label for s in chunk]
        with torch.no_grad():
            out = loc.run(x, classes)
        results = loc.finish(batch_maps(out, (x.shape[2], x.shape[3]), loc.standard, loc.method), geoms, names)
        for s, pred, (r,) in zip(chunk, out.logits.argmax(1).tolist(), results, strict=True):
            top1.append(split.correct(s, pred))
            hit = bool(iou_matrix(np.array([r.box]), np.array(s.boxes, np.float64)).max() >= 0.5)
            hits.append(hit)
            if touches_edge(s):
                edge.append(hit)
            masks = masks_or_none(s, split.root) if has_masks else None
            scorer.add(frame_map(r.cam, r.geometry), s, settings.sweep_percentile(ROW), masks)
        bar.update(len(chunk))
    bar.close()
    wsol = scorer.compute()
    pre = loc.preprocess
    return {"top1": 100 * np.mean(top1), "gt_known": 100 * np.mean(hits),
            "gt_known_edge": 100 * np.mean(edge) if edge else None, "n_edge": len(edge),
            "maxboxacc_v2": wsol["maxboxacc_v2"], "pxap": wsol.get("pxap"), "n": len(hits),
            "hits": [int(h) for h in hits], "top1_hits": [int(t) for t in top1],
            "preprocess": {"input_size": list(pre.input_size), "mode": pre.mode, "resize_size": pre.resize_size,
                           "interpolation": pre.interpolation}}


def protocols(model: torch.nn.Module, split: Split, batch_size: int) -> dict:
    """camloc.evaluate under rethinking and wsolevaluation (224 px, their own geometry), rows cam and nwc+pas."""
    cam_class = "top1" if split.name in TOP1_SPLITS else "gt"
    out = {}
    for protocol in ("rethinking", "wsolevaluation"):
        settings = Settings(protocol, ("cam", ROW), cam_class=cam_class, metrics=("maxboxacc_v2", "pxap"))
        result = camloc.evaluate(model, split.samples, split.root, settings, batch_size=batch_size, progress=True)
        out[protocol] = {row: {k: v for k, v in m.items() if not isinstance(v, dict)}
                         for row, m in result.metrics.items()}
    return out


def speed(models: dict[str, torch.nn.Module], paths: list[str], repeats: int) -> dict:
    """Median images per second of camloc.boxes on ``paths`` (batch 16), model by region, interleaved."""
    times: dict[str, list[float]] = {f"{m}/{r}": [] for m in models for r in REGIONS}
    for model in models.values():  # warm up: head analysis, first-call allocations
        for region in REGIONS:
            camloc.boxes(model, paths[:2], resize=region, batch_size=16)
    for _ in tqdm(range(repeats), desc="speed", unit="round", leave=False):
        for name, model in models.items():
            for region in REGIONS:
                t0 = time.perf_counter()
                camloc.boxes(model, paths, resize=region, batch_size=16)
                times[f"{name}/{region}"].append(time.perf_counter() - t0)
    return {key: {"images_per_s": len(paths) / statistics.median(ts), "seconds": ts} for key, ts in times.items()}


def flips(a: list[int], b: list[int]) -> tuple[int, int]:
    """Images hit by ``a`` and missed by ``b``, and the other way round (a paired comparison)."""
    return sum(x and not y for x, y in zip(a, b, strict=True)), sum(y and not x for x, y in zip(a, b, strict=True))


def mcnemar(won: int, lost: int) -> float:
    """The exact two-sided McNemar p-value of ``won`` against ``lost`` discordant images."""
    n = won + lost
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(won, lost) + 1)) / 2 ** n) if n else 1.0


def fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def print_accuracy(results: dict) -> None:
    for split, by_model in results.items():
        print(f"\n{split} (n = {next(iter(next(iter(by_model.values())).values()))['n']}): "
              "camloc's default boxes (NWC + PaS), the model's own preprocessing")
        print(f"{'model':<20} {'region':<6} {'input':>5} {'top1':>6} {'GT-known':>9} {'at edge':>12} "
              f"{'MaxBoxAccV2':>11} {'PxAP':>6}")
        for model, by_region in by_model.items():
            for region, m in by_region.items():
                edge = f"{fmt(m['gt_known_edge'])} ({m['n_edge']})"
                print(f"{model:<20} {region:<6} {m['preprocess']['input_size'][0]:>5} {fmt(m['top1']):>6} "
                      f"{fmt(m['gt_known']):>9} {edge:>12} {fmt(m['maxboxacc_v2']):>11} {fmt(m['pxap']):>6}")
            if set(REGIONS) <= set(by_region):
                won, lost = flips(by_region["full"]["hits"], by_region["crop"]["hits"])
                print(f"{'':<20} GT-known, full against crop on the same images: {won} found only by full, "
                      f"{lost} only by crop (McNemar p = {mcnemar(won, lost):.2g})")


def print_protocols(results: dict) -> None:
    print("\ncamloc.evaluate, both protocols at 224 px "
          "(rethinking: 256 x 256, centre crop 224; wsolevaluation: the whole image)")
    print(f"{'split':<13} {'model':<20} {'top1':>6} {'GT-known cam':>12} {'GT-known nwc+pas':>16} "
          f"{'MaxBoxAccV2 cam':>15} {'MaxBoxAccV2 nwc+pas':>19} {'PxAP nwc+pas':>12}")
    for split, by_model in results.items():
        for model, r in by_model.items():
            re, ws = r["rethinking"], r["wsolevaluation"]
            print(f"{split:<13} {model:<20} {fmt(re['cam'].get('top1_cls')):>6} {fmt(re['cam']['gt_known_loc']):>12} "
                  f"{fmt(re[ROW]['gt_known_loc']):>16} {fmt(ws['cam'].get('maxboxacc_v2')):>15} "
                  f"{fmt(ws[ROW].get('maxboxacc_v2')):>19} {fmt(ws[ROW].get('pxap')):>12}")


def print_speed(results: dict, n: int) -> None:
    print(f"\ncamloc.boxes, {n} photos (paths: decoding included), batch 16, median images/s")
    for key, r in results.items():
        print(f"{key:<26} {r['images_per_s']:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--out", required=True, type=Path, help="JSON file to write")
    parser.add_argument("--data", type=Path, default=data_root(),
                        help="folder of the real splits [default: $CAMLOC_DATA]")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated offline model names")
    parser.add_argument("--splits", default=",".join(SPLITS), help="comma-separated splits of --data")
    parser.add_argument("--parts", default="accuracy,protocols", help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--max-images", type=int, default=None,
                        help="at most this many images per split: every k-th (deterministic) [default: all]")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="speed: interleaved runs per model and region")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if unknown := [p for p in parts if p not in PARTS]:
        parser.error(f"unknown part {unknown[0]}: choose from {', '.join(PARTS)}")
    if args.data is None:
        parser.exit(2, f"{parser.prog}: error: {missing_data('--data')}\n")
    if not all((args.data / s / "image_ids.txt").is_file() for s in args.splits.split(",")):
        parser.error(f"{args.data} lacks one of the splits {args.splits}: set CAMLOC_DATA or --data")
    started = time.time()
    splits = [read_split(args.data, s, args.max_images) for s in args.splits.split(",")]
    models = {name: camloc.load_model(name) for name in args.models.split(",")}
    report = {"machine": machine(), "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "splits": {s.name: {"images": len(s.samples), "of": s.total, "every": s.step} for s in splits}}
    print(f"machine: {report['machine']}; torch {torch.__version__}")
    for s in splits:
        subset = f" (one in {s.step}, in order)" if s.step > 1 else ""
        print(f"{s.name}: {len(s.samples)} of {s.total} images{subset}")
    if "accuracy" in parts:
        report["accuracy"] = {}
        for s in splits:
            images = s.images()
            report["accuracy"][s.name] = {name: {region: accuracy(model, s, images, region, args.batch_size)
                                                 for region in REGIONS} for name, model in models.items()}
            del images
        print_accuracy(report["accuracy"])
    if "protocols" in parts:
        report["protocols"] = {s.name: {name: protocols(model, s, args.batch_size) for name, model in models.items()}
                               for s in splits}
        print_protocols(report["protocols"])
    if "speed" in parts:
        paths = splits[0].paths()[:16]
        report["speed"] = speed(models, paths, args.repeats)
        print_speed(report["speed"], len(paths))
    report["seconds"] = time.time() - started
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\n{report['seconds']:.0f} s; written {args.out}")


if __name__ == "__main__":
    main()
