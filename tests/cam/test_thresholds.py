"""Automatic threshold standards: otsu, li, triangle and yen, batched in torch, checked
against scikit-image's ``skimage.filters.threshold_*`` called directly on each uint8 map."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from skimage import filters

import camloc
from camloc.cam.boxes import (
    adaptive_thresholds,
    boxes_from_maps,
    foreground,
    histograms_u8,
    thresholds,
    to_uint8,
    upsample,
)
from camloc.cam.rules import ThresholdRule, contour_boxes, make_standard
from camloc.utils.defaults import ADAPTIVE_RULES, STANDARDS
from camloc.utils.errors import UsageError

from ..conftest import EXAMPLES

SKIMAGE = {rule: getattr(filters, f"threshold_{rule}") for rule in ADAPTIVE_RULES}


def reference(u8: np.ndarray, rule: str) -> float:
    """scikit-image on one map, exactly as a user would call it."""
    return float(SKIMAGE[rule](u8))


def assert_matches_skimage(u8: np.ndarray, rule: str) -> None:
    """Batched values equal per-map scikit-image; the integer thresholds select the same pixels."""
    ours = adaptive_thresholds(torch.from_numpy(u8), rule).tolist()
    ints = thresholds(torch.from_numpy(u8), ThresholdRule.adaptive(rule)).tolist()
    for i, m in enumerate(u8):
        ref = reference(m, rule)
        if rule == "li":  # a float; float64 logs may differ from numpy's in the last bit
            assert math.isclose(ours[i], ref, rel_tol=1e-12, abs_tol=1e-12), (i, ours[i], ref)
        else:
            assert ours[i] == ref, (rule, i, ours[i], ref)
        assert np.array_equal(m > ints[i], m > ref), (rule, i, ints[i], ref)


def smooth_maps(n: int, seed: int, size=(224, 224), grid=7) -> np.ndarray:
    """CAM-like maps: random low-resolution activations (ReLU'd, some shifted), upsampled, to uint8."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(n, grid, grid, generator=g)
    raw[: n // 2] = raw[: n // 2].relu()  # sparse positive maps, like ReLU'd CAMs
    raw[n // 2:] = raw[n // 2:] * torch.rand(n - n // 2, 1, 1, generator=g) * 4
    return to_uint8(upsample(raw, size)).numpy()


@pytest.mark.parametrize("rule", ADAPTIVE_RULES)
def test_smooth_cam_like_maps(rule):
    assert_matches_skimage(smooth_maps(120, seed=1), rule)
    assert_matches_skimage(smooth_maps(60, seed=2, size=(96, 128), grid=14), rule)


@pytest.mark.parametrize("rule", ADAPTIVE_RULES)
def test_noise_bimodal_few_levels_and_peaks(rule):
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(20, 40, 33), dtype=np.uint8)
    narrow = rng.integers(100, 140, size=(10, 40, 33), dtype=np.uint8)  # a histogram far from 0 and 255
    modes = [
        np.where(rng.random((40, 33)) < w, rng.normal(a, s, (40, 33)), rng.normal(b, s, (40, 33)))
        for w, a, b, s in [(0.5, 60, 190, 15), (0.8, 30, 220, 10), (0.1, 40, 160, 25), (0.3, 120, 130, 5)]
        for _ in range(3)
    ]
    bimodal = np.clip(np.stack(modes), 0, 255).astype(np.uint8)
    few = np.stack([rng.choice(np.array(lv, dtype=np.uint8), size=(40, 33))
                    for lv in ([0, 255], [3, 4], [10, 11, 200], [0, 50, 51, 52, 250], [7, 9], [0, 128, 255])])
    few[0, 0, 0] = 0  # sure to hold both levels
    few[0, 0, 1] = 255
    yy, xx = np.mgrid[:40, :33]
    blobs = []
    for cy, cx, s in [(20, 16, 4), (5, 30, 8), (35, 2, 15), (20, 16, 40)]:
        g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * s * s))
        blobs.append(np.uint8(255 * (g - g.min()) / (g.max() - g.min())))  # single peak, long tail at 0
        blobs.append(255 - blobs[-1])  # the peak at the right: triangle flips
    skew = np.stack([np.uint8(255 * rng.random((40, 33)) ** p) for p in (0.2, 0.5, 3.0, 8.0)])
    for maps in (noise, narrow, bimodal, few, np.stack(blobs), skew):
        assert_matches_skimage(maps, rule)


def test_triangle_flips_both_ways():
    """The triangle rule's two branches are both exercised (peak left of centre and right of it)."""
    rng = np.random.default_rng(11)
    left = np.uint8(np.clip(rng.exponential(20, (50, 50)), 0, 255))  # peak near 0, long right tail: flip
    right = 255 - left
    for m in (left, right):
        assert_matches_skimage(m[None], "triangle")
    hist = np.bincount(left.ravel(), minlength=256)
    assert hist.argmax() - left.min() < left.max() - hist.argmax()


@pytest.fixture(scope="module")
def real_maps(lite0):
    paths = [str(EXAMPLES / f) for f in ("cat.jpg", "coffee.jpg", "rocket.jpg")]
    maps = camloc.cams(lite0, paths, topk=4)  # 3 x 4 x h x w: the top-4 classes' maps
    return to_uint8(upsample(maps.flatten(0, 1), (224, 224))).numpy()


@pytest.mark.parametrize("rule", ADAPTIVE_RULES)
def test_real_cams(real_maps, rule):
    assert real_maps.shape == (12, 224, 224) and len({m.tobytes() for m in real_maps}) == 12
    assert_matches_skimage(real_maps, rule)


@pytest.mark.parametrize("rule", ADAPTIVE_RULES)
def test_batched_equals_one_map_at_a_time(rule):
    maps = torch.from_numpy(smooth_maps(16, seed=5))
    batched = adaptive_thresholds(maps, rule)
    single = torch.cat([adaptive_thresholds(m[None], rule) for m in maps])
    assert torch.equal(batched, single)
    assert batched.dtype == torch.float64 and batched.shape == (16,)
    assert adaptive_thresholds(maps[:0], rule).shape == (0,)


@pytest.mark.parametrize("rule", ADAPTIVE_RULES)
def test_constant_and_all_zero_maps_give_the_whole_image(rule):
    u8 = np.zeros((3, 30, 40), dtype=np.uint8)
    u8[1] = 9
    u8[2] = 255
    t = adaptive_thresholds(torch.from_numpy(u8), rule).tolist()
    assert t == [reference(m, rule) for m in u8] == [0.0, 9.0, 255.0]
    t_int = thresholds(torch.from_numpy(u8), ThresholdRule.adaptive(rule))
    assert not bool((torch.from_numpy(u8) > t_int.view(-1, 1, 1).to(torch.uint8)).any())  # U > t: empty
    # an all-zero raw map stays all zeros after upsampling: an empty mask, hence the whole-image box
    # (a constant non-zero map does not: bicubic weights leave ~1e-7 ripples, in OpenCV as here)
    raw = torch.zeros(2, 7, 7)
    u, mask = foreground(raw, (30, 40), ThresholdRule.adaptive(rule))
    assert int(u.max()) == 0 and not bool(mask.any())
    assert [b for b, _ in boxes_from_maps(raw, (30, 40), ThresholdRule.adaptive(rule))] == [(0, 0, 40, 30)] * 2
    assert contour_boxes(np.zeros((30, 40), np.uint8))[0] == (0, 0, 40, 30)


def test_mixed_batch_with_constant_maps():
    maps = smooth_maps(6, seed=9)
    maps[2] = 0
    maps[4] = 77
    for rule in ADAPTIVE_RULES:
        assert_matches_skimage(maps, rule)


@pytest.mark.parametrize("rule", ADAPTIVE_RULES)
def test_boxes_lie_inside_the_image(rule):
    g = torch.Generator().manual_seed(3)
    raw = torch.randn(12, 7, 7, generator=g).relu()
    raw[0] = 0
    h, w = 160, 224
    results = boxes_from_maps(raw, (h, w), make_standard(rule), all_regions=True)
    assert len(results) == 12
    for box, regions in results:
        for x0, y0, x1, y1 in [box, *regions]:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert results[0][0] == (0, 0, w, h)


def test_foreground_is_strict_and_follows_skimage():
    maps = smooth_maps(8, seed=4)
    raw = torch.from_numpy(maps).double()  # foreground re-quantises; compare against the U it returns
    for rule in ADAPTIVE_RULES:
        u, mask = foreground(raw, maps.shape[1:], ThresholdRule.adaptive(rule))
        for i, m in enumerate(u.numpy()):
            assert np.array_equal(mask[i].numpy(), m > reference(m, rule))


def test_histograms_are_per_map_bincounts():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(5, 13, 11), dtype=np.uint8)
    hist = histograms_u8(torch.from_numpy(u8)).numpy()
    assert hist.shape == (5, 256) and all(np.array_equal(hist[i], np.bincount(u8[i].ravel(), minlength=256))
                                          for i in range(5))


def test_make_standard_names():
    assert STANDARDS == ("percentile", "max", "otsu", "li", "triangle", "yen")
    assert make_standard() == ThresholdRule(0.35, 90.0) == ThresholdRule.pas()
    assert make_standard("max") == ThresholdRule(0.2, 100.0) == ThresholdRule.max()
    assert make_standard("percentile", 0.5, 80.0) == ThresholdRule(0.5, 80.0, "percentile")
    for rule in ADAPTIVE_RULES:
        s = make_standard(rule)
        assert s == ThresholdRule.adaptive(rule) == ThresholdRule(rule=rule) and s.rule == rule and s.name == rule
        assert (s.theta, s.percentile) == (None, None)
        assert make_standard(rule, None, 75.0) == s  # percentile is the percentile rule's alone
    assert [make_standard(n).name for n in STANDARDS] == list(STANDARDS)


def test_repr_and_asdict_record_the_rule():
    assert repr(ThresholdRule.pas()) == "ThresholdRule(theta=0.35, percentile=90.0, rule='percentile')"
    assert repr(make_standard("yen")) == "ThresholdRule(theta=None, percentile=None, rule='yen')"
    assert dataclasses.asdict(make_standard("otsu")) == {"theta": None, "percentile": None, "rule": "otsu"}
    assert dataclasses.asdict(ThresholdRule.max()) == {"theta": 0.2, "percentile": 100.0, "rule": "percentile"}
    assert ThresholdRule(0.3, 70.0) == ThresholdRule(theta=0.3, percentile=70.0)  # positional use unchanged


def test_bad_names_fail_in_one_clear_line():
    with pytest.raises(UsageError) as err:
        make_standard("otsu2")
    msg = str(err.value)
    assert "\n" not in msg and "'otsu2'" in msg
    assert all(repr(n) in msg for n in STANDARDS)
    with pytest.raises(UsageError, match="theta applies only to the 'percentile' and 'max'"):
        make_standard("li", 0.3)
    with pytest.raises(ValueError, match="rule must be one of 'percentile', 'otsu', 'li', 'triangle', 'yen'"):
        ThresholdRule(rule="max")
    with pytest.raises(ValueError, match="apply only to the 'percentile' rule"):
        ThresholdRule(0.35, 90.0, "otsu")
    with pytest.raises(ValueError, match="adaptive rule must be one of"):
        ThresholdRule.adaptive("percentile")
    with pytest.raises(ValueError, match="adaptive rule must be one of"):
        adaptive_thresholds(torch.zeros(1, 2, 2, dtype=torch.uint8), "mean")
    with pytest.raises(ValueError, match="uint8"):
        adaptive_thresholds(torch.zeros(1, 2, 2), "otsu")


def test_float32_scan_is_numpys_cumsum():
    """Yen needs numpy's left-to-right float32 cumsum; torch.cumsum rounds differently."""
    from camloc.cam.boxes import _scan_f32

    rng = np.random.default_rng(1)
    x = rng.random((50, 256)).astype(np.float32) / 97
    assert np.array_equal(_scan_f32(torch.from_numpy(x)).numpy(), np.cumsum(x, axis=1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("rule", ADAPTIVE_RULES)
def test_on_the_maps_device(rule):
    maps = smooth_maps(64, seed=6)
    cpu = adaptive_thresholds(torch.from_numpy(maps), rule)
    gpu = adaptive_thresholds(torch.from_numpy(maps).cuda(), rule)
    assert gpu.device.type == "cuda"
    if rule == "li":
        assert torch.allclose(gpu.cpu(), cpu, rtol=1e-12, atol=1e-12)
    else:
        assert torch.equal(gpu.cpu(), cpu)
    assert torch.equal(thresholds(torch.from_numpy(maps).cuda(), ThresholdRule.adaptive(rule)).cpu(),
                       thresholds(torch.from_numpy(maps), ThresholdRule.adaptive(rule)))
