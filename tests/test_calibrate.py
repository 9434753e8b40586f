"""camloc calibrate: the grid search, the saved file, and its use by localize, boxes and evaluate."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import camloc
from camloc import CamlocError
from camloc.eval.calibrate import Calibration, calibrate
from camloc.cli import main
from camloc.data.metadata import read_dataset

from .conftest import EXAMPLES
from .test_evaluate import synthetic_split
from .test_geometry import Brightness


def test_grid_search_on_synthetic_objects(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    best, grid = calibrate(Brightness(), read_dataset(meta), images, percentiles=(50, 100), progress=False)
    assert best.gt_known_loc == 100.0 == grid.max()
    assert grid.shape[0] == 2 and best.percentile in (50.0, 100.0)
    path = tmp_path / "c.json"
    best.save(path)
    assert Calibration.load(path) == best


def test_bad_calibration_files(tmp_path):
    with pytest.raises(CamlocError, match="no such calibration file"):
        Calibration.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"theta": 1}')
    with pytest.raises(CamlocError, match="bad.json"):
        Calibration.load(bad)


def test_calibration_drives_boxes_and_localize(tmp_path, lite0):
    calib = Calibration(0.9, 100.0, False, 0.0, "x", "efficientnet_lite0", 1)
    path = tmp_path / "c.json"
    calib.save(path)
    cat = str(EXAMPLES / "cat.jpg")
    (a,) = camloc.boxes(lite0, [cat], calibration=path)
    (b,) = camloc.boxes(lite0, [cat], nwc=False, standard="max", theta=0.9)
    assert a.box == b.box
    res = CliRunner().invoke(main, ["localize", cat, "--json", "--calibration", str(path)])
    assert res.exit_code == 0 and json.loads(res.stdout)["box"] == [round(v, 2) for v in b.box]


def test_cli_calibrate_then_evaluate_reports_both_splits(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    out = tmp_path / "calib.json"
    res = CliRunner().invoke(main, ["calibrate", "--metadata", str(meta), "--images", str(images), "--quiet",
                                    "--out", str(out), "--percentiles", "90,100"])
    assert res.exit_code == 0, res.output
    saved = json.loads(out.read_text())
    assert saved["model"] == "efficientnet_lite0" and saved["n"] == 6 and saved["percentile"] in (90.0, 100.0)
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(meta), "--images", str(images), "--quiet",
                                    "--calibration", str(out), "--variants", "cam", "--limit", "3"])
    assert res.exit_code == 0, res.output
    assert "calibrated on" in res.stdout and "the SAME split" in res.stdout and "\ncalibrated\t" in res.stdout


def test_calibrate_refuses_labels_beyond_classes(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    from camloc import UsageError
    from camloc.data.metadata import Sample

    samples = [Sample(s.image_id, 5, s.width, s.height, s.boxes) for s in read_dataset(meta)]
    with pytest.raises(UsageError, match="top1"):
        calibrate(Brightness(), samples, images, progress=False)
