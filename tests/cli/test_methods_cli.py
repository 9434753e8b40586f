"""``--method`` on ``camloc localize``, ``evaluate`` and ``calibrate`` as a user runs them."""

from __future__ import annotations

import json

from click.testing import CliRunner
from torch import nn

from camloc.cli import main

from ..helpers import CAT, COFFEE, synthetic_split, two_class_split


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_method_choices_are_the_library_methods():
    from camloc.cam.methods import MethodExtractor
    from camloc.cam.names import METHODS

    for method in METHODS:  # every choice --method offers is one the extractor computes
        assert MethodExtractor(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)),
                               method=method) is not None
    res = run("localize", CAT, "--method", "nosuch")
    assert res.exit_code == 2 and "cam" in res.output and "scorecam" in res.output


def test_localize_with_a_method_records_it(tmp_path):
    res = run("localize", CAT, COFFEE, "--method", "gradcam++", "--json", "--out", tmp_path / "out", "--no-overlays",
              "--quiet")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["method"] for r in rows] == ["gradcam++"] * 2 and not rows[0]["exact"]
    assert json.loads((tmp_path / "out" / "run.json").read_text())["method"] == "gradcam++"
    res = run("localize", CAT, COFFEE, "--method", "layercam", "--out", tmp_path / "out", "--resume", "--quiet")
    assert res.exit_code == 2 and "method: 'gradcam++' then, 'layercam' now" in res.stderr
    res = run("localize", CAT, "--format", "csv")
    assert res.exit_code == 0 and res.stdout.splitlines()[0].split(",")[15:17] == ["exact", "method"]
    assert res.stdout.splitlines()[1].split(",")[15:17] == ["True", "cam"]


def test_unknown_method_is_refused_with_the_names():
    for command in (["localize", CAT], ["evaluate", "--metadata", "."], ["calibrate", "--metadata", ".", "--out", "x"]):
        res = run(*command, "--method", "gradcampp")
        assert res.exit_code == 2
        assert "'gradcampp' is not one of 'cam', 'gradcam', 'gradcam++', 'xgradcam', 'layercam', 'scorecam'" in res.output


def test_evaluate_compares_methods_in_one_run(tmp_path):
    ckpt = two_class_split(tmp_path)
    res = run("evaluate", "--metadata", tmp_path / "meta", "--images", tmp_path / "images", "--model", "resnet18",
              "--checkpoint", ckpt, "--num-classes", 1000, "--method", "cam", "--method", "xgradcam", "--method",
              "scorecam", "--variants", "cam,nwc+pas", "--quiet", "--cam-class", "top1", "--limit", 2)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "methods cam, xgradcam, scorecam" in lines[0]
    assert "left out: scorecam/nwc+pas (NWC does not apply" in res.stdout
    assert [line.split()[0] for line in lines[3:]] == ["cam", "nwc+pas", "xgradcam/cam", "xgradcam/nwc+pas",
                                                       "scorecam/cam"]


def test_calibrate_with_a_method_then_localize_uses_it(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    res = run("calibrate", "--metadata", meta, "--images", images, "--quiet", "--out", tmp_path / "calib",
              "--percentiles", "90,100", "--method", "gradcam")
    assert res.exit_code == 0, res.output
    assert "method gradcam, NWC on" in res.stdout
    assert json.loads((tmp_path / "calib" / "calibration.json").read_text())["method"] == "gradcam"
    res = run("localize", CAT, "--calibration", tmp_path / "calib", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["method"] == "gradcam"
    res = run("localize", CAT, "--calibration", tmp_path / "calib", "--method", "cam")
    assert res.exit_code == 2 and "calibration was made for method 'gradcam', not 'cam'" in res.stderr
    res = run("evaluate", "--metadata", meta, "--images", images, "--quiet", "--calibration", tmp_path / "calib",
              "--variants", "cam", "--limit", 2)
    assert res.exit_code == 0 and "method gradcam, NWC on" in res.stdout
