"""Real photos with real boxes (the folder $CAMLOC_DATA names; skipped where it is unset)."""

from __future__ import annotations

import camloc
from camloc.data.metadata import read_dataset
from camloc.eval.boxacc import iou_matrix

from ..conftest import data_dir


def test_imagenet_val_gt_known_loc(lite0):
    root = data_dir("imagenet-val")
    samples = read_dataset(root)[:100]
    results = camloc.boxes(
        lite0,
        [str(root / s.image_id) for s in samples],
        classes=[s.label for s in samples],
        standard="max",
        theta=0.2,
        resize="full",
        batch_size=25,
    )
    hits = [iou_matrix([r.box], list(s.boxes)).max() >= 0.5 for r, s in zip(results, samples, strict=True)]
    assert sum(hits) / len(hits) >= 0.55


def test_imagenet_val_top1_is_real(lite0):
    root = data_dir("imagenet-val")
    samples = read_dataset(root)[:100]
    results = camloc.boxes(lite0, [str(root / s.image_id) for s in samples], resize="full", batch_size=25)
    top1 = sum(r.class_index == s.label for r, s in zip(results, samples, strict=True)) / len(samples)
    assert top1 >= 0.55  # about 68% on the squashed images (data README)
