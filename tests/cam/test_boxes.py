"""Map -> box, checked against a straight numpy + OpenCV reading of the authors' procedure."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import camloc
from camloc.cam.boxes import boxes_from_maps, foreground, thresholds, to_uint8, upsample
from camloc.cam.rules import ThresholdRule, contour_boxes

from ..conftest import EXAMPLES


def reference_box(cam: np.ndarray, theta: float, pct: float, size=(224, 224)):
    """docs/protocols.md ("The box rule"), written the plain way: cv2 resize, numpy percentile, OpenCV contours."""
    up = cv2.resize(cam.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    span = up.max() - up.min()
    u8 = np.uint8(255 * ((up - up.min()) / span if span > 0 else np.zeros_like(up)))
    t = int(theta * np.percentile(u8, pct))
    contours, _ = cv2.findContours((u8 > t).astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return (0, 0, size[1], size[0])
    x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
    return (x, y, x + w, y + h)


def test_upsample_matches_opencv_bicubic():
    cam = torch.randn(3, 7, 7)
    ours = upsample(cam, (224, 224)).numpy()
    for i in range(3):
        ref = cv2.resize(cam[i].numpy(), (224, 224), interpolation=cv2.INTER_CUBIC)
        assert np.abs(ours[i] - ref).max() < 1e-4


def test_uint8_is_truncated_minmax_and_constant_map_is_zero():
    m = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    assert to_uint8(m).tolist() == [[[0, 85], [170, 255]]]
    flat = to_uint8(torch.full((1, 5, 5), 3.0))
    assert flat.dtype == torch.uint8 and int(flat.max()) == 0


def test_threshold_is_truncated_theta_times_numpy_percentile():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(20, 31, 17), dtype=np.uint8)
    u8[0] = 7  # a constant map
    u8[1, :, :5] = 255  # a skewed one
    for theta, pct in [(0.35, 90.0), (0.2, 100.0), (0.5, 37.5), (1.0, 0.0), (0.7, 33.3), (0.35, 99.99), (0.6, 0.01)]:
        ours = thresholds(torch.from_numpy(u8), ThresholdRule(theta, pct)).tolist()
        ref = [int(theta * np.percentile(m, pct)) for m in u8]
        assert ours == ref


def test_percentile_equals_numpy_bit_for_bit():
    from camloc.cam.boxes import percentile_u8

    rng = np.random.default_rng(3)
    u8 = rng.integers(0, 256, size=(50, 14, 9), dtype=np.uint8)
    for q in rng.uniform(0, 100, size=40).tolist() + [0.0, 50.0, 90.0, 100.0]:
        ours = percentile_u8(torch.from_numpy(u8), q).numpy()
        ref = np.percentile(u8.reshape(50, -1), q, axis=1)
        assert np.array_equal(ours, ref), q


def test_foreground_is_strictly_greater():
    u = torch.tensor([[[0.0, 10.0, 10.0, 20.0]]])  # uint8 -> 0, 127, 127, 255; max standard 0.5 -> t = 127
    u8, mask = foreground(u, (1, 4), ThresholdRule(0.5, 100.0))
    assert u8.tolist() == [[[0, 127, 127, 255]]]
    assert mask.tolist() == [[[False, False, False, True]]]


def test_largest_contour_wins_and_no_contour_gives_whole_image():
    mask = np.zeros((50, 60), np.uint8)
    mask[5:10, 5:10] = 1  # 5x5
    mask[20:40, 30:55] = 1  # 20x25, the largest
    main, regions = contour_boxes(mask, all_regions=True)
    assert main == (30, 20, 55, 40)
    assert regions == [(30, 20, 55, 40), (5, 5, 10, 10)]
    assert contour_boxes(np.zeros((50, 60), np.uint8)) == ((0, 0, 60, 50), [(0, 0, 60, 50)])


def test_all_regions_on_a_hand_built_map_with_two_blobs():
    cam = torch.zeros(1, 224, 224)  # already at input size: the bicubic upsample is the identity
    cam[0, 20:60, 30:90] = 1.0  # blob A: x 30..90, y 20..60 (area 2400)
    cam[0, 120:200, 100:210] = 0.8  # blob B: x 100..210, y 120..200 (area 8800), dimmer but larger
    ((main, regions),) = boxes_from_maps(cam, (224, 224), ThresholdRule.max(0.5), all_regions=True)
    assert main == (100, 120, 210, 200)  # the largest region, not the brightest
    assert regions == [(100, 120, 210, 200), (30, 20, 90, 60)]
    ((main_only, single),) = boxes_from_maps(cam, (224, 224), ThresholdRule.max(0.5))
    assert main_only == main and single == [main]
    ((_, bright),) = boxes_from_maps(cam, (224, 224), ThresholdRule.max(0.9), all_regions=True)
    assert bright == [(30, 20, 90, 60)]  # 0.9 x 255 = 229 > 204: the dim blob drops out


def test_constant_map_gives_whole_image_box_without_nan():
    (main, _), = boxes_from_maps(torch.zeros(1, 7, 7), (224, 224), ThresholdRule.pas())
    assert main == (0, 0, 224, 224)


@pytest.mark.parametrize("theta,pct", [(0.35, 90.0), (0.2, 100.0), (0.5, 50.0)])
def test_boxes_equal_reference_on_random_maps(theta, pct):
    g = torch.Generator().manual_seed(1)
    maps = torch.randn(200, 7, 7, generator=g).cumsum(1).cumsum(2)  # smooth-ish blobs
    maps[::7] = torch.rand(maps[::7].shape, generator=g)  # and some noise
    ours = [b for b, _ in boxes_from_maps(maps, (224, 224), ThresholdRule(theta, pct))]
    ref = [reference_box(m.numpy(), theta, pct) for m in maps]
    mismatches = sum(a != b for a, b in zip(ours, ref, strict=True))
    # float32 (torch) vs float32 (OpenCV) bicubic may put a rare pixel on the other side of a uint8 step
    assert mismatches <= 2, mismatches


def test_boxes_equal_reference_on_real_maps(lite0):
    paths = sorted(str(p) for p in Path(EXAMPLES).glob("*.jpg"))
    assert len(paths) == 3
    maps = camloc.cams(lite0, paths, topk=3).flatten(0, 1)
    ours = [b for b, _ in boxes_from_maps(maps, (224, 224), ThresholdRule.pas())]
    assert ours == [reference_box(m.numpy(), 0.35, 90.0) for m in maps]


def test_standard_validation():
    with pytest.raises(ValueError):
        ThresholdRule(1.5, 90)
    with pytest.raises(ValueError):
        ThresholdRule(0.3, 120)
    assert ThresholdRule.max() == ThresholdRule(0.2, 100.0)
