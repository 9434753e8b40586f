"""The one-pass multi-threshold box hits equal the straightforward algorithm, map for map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import camloc
from camloc.cam.boxes import to_uint8, upsample
from camloc.eval.boxacc import (
    all_contour_table,
    iou_matrix,
    largest_contour_table,
    reference_hits,
    threshold_levels,
    thresholds_list,
)

from ..conftest import EXAMPLES

DELTAS = [30, 50, 70]


def random_gt(rng, h, w):
    g = rng.integers(0, min(h, w), (int(rng.integers(1, 4)), 4))
    return np.stack([np.minimum(g[:, 0], g[:, 2]), np.minimum(g[:, 1], g[:, 3]),
                     np.maximum(g[:, 0], g[:, 2]), np.maximum(g[:, 1], g[:, 3])], 1)


def check(u8, gt, taus, percentile=100.0):
    levels = threshold_levels(u8, taus, percentile)
    fast = all_contour_table(u8, gt, DELTAS)[levels]
    assert np.array_equal(fast, reference_hits(u8, gt, DELTAS, taus, True, percentile))
    v1 = largest_contour_table(u8, gt, [50], levels)[levels]
    assert np.array_equal(v1, reference_hits(u8, gt, [50], taus, False, percentile))


def test_iou_is_inclusive():
    assert iou_matrix([[0, 0, 9, 9]], [[0, 0, 9, 9]])[0, 0] == 1.0
    assert iou_matrix([[0, 0, 0, 0]], [[0, 0, 1, 1]])[0, 0] == 0.25
    assert iou_matrix([[0, 0, 4, 9]], [[5, 0, 9, 9]])[0, 0] == 0.0


@pytest.mark.parametrize("seed", range(12))
def test_noise_maps_with_many_holes(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(8, 40, 2)
    u8 = rng.integers(0, 256, (h, w), dtype=np.uint8)
    check(u8, random_gt(rng, h, w), np.arange(0, 1, 0.01))


@pytest.mark.parametrize("seed", range(6))
def test_smooth_maps_at_full_size(seed):
    g = torch.Generator().manual_seed(seed)
    u8 = to_uint8(upsample(torch.randn(1, 7, 7, generator=g).cumsum(1), (224, 224)))[0].numpy()
    rng = np.random.default_rng(seed)
    check(u8, random_gt(rng, 224, 224), thresholds_list(0.004), percentile=90.0 if seed % 2 else 100.0)


def test_special_maps():
    taus = np.arange(0, 1, 0.05)
    gt = np.array([[3, 3, 20, 20]])
    check(np.zeros((24, 24), np.uint8), gt, taus)  # constant: no contour, box [0, 0, 0, 0]
    ring = np.zeros((24, 24), np.uint8)
    ring[2:22, 2:22] = 200
    ring[6:18, 6:18] = 10  # a hole whose box matches the ground truth best
    ring[10:12, 10:12] = 250  # an island inside the hole
    check(ring, np.array([[5, 5, 18, 18]]), taus)
    check(np.full((24, 24), 255, np.uint8), gt, taus)  # foreground touches every border


def test_real_maps(lite0):
    paths = sorted(str(p) for p in Path(EXAMPLES).glob("*.jpg"))
    maps = camloc.cams(lite0, paths, topk=2, resize="full").flatten(0, 1)
    u8s = to_uint8(upsample(maps, (224, 224))).numpy()
    rng = np.random.default_rng(0)
    assert len(u8s) == 2 * len(paths) == 6
    for u8 in u8s:
        check(u8, random_gt(rng, 224, 224), thresholds_list(0.002))
