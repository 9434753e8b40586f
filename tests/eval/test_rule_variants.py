"""Automatic thresholds (Otsu, Li, triangle, Yen) as evaluation variants and calibration candidates.

Checked against scikit-image's ``threshold_<rule>`` called directly on the same uint8 maps and
OpenCV's contours at that threshold (the straightforward path of :mod:`camloc.eval.boxacc`), on
real CAMs of the pretrained efficientnet_lite0 over ImageNet photos.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from skimage import filters

from camloc import UsageError
from camloc.cli import main
from camloc.data.metadata import read_dataset
from camloc.eval.boxacc import contour_boxes_at, iou_matrix, threshold_levels
from camloc.eval.calibration import Calibration, calibrate
from camloc.eval.evaluation import evaluate
from camloc.eval.protocols import PAPER_VARIANTS, VARIANTS, Settings, gt_boxes
from camloc.utils.defaults import ADAPTIVE_RULES

from ..conftest import data_dir

SKIMAGE = {"otsu": filters.threshold_otsu, "li": filters.threshold_li, "triangle": filters.threshold_triangle,
           "yen": filters.threshold_yen}
N = 24  # real photos: enough for rules to disagree, quick on two cores


def test_every_rule_is_a_variant_with_and_without_nwc():
    assert PAPER_VARIANTS == ("cam", "nwc", "pas", "nwc+pas")
    for rule in ADAPTIVE_RULES:
        assert VARIANTS[rule] == (False, rule) and VARIANTS[f"nwc+{rule}"] == (True, rule)
        s = Settings("rethinking", (rule, f"nwc+{rule}"))
        assert [(r.name, r.nwc) for r in s.rows()] == [(rule, False), (f"nwc+{rule}", True)]
        assert s.standard(rule).rule == rule and s.standard(rule).theta is None
        assert s.rule(rule) == rule and s.sweep_percentile(rule) == 100.0
    assert Settings().rule("nwc+pas") == "percentile" and Settings().sweep_percentile("pas") == 90.0
    with pytest.raises(UsageError, match="otsu"):  # the message lists the rules among the choices
        Settings(variants=("ostu",))


def test_sweep_levels_of_a_rule_are_its_threshold_at_every_tau():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    smooth = np.exp(-((xx - 40) ** 2 + (yy - 20) ** 2) / 300.0) + 0.3 * np.exp(-((xx - 10) ** 2 + (yy - 50) ** 2) / 80.0)
    maps = [np.uint8(255 * smooth / smooth.max()), rng.integers(0, 256, (50, 70)).astype(np.uint8)]
    taus = np.arange(0, 1, 0.01)
    for u8 in maps:
        for rule, fn in SKIMAGE.items():
            levels = threshold_levels(u8, taus, 90.0, rule)  # the percentile is not the rule's business
            assert levels.shape == taus.shape and (levels == math.floor(fn(u8))).all(), rule


@pytest.fixture(scope="module")
def imagenet():
    root = data_dir("imagenet-val")
    return root, read_dataset(root)[:N]


@pytest.fixture(scope="module")
def wsol_result(lite0, imagenet, tmp_path_factory):
    root, samples = imagenet
    maps = tmp_path_factory.mktemp("maps")
    names = tuple(ADAPTIVE_RULES) + tuple(f"nwc+{r}" for r in ADAPTIVE_RULES) + ("cam", "nwc")
    settings = Settings("wsolevaluation", names, interval=0.01, metrics=("maxboxacc", "maxboxacc_v2"))
    return evaluate(lite0, samples, root, settings, batch_size=12, progress=False, save_maps=maps), maps


def test_wsolevaluation_rule_rows_equal_skimage_thresholds_on_real_maps(wsol_result, imagenet):
    result, maps = wsol_result
    root, samples = imagenet
    for name in result.metrics:
        nwc, rule = VARIANTS[name]
        if rule not in SKIMAGE:
            continue
        hits_v2, hits_v1 = np.zeros(3), 0
        for s in samples:
            u8 = (np.load(maps / name / f"{s.image_id}.npy") * 255).astype(np.uint8)
            t = math.floor(SKIMAGE[rule](u8))
            gt = gt_boxes(s, "wsolevaluation")
            best = iou_matrix(contour_boxes_at(u8, t, all_contours=True), gt).max()
            hits_v2 += best >= np.array([0.3, 0.5, 0.7])
            hits_v1 += iou_matrix(contour_boxes_at(u8, t, all_contours=False), gt).max() >= 0.5
        row = result.metrics[name]
        assert row["maxboxacc_v2"] == pytest.approx(100 * hits_v2.mean() / len(samples)), name
        assert row["maxboxacc"] == pytest.approx(100 * hits_v1 / len(samples)), name
        for curve in result.curves[name]["maxboxacc_v2"].values():  # one operating point: flat curves
            assert np.ptp(curve) == 0
    # the rules are not all the same threshold, and NWC moves them: the rows are real measurements
    assert len({result.metrics[r]["maxboxacc_v2"] for r in ADAPTIVE_RULES}) > 1
    assert any((np.load(maps / r / f"{s.image_id}.npy") != np.load(maps / f"nwc+{r}" / f"{s.image_id}.npy")).any()
               for r in ("otsu",) for s in samples)


def test_rethinking_rule_rows_equal_calibration_scores(lite0, imagenet):
    """Two code paths, one number: evaluate's box per map against calibrate's threshold table."""
    root, samples = imagenet
    names = tuple(f"nwc+{r}" for r in ADAPTIVE_RULES) + ("nwc+pas",)
    result = evaluate(lite0, samples, root, Settings("rethinking", names), batch_size=12, progress=False)
    best, grid = calibrate(lite0, samples, root, nwc=True, percentiles=(90.0,), thetas=[0.35],
                           rules=ADAPTIVE_RULES, batch_size=12, progress=False)
    assert set(best.rule_scores) == set(ADAPTIVE_RULES)
    for rule, score in best.rule_scores.items():
        assert score == pytest.approx(result.metrics[f"nwc+{rule}"]["gt_known_loc"]), rule
    assert grid[0, 0] == pytest.approx(result.metrics["nwc+pas"]["gt_known_loc"])
    # the saved rule is the best of all candidates, the grid first where they tie
    top = max([grid[0, 0]] + list(best.rule_scores.values()))
    assert best.gt_known_loc == pytest.approx(top)
    assert (best.rule == "percentile") == (grid[0, 0] == top)


def test_a_calibration_that_chose_a_rule_round_trips_and_drives_evaluation(tmp_path, lite0, imagenet):
    root, samples = imagenet
    calib = Calibration(None, None, True, 50.0, str(root), "efficientnet_lite0", N, rule="yen",
                        rule_scores={"yen": 50.0})
    calib.save(tmp_path / "calibration.json")
    loaded = Calibration.load(tmp_path)
    assert loaded == calib and loaded.standard().rule == "yen" and loaded.describe() == "yen"
    settings = Settings("rethinking", ("nwc+yen", "calibrated"), calibration=json.loads(
        (tmp_path / "calibration.json").read_text()))
    result = evaluate(lite0, samples[:8], root, settings, batch_size=8, progress=False)
    assert result.metrics["calibrated"] == result.metrics["nwc+yen"]


def test_calibration_files_that_make_no_threshold_are_refused(tmp_path):
    from camloc import CamlocError

    for bad in ({"rule": "otsu", "theta": 0.3, "percentile": None}, {"rule": "percentile", "theta": None,
                                                                       "percentile": None}, {"rule": "mean"}):
        data = {"theta": None, "percentile": None, "nwc": True, "gt_known_loc": 1.0, "metadata": "m", "model": "x",
                "n": 1, **bad}
        (tmp_path / "c.json").write_text(json.dumps(data))
        with pytest.raises(CamlocError, match="not a camloc calibration file"):
            Calibration.load(tmp_path / "c.json")
    with pytest.raises(UsageError, match="unknown rule 'mean'"):
        calibrate(None, read_dataset(data_dir("imagenet-val"))[:1], ".", rules=("mean",))


def test_command_line_rules(tmp_path, imagenet):
    root, samples = imagenet
    runner = CliRunner()
    bad = runner.invoke(main, ["localize", "examples/images/cat.jpg", "--standard", "otsu", "--theta", "0.3"])
    assert bad.exit_code == 2 and "theta applies only" in bad.output and "Traceback" not in bad.output
    ok = runner.invoke(main, ["localize", "examples/images/cat.jpg", "--standard", "triangle", "--json",
                              "--out", str(tmp_path / "loc"), "--quiet"])
    assert ok.exit_code == 0, ok.output
    manifest = json.loads((tmp_path / "loc" / "run.json").read_text())
    assert manifest["standard"] == {"theta": None, "percentile": None, "rule": "triangle"}
    bad = runner.invoke(main, ["calibrate", "--metadata", str(root), "--rules", "otsu,mean", "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "unknown rule 'mean'" in bad.output
    ev = runner.invoke(main, ["evaluate", "--metadata", str(root), "--variants", "all", "--limit", "4", "--json", "--quiet",
                              "--batch-size", "4"])
    assert ev.exit_code == 0, ev.output
    assert set(json.loads(ev.stdout)["variants"]) == set(VARIANTS)


def test_every_localization_records_its_standard_and_nwc(lite0):
    import camloc
    from camloc.cam.rules import ThresholdRule

    cat = "examples/images/cat.jpg"
    (otsu,) = camloc.boxes(lite0, [cat], standard="otsu")
    (vanilla,) = camloc.boxes(lite0, [cat], standard="max", nwc=False)
    (layercam,) = camloc.boxes(lite0, [cat], method="layercam")
    assert (otsu.standard, otsu.nwc) == ("otsu", True) and otsu.to_dict()["standard"] == "otsu"
    assert (vanilla.standard, vanilla.nwc) == ("0.2 x max", False) == (ThresholdRule.max().label, vanilla.to_dict()["nwc"])
    assert (layercam.standard, layercam.nwc) == ("0.35 x p90", False)  # NWC does not apply to LayerCAM
