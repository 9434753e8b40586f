"""Overlays (camloc.viz.render): checked at the pixels, where the heat map, the boxes and the label go.

A flat photo and a hand-made map make every pixel predictable: JET gives ``(128, 0, 0)`` (BGR) for a
map value of 0 and ``(0, 0, 128)`` for 1; the map covers only the part of the photo the network saw
(the center crop); each box is a green ``(0, 200, 0)`` line with a white outline on both sides.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import camloc
from camloc.api import Localization
from camloc.viz.render import overlay

from ..helpers import PLAIN, Brightness, painted

GREEN, WHITE, BLACK = (0, 200, 0), (255, 255, 255), (0, 0, 0)
PHOTO_RGB = (90, 120, 150)
PHOTO = np.array(PHOTO_RGB[::-1])  # BGR, as overlay returns it
COLD, HOT = np.array([128, 0, 0]), np.array([0, 0, 128])  # JET at 0 and at 255, BGR


def blend(heat):
    return np.round(0.5 * PHOTO + 0.5 * heat)


def result(path, width, height, geometry, cam, boxes):
    return Localization(image=str(path), width=width, height=height, class_index=3, label="thing", score=0.5,
                        box=boxes[0], boxes=tuple(boxes), cam=cam, geometry=geometry)


def run_outward(out, y, x, dx, dy):
    """Colours met walking from (x, y) in direction (dx, dy), runs of equal pixels collapsed."""
    seen = []
    for _ in range(12):
        c = tuple(int(v) for v in out[y, x])
        if not seen or seen[-1] != c:
            seen.append(c)
        x, y = x + dx, y + dy
    return seen


@pytest.fixture
def flat_photo(tmp_path):
    path = tmp_path / "flat.png"
    Image.new("RGB", (400, 300), PHOTO_RGB).save(path)
    return path


def test_overlay_pixels(flat_photo):
    geom = camloc.Preprocess((224, 224), "crop", 256).geometry(400, 300)  # 341 x 256, crop at (58, 16)
    assert (geom.left, geom.top) == (58, 16)
    cam = torch.zeros(8, 8)
    cam[:, 4:] = 1.0  # the left half of the network input cold, the right half hot
    box = (120.0, 60.0, 280.0, 240.0)
    out = overlay(str(flat_photo), result(flat_photo, 400, 300, geom, cam, [box]))
    assert out.shape == (300, 400, 3) and out.dtype == np.uint8

    # outside the crop the network never saw: the photo, untouched
    for y, x in [(150, 20), (150, 380), (295, 200), (100, 66)]:
        assert (out[y, x] == PHOTO).all(), (y, x, out[y, x])
    # inside it, far from the box: the photo blended half and half with the map's colour
    # (a map value of 1 may come out of the float32 warp as 0.99999, truncated to level 254: JET moves
    # 4 per level there, so 2 after blending)
    assert np.abs(out[150, 100].astype(int) - blend(COLD)).max() <= 2  # input x ~27: map 0
    assert np.abs(out[270, 300].astype(int) - blend(HOT)).max() <= 2  # input x ~198: map 1
    assert np.abs(out[30, 320].astype(int) - blend(HOT)).max() <= 2
    assert np.abs(out[150, 100].astype(int) - blend(HOT)).max() > 50  # the two are far apart

    # the box: a green line on each edge, white on both sides of it, then the picture again
    mid_x, mid_y = 200, 150
    for (y, x), (dy, dx) in [((mid_y, 120), (0, 1)), ((mid_y, 279), (0, 1)), ((60, mid_x), (1, 0)),
                             ((239, mid_x), (1, 0))]:
        assert tuple(out[y, x]) == GREEN, (y, x, out[y, x])
        for sign in (1, -1):
            seen = run_outward(out, y, x, sign * dx, sign * dy)
            assert seen[:2] == [GREEN, WHITE] and seen[2] not in (GREEN, WHITE), (y, x, sign, seen)
    assert tuple(out[mid_y, mid_x]) not in (GREEN, WHITE)  # the inside of the box is not filled

    # the label: white text on a black box in the top-left corner
    assert tuple(out[1, 1]) == BLACK
    corner = out[:40, :150]
    assert (corner == 255).all(-1).any() and (corner == 0).all(-1).sum() > 200


def test_overlay_draws_every_region(flat_photo):
    cam = torch.zeros(7, 7)
    boxes = [(40.0, 50.0, 150.0, 250.0), (250.0, 100.0, 350.0, 200.0)]
    out = overlay(str(flat_photo), result(flat_photo, 400, 300, None, cam, boxes))  # no geometry: the whole photo
    for x0, y0, x1, y1 in boxes:
        cy, cx = int((y0 + y1) / 2), int((x0 + x1) / 2)
        assert tuple(out[cy, int(x0)]) == GREEN and tuple(out[cy, int(x1) - 1]) == GREEN
        assert tuple(out[int(y0), cx]) == GREEN and tuple(out[int(y1) - 1, cx]) == GREEN
    # a constant map is all zeros after min-max: the whole photo is blended with JET's 0
    assert np.abs(out[280, 200].astype(int) - blend(COLD)).max() <= 2


def test_overlay_of_a_real_result_frames_the_painted_object(tmp_path):
    rect = (64, 48, 160, 176)
    path = tmp_path / "object.png"
    painted(224, 224, rect).save(path)
    pre = camloc.Preprocess((224, 224), "resize", None, **PLAIN)
    (r,) = camloc.boxes(Brightness(), [str(path)], classes=0, standard="max", theta=0.5, preprocess=pre)
    assert r.box == tuple(float(v) for v in rect)
    out = overlay(str(path), r)
    x0, y0, x1, y1 = rect
    assert tuple(out[(y0 + y1) // 2, x0]) == GREEN and tuple(out[(y0 + y1) // 2, x1 - 1]) == GREEN
    assert tuple(out[y0, (x0 + x1) // 2]) == GREEN and tuple(out[y1 - 1, (x0 + x1) // 2]) == GREEN
