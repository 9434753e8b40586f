"""Overlays (camloc.viz.render): checked at the pixels, where the heat map, the region seen, the boxes and the label go.

A flat photo and a hand-made map make every pixel predictable: JET gives ``(128, 0, 0)`` (BGR) for a
map value of 0 and ``(0, 0, 128)`` for 1; the map covers only the part of the photo the network saw
(the center crop), which is framed in magenta dashes edged in black, the photo outside it darkened to
45 %; each box is a green ``(0, 200, 0)`` line with a white outline on both sides. Lines and letters
scale with the photo: checked on a 64 px and a 2000 px photo.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

import camloc
from camloc.api import Localization
from camloc.viz.drawing import Style
from camloc.viz.render import overlay

from ..helpers import PLAIN, Brightness, painted

GREEN, WHITE, BLACK, MAGENTA = (0, 200, 0), (255, 255, 255), (0, 0, 0), (255, 0, 255)
PHOTO_RGB = (90, 120, 150)
PHOTO = np.array(PHOTO_RGB[::-1])  # BGR, as overlay returns it
DIMMED = np.floor(PHOTO * 0.45 + 0.5)  # outside the region seen
COLD, HOT = np.array([128, 0, 0]), np.array([0, 0, 128])  # JET at 0 and at 255, BGR


def blend(heat):
    return np.round(0.5 * PHOTO + 0.5 * heat)


def runs(line) -> list[tuple[tuple[int, ...], int]]:
    """The colours along a line of pixels, each with how many pixels in a row have it."""
    out: list[tuple[tuple[int, ...], int]] = []
    for px in line:
        c = tuple(int(v) for v in px)
        if out and out[-1][0] == c:
            out[-1] = (c, out[-1][1] + 1)
        else:
            out.append((c, 1))
    return out


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

    # outside the crop the network never saw: the photo, darkened
    for y, x in [(150, 20), (150, 380), (295, 380), (100, 66)]:
        assert (out[y, x] == DIMMED).all(), (y, x, out[y, x])
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

    # the label: white text (the caption) and magenta text (the legend) on a black box in the top-left corner
    assert tuple(out[1, 1]) == BLACK
    corner = out[:40, :150]
    assert (corner == 255).all(-1).any() and (corner == 0).all(-1).sum() > 200
    assert (out[:40] == MAGENTA).all(-1).any()


def test_overlay_frames_the_region_the_model_saw(flat_photo):
    # 400 x 300 resized to 341 x 256, crop 224 at (58, 16): the model saw x 58 * 400/341 = 68.04 to
    # 282 * 400/341 = 330.79, y 16 * 300/256 = 18.75 to 240 * 300/256 = 281.25, i.e. pixels 68..330 x 19..280
    geom = camloc.Preprocess((224, 224), "crop", 256).geometry(400, 300)
    r = result(flat_photo, 400, 300, geom, torch.zeros(8, 8), [(150.0, 100.0, 250.0, 200.0)])
    assert r.region == pytest.approx((58 * 400 / 341, 16 * 300 / 256, 282 * 400 / 341, 240 * 300 / 256))
    out = overlay(str(flat_photo), r)
    line, rim = Style.for_image(400, 300).line, Style.for_image(400, 300).rim
    assert (line, rim) == (2, 1)
    inside = tuple(int(v) for v in blend(COLD))
    dimmed = tuple(int(v) for v in DIMMED)
    # across the left edge, on a dash (dashes of 4 x 2 px from the region's corner, as long gaps): the dimmed
    # photo, 1 px black, 2 px magenta, 1 px black, then the heat map; the frame lies inside the region
    y = 19 + 2 * 16 + 2  # the third dash (the caption's patch covers the first)
    assert runs(out[y, 60:80]) == [(dimmed, 8), (BLACK, rim), (MAGENTA, line), (BLACK, rim), (inside, 8)]
    # between two dashes the heat map shows through; the right, top and bottom edges are dashed too
    assert tuple(out[y + 8, 69]) == inside
    assert runs(out[y, 320:340]) == [(inside, 7), (BLACK, rim), (MAGENTA, line), (BLACK, rim), (dimmed, 9)]
    x = 68 + 14 * 16 + 2  # a dash of the top and bottom edges, clear of the caption's and the legend's patches
    assert [tuple(out[y, x]) for y in (18, 19, 20, 21, 22, 23)] == [dimmed, BLACK, MAGENTA, MAGENTA, BLACK, inside]
    assert [tuple(out[y, x]) for y in (276, 277, 278, 279, 280, 281)] == [inside, BLACK, MAGENTA, MAGENTA, BLACK,
                                                                          dimmed]
    assert tuple(out[20, x + 8]) == inside  # a gap
    assert r.to_dict()["region"] == [68.04, 18.75, 330.79, 281.25] and r.to_dict()["region_mode"] == "crop"


def test_a_whole_image_region_is_framed_inside_the_photo(flat_photo):
    geom = camloc.Preprocess((224, 224), "resize", None).geometry(400, 300)
    r = result(flat_photo, 400, 300, geom, torch.zeros(7, 7), [(150.0, 100.0, 250.0, 200.0)])
    assert r.region == (0.0, 0.0, 400.0, 300.0) and r.region_mode == "full"
    out = overlay(str(flat_photo), r)
    assert runs(out[150, :6])[:3] == [(BLACK, 1), (MAGENTA, 2), (BLACK, 1)]  # the frame on the photo's edge
    assert runs(out[150, -6:])[-3:] == [(BLACK, 1), (MAGENTA, 2), (BLACK, 1)]
    assert not (out == DIMMED).all(-1).any()  # nothing left out, nothing dimmed


@pytest.mark.parametrize("side,line,rim", [(64, 2, 1), (2000, 10, 3)])
def test_lines_and_label_scale_with_the_photo(tmp_path, side, line, rim):
    path = tmp_path / "flat.png"
    Image.new("RGB", (side, side), PHOTO_RGB).save(path)
    geom = camloc.Preprocess((224, 224), "crop", 256).geometry(side, side)
    q = side / 4
    r = dataclasses.replace(result(path, side, side, geom, torch.zeros(7, 7), [(q, q, 3 * q, 3 * q)]),
                            label="Egyptian cat", class_index=285)
    out = overlay(str(path), r)
    assert (Style.for_image(side, side).line, Style.for_image(side, side).rim) == (line, rim)
    # across the box's left edge at mid-height: the white rim, the green line, the white rim, exactly
    y, x0 = side // 2, round(q)
    assert runs(out[y, x0 - line - 2 * rim:x0 + line + 2 * rim])[1:4] == [(WHITE, rim), (GREEN, line), (WHITE, rim)]
    assert tuple(out[y, x0]) == GREEN and tuple(out[y, x0 - 1]) == GREEN
    # the region's left edge: 'line' px of magenta between 'rim' px of black, on a dash (4 lines long) just
    # below mid-height (clear of the label)
    x, top = round(geom.region()[0]), round(geom.region()[1])
    y = top + 8 * line * -(-(side // 2 - top) // (8 * line)) + 1
    assert runs(out[y, x:x + line + 2 * rim + 1])[:3] == [(BLACK, rim), (MAGENTA, line), (BLACK, rim)]
    # the label: the caption's white letters and the legend's magenta ones on a black patch in the top-left
    # corner, the patch inside the photo and the letters inside the patch, clear of its edges (nothing cut off)
    (colour, width), (_, height) = runs(out[0])[0], runs(out[:, 0])[0]
    assert colour == BLACK and width < side and height < side // 2
    patch = out[:height, :width].astype(int)
    ys, xs = np.nonzero((patch > 128).all(-1))  # white, anti-aliased
    assert len(xs) > 10 and 0 < xs.min() and xs.max() < width - 1 and 0 < ys.min()
    text_height = ys.max() - ys.min() + 1
    assert text_height >= 5 and (side < 1000 or text_height > 40)  # readable on both, larger on the large photo
    my, mx = np.nonzero((patch[..., 0] > 128) & (patch[..., 2] > 128) & (patch[..., 1] < patch[..., 0] // 2))
    assert len(mx) > 10 and ys.max() < my.min() and mx.max() < width - 1 and my.max() < height - 1  # below it


def test_overlay_draws_every_region(flat_photo):
    cam = torch.zeros(7, 7)
    boxes = [(40.0, 50.0, 150.0, 250.0), (250.0, 100.0, 350.0, 200.0)]
    out = overlay(str(flat_photo), result(flat_photo, 400, 300, None, cam, boxes))  # no geometry: the whole photo
    for x0, y0, x1, y1 in boxes:
        cy, cx = int((y0 + y1) / 2), int((x0 + x1) / 2)
        assert tuple(out[cy, int(x0)]) == GREEN and tuple(out[cy, int(x1) - 1]) == GREEN
        assert tuple(out[int(y0), cx]) == GREEN and tuple(out[int(y1) - 1, cx]) == GREEN
    # a constant map is all zeros after min-max: the whole photo is blended with JET's 0
    assert np.abs(out[250, 200].astype(int) - blend(COLD)).max() <= 2


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
