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
from camloc import Preprocess

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
