"""What ``camloc diagnose`` costs: against a plain forward pass over the same photos, and its statistics against
the per-image, per-channel NumPy loop one would write by hand, side by side in one run.

On efficientnet_lite0 (offline ImageNet weights) and the first ``--images`` photos of a wsolevaluation split:

* ``forward``: camloc's image loader and the model's forward pass alone (the floor any diagnosis pays);
* ``diagnose``: :func:`camloc.eval.diagnosis.diagnose`, everything included;
* ``statistics``: :func:`camloc.eval.diagnosis.batch_statistics` on features captured once (without the
  box ratios, then with them), against a plain loop over images and channels (NumPy areas,
  ``scipy.stats.spearmanr``, OpenCV bicubic resize and threshold per map) that computes the same
  area-weight correlation and IoAs (the largest difference is printed).

Times are medians of ``--repeats`` runs after a warm-up. Usage::

    python benchmarks/diagnose.py [--data DIR] [--split imagenet-val] [--images 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import camloc
from camloc.cam.extractor import CAMExtractor
from camloc.data.location import data_root, missing_data
from camloc.data.metadata import read_dataset
from camloc.eval.diagnosis import batch_statistics, diagnose, input_boxes
from camloc.eval.evaluation import sample_batches


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def plain_statistics(features: np.ndarray, weights: np.ndarray, truth: list[np.ndarray], size: tuple[int, int]):
    """The same statistics as ``batch_statistics``, image by image and channel by channel."""
    from scipy.stats import spearmanr

    out = []
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    for f, wt, gt in zip(features, weights, truth, strict=True):
        areas, keep_w = [], []
        for c in range(f.shape[0]):
            peak = f[c].max()
            if wt[c] > 0 and peak > 0:
                areas.append(float((f[c] > 0.1 * peak).mean()))
                keep_w.append(float(wt[c]))
        rho = spearmanr(areas, keep_w).statistic if len(areas) >= 3 else math.nan
        region = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in gt:
            region |= (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
        row = {"area_weight_rho": rho}
        for name, sel in (("positive", np.clip(wt, 0, None)), ("negative", np.clip(-wt, 0, None))):
            m = np.tensordot(sel, f, axes=1)
            up = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float64)
            span = up.max() - up.min()
            if span <= 0 or not region.any():
                row[f"ioa_{name}"] = math.nan
                continue
            u8 = ((up - up.min()) / span * 255).astype(np.uint8)
            fg = u8 > int(0.2 * u8.max())
            row[f"ioa_{name}"] = float((fg & region).sum() / region.sum())
        out.append(row)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=data_root(), help="folder holding the split [default: $CAMLOC_DATA]")
    p.add_argument("--split", default="imagenet-val")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.data is None:
        p.exit(2, f"{p.prog}: error: {missing_data('--data')}\n")
    root = args.data / args.split
    samples = read_dataset(root)[: args.images]
    model = camloc.load_model("efficientnet_lite0")
    pre = camloc.preprocess_for(model)

    def forward():
        with torch.no_grad():
            for chunk in sample_batches(samples, root, pre, args.batch, torch.device("cpu")):
                model(chunk.x)

    t_forward = median_time(forward, args.repeats)
    t_diagnose = median_time(lambda: diagnose(model, samples, root, batch_size=args.batch, progress=False), args.repeats)
    chunk = next(iter(sample_batches(samples[: args.batch], root, pre, args.batch, torch.device("cpu"))))
    out = CAMExtractor(model, input_size=pre.input_size).channels(chunk.x, classes=chunk.labels.tolist())
    truth = [input_boxes(s, pre) for s in chunk.samples]
    w = out.weights[:, 0]
    t_ours = median_time(lambda: batch_statistics(out.features, w, truth, pre.input_size, box_ratios=False),
                         args.repeats)
    t_boxes = median_time(lambda: batch_statistics(out.features, w, truth, pre.input_size), args.repeats)
    f_np, w_np = out.features.numpy().astype(np.float64), w.numpy().astype(np.float64)
    t_plain = median_time(lambda: plain_statistics(f_np, w_np, truth, pre.input_size), args.repeats)
    ours = batch_statistics(out.features, w, truth, pre.input_size, box_ratios=False)
    plain = plain_statistics(f_np, w_np, truth, pre.input_size)
    worst = max(abs(a[k] - b[k]) for a, b in zip(ours, plain, strict=True) for k in b
                if not (math.isnan(a[k]) and math.isnan(b[k])))
    n, b = len(samples), len(chunk.samples)
    print(f"efficientnet_lite0 on {n} {args.split} photos, batch {args.batch}, {torch.get_num_threads()} threads; "
          f"medians of {args.repeats}")
    print(f"{'what':<28} {'ms / image':>10} {'ratio':>8}")
    print(f"{'forward (loader + model)':<28} {1000 * t_forward / n:>10.1f} {'1.00x':>8}")
    print(f"{'camloc diagnose':<28} {1000 * t_diagnose / n:>10.1f} {t_diagnose / t_forward:>7.2f}x  of the forward")
    print(f"{'statistics, plain loop':<28} {1000 * t_plain / b:>10.1f} {'1.00x':>8}")
    print(f"{'statistics, camloc':<28} {1000 * t_ours / b:>10.1f} {t_plain / t_ours:>7.2f}x  faster")
    print(f"{'+ box-to-GT ratios, camloc':<28} {1000 * t_boxes / b:>10.1f}   (4 variants' boxes: contours per image)")
    print(f"largest difference between the two statistics: {worst:.2e}")


if __name__ == "__main__":
    main()
