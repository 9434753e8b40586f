"""camloc.boxes / camloc.cams: inputs, class requests, results."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

import camloc
from camloc import UsageError
from camloc.eval.calibration import Calibration

from .helpers import CAT, COFFEE, PLAIN, Brightness, assert_same, hooks_left, painted, prepared, snapshot


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
    assert default.box == explicit.box and torch.equal(default.cam, explicit.cam)
    assert default.cam.min() >= vanilla.cam.min() and not torch.equal(default.cam, vanilla.cam)
    (max_nwc,) = camloc.boxes(lite0, [COFFEE], standard="max", theta=0.2)
    assert torch.equal(max_nwc.cam, default.cam)  # the standard changes the box, never the map


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
    maps = camloc.cams(lite0, [CAT, COFFEE], topk=3)
    assert maps.shape == (2, 3, 7, 7)
    for i in range(2):
        for j in range(3):
            assert torch.equal(maps[i, j], rs[i][j].cam)
    assert torch.equal(maps[:, 0], camloc.cams(lite0, [CAT, COFFEE]))  # top-1 is the default


def test_tensor_batch_boxes_stay_in_tensor_pixels(lite0):
    x = torch.randn(3, 3, 160, 160)
    rs = camloc.boxes(lite0, x, batch_size=2)
    assert [r.image for r in rs] == ["<tensor 0>", "<tensor 1>", "<tensor 2>"]
    assert all((r.width, r.height) == (160, 160) and r.cam.shape == (5, 5) for r in rs)
    assert all(0 <= r.box[0] < r.box[2] <= 160 for r in rs)
    assert all(r.box == tuple(float(v) for v in r.input_box) for r in rs)  # identity geometry


def test_preprocessed_tensor_gives_the_input_box_of_the_photo(lite0):
    (by_path,) = camloc.boxes(lite0, [CAT])
    pre = camloc.Localizer(lite0).preprocess  # the default localizer's preprocessing: the whole photo, squashed
    assert pre.region_mode == by_path.region_mode == "full"
    x, geom = pre(camloc.load_image(CAT))
    (by_tensor,) = camloc.boxes(lite0, x[None])
    assert by_tensor.class_index == by_path.class_index and torch.allclose(by_tensor.cam, by_path.cam)
    assert by_tensor.box == tuple(float(v) for v in by_path.input_box)
    assert by_path.box == geom.box_to_original(by_path.input_box)


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


def test_all_regions_on_two_painted_blobs():
    """The Brightness model's map is the picture: two blobs, known pixel boxes, largest first."""
    small, large = (20, 30, 70, 80), (110, 100, 200, 190)  # 50 x 50 and 90 x 90, edges exclusive
    img = painted(224, 224, small, large)
    pre = camloc.Preprocess((224, 224), "resize", None, **PLAIN)  # identity geometry
    (r,) = camloc.boxes(Brightness(), [img], classes=0, standard="max", theta=0.5, preprocess=pre, all_regions=True)
    assert r.boxes == (tuple(map(float, large)), tuple(map(float, small)))
    assert r.box == tuple(map(float, large)) and r.input_box == large
    (single,) = camloc.boxes(Brightness(), [img], classes=0, standard="max", theta=0.5, preprocess=pre)
    assert single.boxes == (single.box,) == (tuple(map(float, large)),)
    # mapped back through a 2x resize: the same regions, in the larger photo's pixels
    big = painted(448, 448, [2 * v for v in small], [2 * v for v in large])
    (r2,) = camloc.boxes(Brightness(), [big], classes=0, standard="max", theta=0.5, preprocess=pre, all_regions=True)
    assert r2.boxes == (tuple(2.0 * v for v in large), tuple(2.0 * v for v in small))
    assert r2.to_dict()["boxes"] == [[2 * v for v in large], [2 * v for v in small]]


def test_all_regions_are_sorted_largest_first(lite0):
    (r,) = camloc.boxes(lite0, [COFFEE], all_regions=True, standard="max", theta=0.6)
    (main,) = camloc.boxes(lite0, [COFFEE], standard="max", theta=0.6)
    assert len(r.boxes) >= 1 and r.box == main.box
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
    assert set(camloc._LAZY) <= set(camloc.__all__)
    for name, (module, attr) in camloc._LAZY.items():  # each name is the object its module defines
        assert getattr(camloc, name) is getattr(importlib.import_module(f"camloc.{module}"), attr), name
    # the former names are the same objects as the new ones
    assert camloc.evaluate_split is camloc.evaluate is importlib.import_module("camloc.eval.evaluation").evaluate
    assert camloc.calibrate_split is camloc.calibrate and camloc.finetune_model is camloc.finetune
    assert camloc.Standard is camloc.ThresholdRule
    # no module of a subpackage is hidden by a function of the same name
    package = importlib.import_module("camloc.eval")
    assert package.evaluate is camloc.evaluate and package.calibrate is camloc.calibrate
    assert importlib.import_module("camloc.eval.diagnosis").diagnose is package.diagnose is camloc.diagnose
    with pytest.raises(AttributeError, match="no_such_name"):
        camloc.no_such_name


def test_boxes_does_not_move_or_switch_user_model():
    model = prepared("resnet18")
    before = snapshot(model)
    camloc.boxes(model, torch.randn(2, 3, 64, 64))
    assert_same(before, snapshot(model))
    assert not hasattr(model, "camloc_cfg")


def test_no_hook_left_after_boxes_and_cams(lite0):
    assert hooks_left(lite0) == {}
    camloc.boxes(lite0, [CAT], topk=2)
    camloc.cams(lite0, [CAT])
    assert hooks_left(lite0) == {}


def test_calibration_replaces_the_standard_and_nwc(tmp_path, lite0):
    calib = Calibration(0.9, 100.0, False, 0.0, "x", "efficientnet_lite0", 1)
    path = tmp_path / "c.json"
    calib.save(path)
    (a,) = camloc.boxes(lite0, [CAT], calibration=path)
    (b,) = camloc.boxes(lite0, [CAT], nwc=False, standard="max", theta=0.9)
    (c,) = camloc.boxes(lite0, [CAT], calibration=calib)
    assert a.box == b.box == c.box and torch.equal(a.cam, b.cam)
    (default,) = camloc.boxes(lite0, [CAT])
    assert a.box != default.box  # the calibration did change something


def test_every_result_says_which_region_the_model_saw(lite0):
    # efficientnet_lite0's own preprocessing: shorter side to 256 (bicubic), center crop 224 (crop_pct 0.875);
    # the 451 x 300 cat becomes 384 x 256 (int(256 x 451/300) = 384), cropped at (80, 16): back in its pixels
    # x 80 x 451/384 = 93.958 to 304 x 451/384 = 357.042, y 16 x 300/256 = 18.75 to 240 x 300/256 = 281.25
    (crop,) = camloc.boxes(lite0, [CAT], resize="crop")
    assert crop.region_mode == "crop"
    assert crop.region == pytest.approx((80 * 451 / 384, 18.75, 304 * 451 / 384, 281.25), abs=1e-6)
    assert crop.region[0] <= crop.box[0] < crop.box[2] <= crop.region[2]  # a box lies in what the model saw
    assert crop.region[1] <= crop.box[1] < crop.box[3] <= crop.region[3]
    d = crop.to_dict()
    assert d["region"] == [93.96, 18.75, 357.04, 281.25] and d["region_mode"] == "crop"
    assert json.loads(json.dumps(d)) == d
    (full,) = camloc.boxes(lite0, [CAT], resize="full")
    assert (full.region, full.region_mode) == ((0.0, 0.0, 451.0, 300.0), "full")
    (default,) = camloc.boxes(lite0, [CAT])  # the default region is the whole image
    assert (default.region, default.region_mode, default.box) == (full.region, "full", full.box)
    assert default.box != crop.box
    assert full.to_dict()["region"] == [0.0, 0.0, 451.0, 300.0]
    loc = camloc.Localizer(lite0, resize="full")
    x, geom, name = loc.prepare(COFFEE)
    (r,), = loc.localize_batch(x[None], [geom], [name])
    assert (r.region, r.region_mode) == ((0.0, 0.0, 600.0, 400.0), "full")
    # network input given as a float tensor is seen whole, in its own pixels
    (t,) = camloc.boxes(lite0, torch.randn(1, 3, 160, 192))
    assert (t.region, t.region_mode) == ((0.0, 0.0, 192.0, 160.0), "full")
    with pytest.raises(UsageError, match="resize must be 'full' or 'crop', not 'squash'"):
        camloc.boxes(lite0, [CAT], resize="squash")


def test_a_localizer_gives_what_boxes_gives_without_rebuilding(lite0):
    """``Localizer.boxes`` equals ``camloc.boxes`` with the same settings: results, top-k lists and class names."""
    loc = camloc.Localizer(lite0, standard=camloc.make_standard("max"), nwc=False)
    once = loc.boxes([CAT, COFFEE])
    assert once == camloc.boxes(lite0, [CAT, COFFEE], standard="max", nwc=False)
    assert loc.boxes([CAT, COFFEE], classes="tabby") == camloc.boxes(lite0, [CAT, COFFEE], classes="tabby",
                                                                     standard="max", nwc=False)
    top = loc.boxes([CAT], topk=2)
    assert len(top) == 1 and [r.class_index for r in top[0]] == [once[0].class_index, top[0][1].class_index]
    assert loc.boxes(CAT) == camloc.boxes(lite0, CAT, standard="max", nwc=False)  # one path is one image
