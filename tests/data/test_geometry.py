"""Boxes come back in original pixels, undoing resize and center crop exactly.

A hand-built model whose feature map is the image brightness at full input resolution makes the CAM
the object itself, so the box must land on the rectangle we painted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torchvision.transforms as T
from PIL import Image

import camloc
from camloc import Geometry, Preprocess

from ..helpers import PLAIN, Brightness, painted


@pytest.mark.parametrize(
    "pre,size,rect",
    [
        (Preprocess((224, 224), "resize", None, **PLAIN), (640, 480), (100, 150, 300, 400)),
        (Preprocess((224, 224), "resize", None, **PLAIN), (300, 900), (20, 600, 280, 880)),
        (Preprocess((224, 224), "crop", 256, **PLAIN), (640, 480), (150, 100, 400, 300)),
        (Preprocess((224, 224), "crop", 256, **PLAIN), (500, 1000), (120, 300, 380, 700)),
        (Preprocess((224, 224), "crop", (256, 256), **PLAIN), (800, 600), (200, 150, 500, 420)),
    ],
)
def test_box_maps_back_to_painted_rectangle(pre, size, rect):
    img = painted(*size, rect)
    (r,) = camloc.boxes(Brightness(), [img], classes=0, standard="max", theta=0.5, preprocess=pre)
    tol = max(size[0] / 224, size[1] / 224) * 1.5  # one and a half input pixels
    assert np.allclose(r.box, rect, atol=tol), (r.box, rect)
    assert (r.width, r.height) == size


def test_box_never_leaves_the_image():
    img = painted(400, 300, (0, 0, 400, 300))  # object fills the image, edges included
    for pre in (Preprocess((224, 224), "resize", None, **PLAIN), Preprocess((224, 224), "crop", 256, **PLAIN)):
        (r,) = camloc.boxes(Brightness(), [img], classes=0, preprocess=pre, all_regions=True)
        for box in (r.box, *r.boxes):
            assert 0 <= box[0] <= box[2] <= 400 and 0 <= box[1] <= box[3] <= 300


@pytest.mark.parametrize("size", [(640, 480), (333, 517), (224, 224), (100, 1000)])
def test_resize_crop_matches_torchvision_eval_transform(size):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    ours, geom = Preprocess((224, 224), "crop", 256, interpolation="bilinear").resize_crop(img)
    ref = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(224)])(img)
    assert np.array_equal(np.asarray(ours), np.asarray(ref))
    assert geom.input_width == geom.input_height == 224


def test_geometry_inverse_of_a_point():
    g = Preprocess((224, 224), "crop", 256).geometry(640, 480)
    assert (g.left, g.top) == (58, 16)  # 341 x 256 resized, torchvision's rounding of the crop offset
    x0, y0, x1, y1 = g.box_to_original((0, 0, 224, 224))
    assert x0 == pytest.approx(58 * 640 / 341) and y0 == pytest.approx(16 * 480 / 256)
    assert x1 == pytest.approx((58 + 224) * 640 / 341) and y1 == pytest.approx((16 + 224) * 480 / 256)


def test_resize_geometry_scales_each_axis_and_clips():
    g = Preprocess((224, 224), "resize", None).geometry(448, 112)
    assert (g.sx, g.sy, g.left, g.top) == (0.5, 2.0, 0, 0)
    assert g.box_to_original((10, 20, 30, 40)) == (20.0, 10.0, 60.0, 20.0)
    assert g.box_to_original((-5, -5, 300, 300)) == (0.0, 0.0, 448.0, 112.0)  # never outside the image
    assert Preprocess((224, 224), "resize", None).resize_crop(Image.new("RGB", (448, 112)))[0].size == (224, 224)


# -- the region of the original image the model saw ----------------------------------------------------


@pytest.mark.parametrize("size", [(640, 480), (300, 900), (451, 300), (227, 227), (50, 93)])
def test_the_region_seen_in_full_mode_is_the_whole_image(size):
    g = Preprocess((224, 224), "resize", None).geometry(*size)
    assert g.mode == "full" and g.region() == (0.0, 0.0, float(size[0]), float(size[1]))
    assert Geometry.identity(*size).region() == (0.0, 0.0, float(size[0]), float(size[1]))
    assert Geometry.identity(*size).mode == "full"


def test_the_region_seen_in_crop_mode_is_the_crop_window_in_original_pixels():
    # 227 x 227, the shorter side resized to 256 (crop_pct 224/256 = 0.875): 256 x 256, cropped at (16, 16);
    # back in original pixels 16 x 227/256 = 14.1875 to (16 + 224) x 227/256 = 212.8125
    g = Preprocess((224, 224), "crop", 256).geometry(227, 227)
    assert g.mode == "crop" and g.region() == (14.1875, 14.1875, 212.8125, 212.8125)
    # 640 x 480: resized to 341 x 256, crop at (58, 16): x 58 x 640/341 to 282 x 640/341, y 16 x 480/256 = 30 to 450
    g = Preprocess((224, 224), "crop", 256).geometry(640, 480)
    assert g.region() == pytest.approx((108.856305, 30.0, 529.266862, 450.0), abs=1e-6)
    assert g.region() == pytest.approx((58 * 640 / 341, 30.0, 282 * 640 / 341, 450.0), abs=1e-6)
    # the rethinking protocol's 256 x 256 resize keeps 16 .. 240 of 256 on each side
    assert Preprocess((224, 224), "crop", (256, 256)).geometry(800, 600).region() == (50.0, 37.5, 750.0, 562.5)
    # a crop larger than the resized image (torchvision pads it with black) shows the whole image
    assert Preprocess((224, 224), "crop", 200).geometry(200, 200).region() == (0.0, 0.0, 200.0, 200.0)


def test_the_region_is_where_boxes_come_back_from():
    # an object filling the whole photo: with the center crop its box is the crop window (the model never
    # saw the edges), with the full resize the whole photo
    img = painted(400, 300, (0, 0, 400, 300))
    for mode, region in (("crop", (58 * 400 / 341, 16 * 300 / 256, 282 * 400 / 341, 240 * 300 / 256)),
                         ("resize", (0.0, 0.0, 400.0, 300.0))):
        pre = Preprocess((224, 224), mode, 256 if mode == "crop" else None, **PLAIN)
        (r,) = camloc.boxes(Brightness(), [img], classes=0, preprocess=pre)
        assert r.region == pytest.approx(region, abs=1e-6) and r.region_mode == {"crop": "crop", "resize": "full"}[mode]
        assert r.box == pytest.approx(r.region, abs=1e-6)
        assert r.to_dict()["region"] == [round(v, 2) for v in region]
