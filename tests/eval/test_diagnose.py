"""The mechanism statistics: hand-set feature maps and weights with statistics worked out by hand, a tiny
model read from disk end to end, the refusals, the command line, and the real model on real photos."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from camloc.cam.extractor import CAMExtractor
from camloc.cli import main
from camloc.data.imaging import Preprocess
from camloc.data.metadata import read_dataset
from camloc.eval.diagnosis import active_area, batch_statistics, diagnose, spearman, truth_region
from camloc.models.config import ModelConfig, attach
from camloc.models.wsol import build_wsol
from camloc.utils.errors import ModelError

from ..conftest import data_dir
from ..helpers import PLAIN, GapLinear, MLPHead, Tiny, write_split


def block(h, w, y0, y1, x0, x1):
    out = torch.zeros(h, w)
    out[y0:y1, x0:x1] = 1.0
    return out


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 5, 12).astype(float), rng.normal(size=12)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 9.0, 2.0, 1.0])) == -1.0
    assert math.isnan(spearman(np.array([1.0, 2.0]), np.array([1.0, 2.0])))  # too few channels
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))  # a constant vector has no ranks to correlate


def test_active_area_leaves_out_dead_channels():
    f = torch.zeros(1, 3, 4, 4)
    f[0, 0, :2, :2] = 1.0
    f[0, 0, 3, 3] = 0.05  # below 0.1 x max: not active
    f[0, 1] = 2.0
    area, alive = active_area(f)
    assert area.tolist() == [[0.25, 1.0, 0.0]] and alive.tolist() == [[True, True, False]]


def test_truth_region_by_pixel_centres():
    region = truth_region(np.array([[1.0, 0.4, 3.0, 2.6]]), (4, 4))
    assert region.nonzero().tolist() == [[0, 1], [0, 2], [1, 1], [1, 2], [2, 1], [2, 2]]


def test_hand_set_statistics():
    """8 x 8 maps (the input size, so no resampling): three positive channels of known area, one negative."""
    f = torch.stack([block(8, 8, 0, 4, 0, 4),    # area 16/64, weight 1
                     block(8, 8, 1, 7, 1, 7),    # area 36/64 (the object), weight 1
                     block(8, 8, 2, 4, 2, 4),    # area 4/64 (a part), weight 2
                     block(8, 8, 4, 8, 4, 8)])   # negative weight, fires on the lower right
    w = torch.tensor([[1.0, 1.0, 2.0, -1.0]])
    truth = [np.array([[1.0, 1.0, 7.0, 7.0]])]  # 36 pixels
    (row,) = batch_statistics(f.unsqueeze(0), w, truth, (8, 8))
    # areas (0.25, 0.5625, 0.0625) ranked (2, 3, 1); weights (1, 1, 2) ranked (1.5, 1.5, 3): rho = -1.5 / sqrt(2 * 1.5)
    assert row["area_weight_rho"] == pytest.approx(-math.sqrt(3) / 2)
    assert row["channels"] == 3 and row["negative_weight_share"] == 0.25
    # positive map 4 / 2 / 1 / 0 -> U 255 / 127 / 63 / 0, foreground U > 51: the top-left block and the object, 43 px
    assert row["ioa_positive"] == 1.0 and row["ioa_positive_by_foreground"] == pytest.approx(36 / 43)
    # negative map: the lower-right 4 x 4 block, of which 3 x 3 lies on the object
    assert row["ioa_negative"] == pytest.approx(9 / 36) and row["ioa_negative_by_foreground"] == pytest.approx(9 / 16)
    # NWC box: the foreground above spans (0, 0, 7, 7); the CAM's (positive minus negative) spans the same
    assert row["box_gt_area_ratio"]["nwc"] == pytest.approx(49 / 36)
    assert row["box_gt_area_ratio"]["cam"] == pytest.approx(49 / 36)


def test_undefined_values_are_nan():
    f = torch.stack([block(8, 8, 0, 4, 0, 4), block(8, 8, 2, 4, 2, 4)]).unsqueeze(0)
    (row,) = batch_statistics(f, torch.tensor([[1.0, 2.0]]), [np.zeros((0, 4))], (8, 8))
    assert math.isnan(row["area_weight_rho"])  # two positive channels: no rank correlation
    assert math.isnan(row["ioa_negative"])     # no negative weight: no negative map
    assert math.isnan(row["ioa_positive"])     # no ground truth in view
    assert math.isnan(row["box_gt_area_ratio"]["cam"])
    with pytest.raises(ValueError, match="one of each per image"):
        batch_statistics(f, torch.tensor([[1.0, 2.0]]), [], (8, 8))


def painted_split(tmp_path):
    """One 32 x 32 picture: red on the top-left quarter, green on a part of it, blue on a band on the right."""
    arr = np.zeros((32, 32, 3), np.uint8)
    arr[0:16, 0:16, 0] = 255
    arr[8:16, 8:16, 1] = 255
    arr[:, 20:32, 2] = 255
    (tmp_path / "images").mkdir()
    Image.fromarray(arr).save(tmp_path / "images" / "a.png")
    write_split(tmp_path / "meta", [("a.png", 0, 32, 32)], ["a.png,4,4,28,28"])
    return read_dataset(tmp_path / "meta"), tmp_path / "images"


def painted_model(pool="avg"):
    """Features = the picture (red, green, blue); class 0 weighs them +1, +2, -1."""
    model = Tiny(torch.tensor([[1.0, 2.0, -1.0], [0.0, 0.0, 1.0]]), torch.zeros(2), pool=pool)
    return attach(model, ModelConfig(name="painted", preprocess=Preprocess((32, 32), "resize", None, **PLAIN)))


def test_diagnose_end_to_end_on_a_painted_picture(tmp_path):
    samples, root = painted_split(tmp_path)
    d = diagnose(painted_model(), samples, root, progress=False)
    (row,) = d.images
    # positive map: 3 on green, 1 on the rest of red -> foreground the red quarter (256 px); the object is 24 x 24
    assert row["ioa_positive"] == pytest.approx(144 / 576)
    assert row["ioa_positive_by_foreground"] == pytest.approx(144 / 256)
    # negative map: the blue band, columns 20 to 31 (384 px), 8 x 24 of it on the object
    assert row["ioa_negative"] == pytest.approx(192 / 576) and row["ioa_negative_by_foreground"] == pytest.approx(0.5)
    assert row["negative_weight_share"] == pytest.approx(1 / 3) and row["class"] == 0
    # NWC box: the red quarter; CAM: everything left of the band (U 255 / 127 / 63 above 51, the band at 0)
    assert row["box_gt_area_ratio"]["nwc"] == pytest.approx(256 / 576)
    assert row["box_gt_area_ratio"]["cam"] == pytest.approx(640 / 576)
    s = d.summary
    assert s["ioa_negative"] == row["ioa_negative"] and s["box_gt_area_ratio"]["cam"] == row["box_gt_area_ratio"]["cam"]
    assert s["images"] == 1 and s["counts"]["area_weight_rho"] == 0 and s["area_weight_rho"] is None
    assert s["model"] == "painted" and s["head"] == "avg"
    json.dumps(d.to_dict(with_images=True))  # NaN becomes null: valid JSON


def test_channels_gives_the_head_weights_and_the_gap_invariant():
    model = GapLinear(num_classes=5).eval()
    x = torch.randn(3, 3, 32, 32)
    out = CAMExtractor(model).channels(x, classes=[4, 0, 2])
    assert torch.equal(out.weights[:, 0], model.fc.weight.detach()[[4, 0, 2]])
    cam = torch.einsum("bkc,bchw->bkhw", out.weights, out.features)
    logits = model(x).detach()
    assert torch.allclose(cam.mean((2, 3)) + out.bias, logits.gather(1, out.classes), atol=1e-5)


def test_tap_heads_are_diagnosed():
    model = build_wsol("smallcnn", 3, "tap", theta_tap=0.1)
    out = CAMExtractor(model).channels(torch.randn(2, 3, 224, 224), classes=[0, 2])
    assert out.head.pool == "tap" and torch.equal(out.weights[:, 0], model.fc.weight.detach()[[0, 2]])


@pytest.mark.parametrize("model, reason", [
    (MLPHead(), "not affine"),
    (Tiny(torch.randn(2, 3), torch.zeros(2), pool="max"), "pools by max"),
])
def test_refuses_heads_without_channel_weights(tmp_path, model, reason):
    samples, root = painted_split(tmp_path)
    with pytest.raises(ModelError, match=reason):
        diagnose(attach(model, ModelConfig(preprocess=Preprocess((32, 32), "resize", None, **PLAIN))), samples, root,
                 progress=False)


def test_model_is_left_as_it_was(tmp_path):
    from ..helpers import assert_same, snapshot

    samples, root = painted_split(tmp_path)
    model = painted_model().train()
    before = snapshot(model)
    diagnose(model, samples, root, progress=False)
    assert_same(before, snapshot(model))


def test_cli_json_out_and_a_bad_image(tmp_path):
    samples, root = painted_split(tmp_path)
    (root / "b.png").write_bytes(b"not a picture")
    write_split(tmp_path / "meta2", [("a.png", 0, 32, 32), ("b.png", 0, 32, 32)], ["a.png,4,4,28,28", "b.png,0,0,9,9"])
    import timm

    ckpt = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), ckpt)  # random weights: no network needed
    r = CliRunner().invoke(main, ["diagnose", "--metadata", str(tmp_path / "meta2"), "--images", str(root),
                                  "--model", "resnet18", "--checkpoint", str(ckpt), "--json", "--quiet",
                                  "--out", str(tmp_path / "out"), "--workers", "0"])
    assert r.exit_code == 1, r.output
    assert "camloc: failed: b.png" in r.stderr and "1 of 2 images failed, each left out" in r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("area_weight_rho", "ioa_positive", "ioa_negative", "ioa_positive_by_foreground",
                "ioa_negative_by_foreground", "negative_weight_share", "box_gt_area_ratio"):
        assert key in summary
    assert set(summary["box_gt_area_ratio"]) == {"cam", "nwc", "pas", "nwc+pas"}
    assert summary["images"] == 1 and summary["failed"][0]["image_id"] == "b.png"
    saved = json.loads((tmp_path / "out" / "diagnose.json").read_text())
    assert [r["image_id"] for r in saved["images"]] == ["a.png"]
    for name in ("area_weight.png", "ioa.png"):
        assert Image.open(tmp_path / "out" / name).size[0] > 400


def test_cli_refusals_are_one_line(tmp_path):
    painted_split(tmp_path)
    r = CliRunner().invoke(main, ["diagnose", "--metadata", str(tmp_path / "meta"), "--images",
                                  str(tmp_path / "images"), "--model", "no_such_model_xyz", "--quiet"])
    assert r.exit_code == 2 and r.stderr.startswith("camloc: error:") and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_real_model_on_imagenet_photos(lite0):
    root = data_dir("imagenet-val")
    d = diagnose(lite0, read_dataset(root)[:24], root, progress=False)
    s = d.summary
    assert s["images"] == 24 and s["counts"]["area_weight_rho"] == 24 and s["feature_layer"] == "bn2"
    assert -1.0 <= s["area_weight_rho"] <= 1.0 and 0.0 < s["negative_weight_share"] < 1.0
    for key in ("ioa_positive", "ioa_negative", "ioa_positive_by_foreground", "ioa_negative_by_foreground"):
        assert 0.0 <= s[key] <= 1.0
    assert all(v > 0 for v in s["box_gt_area_ratio"].values())
    assert d.points[0].shape == d.points[1].shape and d.points[0].size > 24 * 100
