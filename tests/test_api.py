"""camloc.boxes / camloc.cams: inputs, class requests, results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import camloc
from camloc import UsageError

from .conftest import EXAMPLES

CAT = str(EXAMPLES / "cat.jpg")
COFFEE = str(EXAMPLES / "coffee.jpg")


def test_inputs_of_every_kind_agree(lite0):
    pil = Image.open(CAT)
    arr = np.asarray(pil.convert("RGB"))
    by_path, by_pil, by_array = camloc.boxes(lite0, [CAT, pil, arr])
    assert by_path.image == CAT and by_pil.image == "<image 1>" and by_array.image == "<image 2>"
    assert by_path.box == by_pil.box == by_array.box
    assert by_path.class_index == by_pil.class_index == by_array.class_index
    single = camloc.boxes(lite0, CAT)
    assert len(single) == 1 and single[0].box == by_path.box


def test_result_fields(lite0):
    (r,) = camloc.boxes(lite0, [CAT])
    assert (r.width, r.height) == (451, 300)
    assert 0 <= r.box[0] < r.box[2] <= 451 and 0 <= r.box[1] < r.box[3] <= 300
    assert 0 < r.score <= 1 and r.exact and r.cam.shape == (7, 7)
    d = r.to_dict()
    assert {"image", "class", "label", "score", "box", "exact"} <= set(d)


def test_defaults_are_nwc_and_pas(lite0):
    (default,) = camloc.boxes(lite0, [COFFEE])
    (explicit,) = camloc.boxes(lite0, [COFFEE], nwc=True, standard="percentile", theta=0.35, percentile=90)
    (vanilla,) = camloc.boxes(lite0, [COFFEE], nwc=False, standard="max")
    assert default.box == explicit.box
    assert default.cam.min() >= vanilla.cam.min()


def test_classes_given_and_validated(lite0):
    rs = camloc.boxes(lite0, [CAT, COFFEE], classes=[281, 967])
    assert [r.class_index for r in rs] == [281, 967]
    rs = camloc.boxes(lite0, [CAT, COFFEE], classes=torch.tensor([5, 6]))
    assert [r.class_index for r in rs] == [5, 6]
    assert [r.class_index for r in camloc.boxes(lite0, [CAT, COFFEE], classes=7)] == [7, 7]
    with pytest.raises(UsageError, match="3 classes for 2 images"):
        camloc.boxes(lite0, [CAT, COFFEE], classes=[1, 2, 3])
    with pytest.raises(UsageError, match="out of range"):
        camloc.boxes(lite0, [CAT], classes=1000)
    with pytest.raises(UsageError, match="either classes or topk"):
        camloc.boxes(lite0, [CAT], classes=1, topk=2)


def test_topk_gives_k_results_per_image(lite0):
    rs = camloc.boxes(lite0, [CAT, COFFEE], topk=3)
    assert [len(r) for r in rs] == [3, 3]
    assert rs[0][0].score >= rs[0][1].score >= rs[0][2].score
    assert camloc.cams(lite0, [CAT, COFFEE], topk=3).shape == (2, 3, 7, 7)


def test_tensor_batch_boxes_stay_in_tensor_pixels(lite0):
    x = torch.randn(3, 3, 160, 160)
    rs = camloc.boxes(lite0, x, batch_size=2)
    assert [r.image for r in rs] == ["<tensor 0>", "<tensor 1>", "<tensor 2>"]
    assert all((r.width, r.height) == (160, 160) and r.cam.shape == (5, 5) for r in rs)
    assert all(0 <= r.box[0] < r.box[2] <= 160 for r in rs)


def test_cams_match_boxes_maps(lite0):
    maps = camloc.cams(lite0, [CAT, COFFEE])
    rs = camloc.boxes(lite0, [CAT, COFFEE])
    assert torch.allclose(maps[0], rs[0].cam) and torch.allclose(maps[1], rs[1].cam)


def test_save_is_atomic_json(lite0, tmp_path):
    (r,) = camloc.boxes(lite0, [CAT])
    path = tmp_path / "r.json"
    r.save(path)
    data = json.loads(path.read_text())
    assert data["box"] == [round(v, 2) for v in r.box] and len(data["cam"]) == 7
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_all_regions(lite0):
    (r,) = camloc.boxes(lite0, [COFFEE], all_regions=True, standard="max", theta=0.6)
    assert len(r.boxes) >= 1
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in r.boxes]
    assert areas == sorted(areas, reverse=True)


def test_bad_image_raises_naming_it(lite0, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(camloc.ImageError, match="bad.jpg"):
        camloc.boxes(lite0, [CAT, bad])


def test_model_by_name(lite0):
    (r,) = camloc.boxes("efficientnet_lite0", [CAT])
    (s,) = camloc.boxes(lite0, [CAT])
    assert r.box == s.box and r.label == s.label


def test_public_api_is_exported():
    for name in camloc.__all__:
        assert getattr(camloc, name) is not None
    assert callable(camloc.evaluate_split) and callable(camloc.retrofit)
