"""One box rule serves localize, evaluate and calibrate: calibrate's grid values are what evaluate
reports with the same settings on the same data, and evaluate's boxes are camloc.boxes' boxes."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from camloc.cam.rules import ThresholdRule
from camloc.data.metadata import read_dataset
from camloc.eval.calibration import calibrate
from camloc.eval.evaluation import evaluate
from camloc.eval.protocols import Settings

from ..conftest import data_dir


@pytest.mark.slow
def test_calibrate_grid_equals_evaluate_with_the_chosen_settings(lite0):
    root = data_dir("cub-train")
    samples = read_dataset(root)[:24]
    thetas = np.round(np.arange(0.1, 0.9, 0.1), 2)
    best, grid = calibrate(lite0, samples, root, cam_class="top1", percentiles=(80.0, 100.0), thetas=thetas,
                           batch_size=12, progress=False)
    assert grid.max() > grid.min()  # the grid discriminates, so equality below is not trivial
    calib = asdict(best)
    res = evaluate(lite0, samples, root, Settings("rethinking", ("calibrated",), cam_class="top1", calibration=calib),
                   batch_size=12, progress=False)
    assert res.metrics["calibrated"]["gt_known_loc"] == pytest.approx(best.gt_known_loc, abs=1e-9)
    # and another cell: theta 0.2 at the 100th percentile with NWC is evaluate's "nwc" variant
    i, j = 1, int(np.flatnonzero(thetas == 0.2)[0])
    assert Settings().standard("nwc") == ThresholdRule(0.2, 100.0) and Settings().nwc("nwc")
    plain = evaluate(lite0, samples, root, Settings("rethinking", ("nwc",), cam_class="top1"), batch_size=12,
                     progress=False)
    assert plain.metrics["nwc"]["gt_known_loc"] == pytest.approx(grid[i, j], abs=1e-9)
