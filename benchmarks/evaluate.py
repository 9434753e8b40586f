"""MaxBoxAcc at 1,000 thresholds: camloc's one-pass algorithm against the straightforward one, per image.

Maps are efficientnet_lite0 CAMs (ground-truth class, full-image resize) of real photos in
the folder ``CAMLOC_DATA`` names (or any split given with --metadata). For each image, side by side:

* ``straightforward``: one OpenCV contour search per threshold, as the reference evaluator does;
* ``camloc``: :func:`camloc.eval.boxacc.all_contour_table` (one union-find pass over the level sets),
  on one thread and with its outer and hole sweeps on two threads;

for MaxBoxAccV2 (all contours, IoU 30/50/70) and for MaxBoxAcc (largest contour, IoU 50; OpenCV only
where the sweep's contour count leaves the largest in doubt), checking
that the hits are identical at every threshold; and the per-image cost of the forward pass of
efficientnet_lite0 (batch 16) for scale. Usage::

    python benchmarks/evaluate.py [--metadata $CAMLOC_DATA/imagenet-val] [--images 60]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import camloc
from camloc.cam.boxes import to_uint8, upsample
from camloc.data.location import data_root, missing_data
from camloc.data.metadata import read_dataset
from camloc.eval.boxacc import (
    all_contour_table,
    largest_contour_table,
    reference_hits,
    threshold_levels,
    thresholds_list,
)
from camloc.eval.protocols import gt_boxes


def clock(fn, repeats: int = 3):
    """The result of ``fn`` and its best wall time over a few repeats (both algorithms get repeats)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = data_root()
    parser.add_argument("--metadata", type=Path, default=None if data is None else data / "imagenet-val",
                        help="the split [default: $CAMLOC_DATA/imagenet-val]")
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--show", type=int, default=8, help="per-image rows to print")
    args = parser.parse_args()
    if args.metadata is None:
        parser.exit(2, f"{parser.prog}: error: {missing_data('--metadata')}\n")
    root = args.metadata
    samples = [s for s in read_dataset(root) if s.boxes][: args.images]
    model = camloc.load_model()
    paths = [str(root / s.image_id) for s in samples]
    maps = camloc.cams(model, paths, classes=[s.label for s in samples], resize="full", nwc=False)
    u8s = to_uint8(upsample(maps, (224, 224))).numpy()
    taus = thresholds_list(0.001)
    deltas = (30, 50, 70)
    all_contour_table(u8s[0], gt_boxes(samples[0], "wsolevaluation"), deltas)  # compile once

    x = torch.randn(16, 3, 224, 224)
    with torch.no_grad():
        _, fwd = clock(lambda: model(x))
    forward_per_image = fwd / 16

    rows = []
    for s, u8 in zip(samples, u8s, strict=True):
        gt = gt_boxes(s, "wsolevaluation")
        levels = threshold_levels(u8, taus)
        ref2, t_ref2 = clock(lambda: reference_hits(u8, gt, deltas, taus, True), 2)
        seq2, t_seq2 = clock(lambda: all_contour_table(u8, gt, deltas)[threshold_levels(u8, taus)])
        par2, t_par2 = clock(lambda: all_contour_table(u8, gt, deltas, parallel=True)[threshold_levels(u8, taus)])
        ref1, t_ref1 = clock(lambda: reference_hits(u8, gt, (50,), taus, False), 2)
        fast1, t_fast1 = clock(lambda: largest_contour_table(u8, gt, (50,), levels)[levels])
        same2 = np.array_equal(seq2, ref2) and np.array_equal(par2, ref2)
        rows.append((s.image_id, t_ref2, t_seq2, t_par2, same2, t_ref1, t_fast1, np.array_equal(fast1, ref1)))

    print(f"{len(rows)} real maps from {root}, 1,000 thresholds each")
    print(f"{'image':30s} {'V2 straightforward':>19s} {'camloc 1 thread':>16s} {'2 threads':>10s} {'same':>5s}"
          f" {'V1 straightf.':>14s} {'V1 camloc':>10s} {'same':>5s}")
    for r in rows[: args.show]:
        print(f"{Path(r[0]).name[:30]:30s} {r[1] * 1e3:16.1f} ms {r[2] * 1e3:13.2f} ms {r[3] * 1e3:7.2f} ms {str(r[4]):>5s} "
              f"{r[5] * 1e3:11.1f} ms {r[6] * 1e3:7.2f} ms {str(r[7]):>5s}")
    med = lambda i: statistics.median(r[i] for r in rows)  # noqa: E731
    print(f"\nmedian per image, MaxBoxAccV2: straightforward {med(1) * 1e3:.1f} ms; camloc {med(2) * 1e3:.2f} ms on one "
          f"thread ({med(1) / med(2):.1f}x faster), {med(3) * 1e3:.2f} ms on two ({med(1) / med(3):.1f}x); "
          f"identical on {sum(r[4] for r in rows)}/{len(rows)} images")
    print(f"median per image, MaxBoxAcc (V1): straightforward {med(5) * 1e3:.1f} ms; camloc {med(6) * 1e3:.2f} ms "
          f"({med(5) / med(6):.1f}x faster); identical on {sum(r[7] for r in rows)}/{len(rows)} images")
    print(f"efficientnet_lite0 forward pass: {forward_per_image * 1e3:.1f} ms per image (batch 16); "
          f"camloc MaxBoxAccV2 on one thread costs {med(2) / forward_per_image:.2f} of it")


if __name__ == "__main__":
    main()
