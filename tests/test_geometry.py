"""Boxes come back in original pixels, undoing resize and center crop exactly.

A hand-built model whose feature map is the image brightness at full input resolution makes the CAM
the object itself, so the box must land on the rectangle we painted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn

import camloc
from camloc import Preprocess


class Brightness(nn.Module):
    """features = relu(sum of RGB) at input resolution; GAP; Linear(1 -> 2)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 1, 1), nn.ReLU())
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.features[0].weight.fill_(1.0)
            self.features[0].bias.zero_()
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


PLAIN = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="bilinear")


def painted(width, height, rect):
    arr = np.zeros((height, width, 3), np.uint8)
    x0, y0, x1, y1 = rect
    arr[y0:y1, x0:x1] = 255
    return Image.fromarray(arr)


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


def test_timm_preprocess_comes_from_pretrained_cfg(lite0):
    pre = camloc.preprocess_for(lite0)
    assert pre.input_size == (224, 224) and pre.mode == "crop" and pre.resize_size == 256
    assert pre.interpolation == "bicubic"
    assert camloc.preprocess_for(lite0, "resize").mode == "resize"


def test_geometry_inverse_of_a_point():
    g = Preprocess((224, 224), "crop", 256).geometry(640, 480)
    assert (g.left, g.top) == (58, 16)  # 341 x 256 resized, torchvision's rounding of the crop offset
    x0, y0, _, _ = g.box_to_original((0, 0, 224, 224))
    assert x0 == pytest.approx(58 * 640 / 341) and y0 == pytest.approx(16 * 480 / 256)
