"""The ablation measure: every variant under both protocols, thresholds chosen on a separate split by the
calibration's one rule, summaries with exact means and deviations, the Table 3 layout, and the
comparison and overlay pictures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from camloc.data.metadata import read_dataset
from camloc.data.synthetic import SyntheticSpec, write_synthetic
from camloc.eval.ablation import COLUMNS, TABLE3, Split, cell, markdown, measure, summarize, table3_rows
from camloc.eval.calibration import Calibration
from camloc.eval.protocols import PAPER_VARIANTS as VARIANTS
from camloc.models.wsol import build_wsol
from camloc.utils.errors import UsageError
from camloc.viz.figures import save_threshold_comparison


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, SyntheticSpec(classes=3, size=64, train=3, train_fullsup=9, test=9, seed=1, body_signal=0.0))
    return root


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_wsol("smallcnn", 3, "gap")


def test_measure_scores_every_variant_and_protocol(synthetic, model):
    test = Split.read(synthetic / "metadata" / "test", synthetic)
    out = measure(model, test, Split.read(synthetic / "metadata" / "train-fullsup", synthetic))
    m = out["metrics"]
    for v in VARIANTS:
        for key in ("rethinking/{v}/gt_known_loc", "rethinking/{v}/top1_loc", "calibrated/{v}/gt_known_loc",
                    "wsolevaluation/{v}/maxboxacc_v2", "wsolevaluation/{v}/pxap"):
            assert 0.0 <= m[key.format(v=v)] <= 100.0, key.format(v=v)
        # the stored curve is the one MaxBoxAcc (IoU 0.5 only) is the maximum of
        curve = out["curves"][v]
        assert len(curve["taus"]) == len(curve["boxacc50"])
        assert max(curve["boxacc50"]) == pytest.approx(m[f"wsolevaluation/{v}/maxboxacc"])
        # Top-1 Loc counts a subset of GT-known Loc's hits
        assert m[f"rethinking/{v}/top1_loc"] <= m[f"rethinking/{v}/gt_known_loc"]


def test_each_variant_takes_the_threshold_of_its_own_standard(synthetic, model, monkeypatch):
    """A calibration grid whose rows peak at different thetas: CAM and NWC take the max row's (100),
    PaS and NWC + PaS the 90th percentile's, each with its own score."""
    import camloc.eval.ablation as ablation

    calls = []

    def fake(model, samples, images, nwc, percentiles, thetas, **kw):
        calls.append(percentiles)
        grid = np.zeros((len(percentiles), len(thetas)))
        for i, p in enumerate(percentiles):
            grid[i, 10 if p == 100.0 else 40] = 60.0 + p / 10 + (5 if nwc else 0)
        return Calibration(0.0, 0.0, nwc, 0.0, "", "", len(samples)), grid

    monkeypatch.setattr(ablation, "calibrate", fake)
    test = Split.read(synthetic / "metadata" / "test", synthetic)
    out = measure(model, test, test, curves=False)
    assert all(sorted(c) == [90.0, 100.0] for c in calls) and len(calls) == 2
    expected = {"cam": (0.15, 100.0, 70.0), "nwc": (0.15, 100.0, 75.0), "pas": (0.45, 90.0, 69.0),
                "nwc+pas": (0.45, 90.0, 74.0)}
    for v, (theta, percentile, score) in expected.items():
        t = out["thresholds"][v]
        assert (t["theta"], t["percentile"], t["gt_known_loc"]) == pytest.approx((theta, percentile, score)), v


def test_a_calibration_split_needs_boxes_to_score(tmp_path, model):
    from ..helpers import write_split

    write_split(tmp_path / "meta", [("a.png", 0, 64, 64)], [], masks=["a.png,m.png,"])
    masks_only = Split.read(tmp_path / "meta", tmp_path)
    with pytest.raises(UsageError, match="has no boxes"):
        measure(model, masks_only, masks_only)


def test_thresholds_chosen_on_the_test_split_itself_reproduce_their_score_and_beat_the_fixed_ones(synthetic, model):
    """Calibrating on the split that is scored: the chosen theta's accuracy there is the calibrated score
    (one rule for both), and no lower than the paper's fixed thetas (0.2 and 0.35 are on the grid)."""
    test = Split.read(synthetic / "metadata" / "test", synthetic)
    out = measure(model, test, test, curves=False)
    for v in VARIANTS:
        calibrated = out["metrics"][f"calibrated/{v}/gt_known_loc"]
        assert calibrated == pytest.approx(out["thresholds"][v]["gt_known_loc"])
        assert calibrated >= out["metrics"][f"rethinking/{v}/gt_known_loc"] - 1e-9
    assert out["curves"] == {}


def test_summarize_is_exact():
    s = summarize([{"a": 1.0, "b": 5.0}, {"a": 2.0}, {"a": 6.0}])
    assert s["a"][0] == 3.0 and s["a"][1] == pytest.approx(math.sqrt(7.0)) and s["a"][2] == 3
    assert s["b"][0] == 5.0 and math.isnan(s["b"][1]) and s["b"][2] == 1
    assert cell(s["a"]) == "3.0 ± 2.6" and cell(s["b"]) == "5.0" and cell(None) == "-"


def test_table3_takes_each_row_from_its_pool_and_variant():
    def summary(pool):
        return {key.format(v=v): (float(10 * i + j + (100 if pool == "tap" else 0)), 0.0, 2)
                for i, v in enumerate(VARIANTS) for j, (key, _) in enumerate(COLUMNS)}

    rows = table3_rows(summary("gap"), summary("tap"))
    assert [r[0] for r in rows] == [label for label, _, _ in TABLE3]
    variants = list(VARIANTS)
    for row, (_, pool, variant) in zip(rows, TABLE3, strict=True):
        offset = (100 if pool == "tap" else 0) + 10 * variants.index(variant)
        assert row[1:] == [f"{offset + j:.1f} ± 0.0" for j in range(len(COLUMNS))]
    text = markdown(["a", "b"], [["1", "2"]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |"]


def test_threshold_comparison_draws_mean_and_band(tmp_path):
    taus = np.linspace(0, 1, 11)
    path = save_threshold_comparison({"cam": {"GAP": [taus * 50, taus * 70], "TAP": [taus * 90]},
                                      "nwc+pas": {"GAP": [taus * 10]}}, taus, tmp_path / "c.png", title="t")
    with Image.open(path) as im:
        assert im.size[0] > im.size[1] > 200


def test_overlay_grid(tmp_path, synthetic, model):
    import camloc
    from camloc.viz.render import save_overlay_grid

    test = Split.read(synthetic / "metadata" / "test", synthetic)
    paths = [str(synthetic / s.image_id) for s in test.samples[:2]]
    results = camloc.boxes(model, paths)
    path = save_overlay_grid(paths, {"one": results, "two": results}, tmp_path / "g.png",
                             truth=[s.boxes for s in test.samples[:2]], title="t")
    with Image.open(path) as im:
        assert im.size[0] > 300 and im.size[1] > 300
    with pytest.raises(UsageError, match="column 'one' has 1 results for 2 images"):
        save_overlay_grid(paths, {"one": results[:1]}, tmp_path / "bad.png")
    with pytest.raises(UsageError, match="truth has 1 entries"):
        save_overlay_grid(paths, {"one": results}, tmp_path / "bad.png", truth=[()])


@pytest.mark.slow
def test_measure_on_real_photos_with_real_weights(lite0):
    """efficientnet_lite0 (ImageNet weights) on ImageNet val photos with their boxes: thresholds chosen
    on the split itself score exactly what the choice saw and never below the paper's fixed thresholds
    (which fix helps is measured in docs/reproduction.md, not asserted here)."""
    from ..conftest import data_dir

    root = data_dir("imagenet-val")
    split = Split(tuple(read_dataset(root)[:32]), str(root), str(root))
    out = measure(lite0, split, split, batch_size=16)
    m = out["metrics"]
    for v in VARIANTS:
        assert m[f"calibrated/{v}/gt_known_loc"] == pytest.approx(out["thresholds"][v]["gt_known_loc"])
        assert m[f"calibrated/{v}/gt_known_loc"] >= m[f"rethinking/{v}/gt_known_loc"] - 1e-9
    assert m["rethinking/cam/top1_cls"] > 50.0  # a real classifier, not chance
    assert 0.0 < m["wsolevaluation/nwc+pas/maxboxacc_v2"] <= 100.0
