"""Threshold calibration: the grid search on a labelled split and the saved file."""

from __future__ import annotations

import pytest

from camloc import CamlocError, UsageError
from camloc.data.metadata import Sample, read_dataset
from camloc.eval.calibration import Calibration, calibrate

from ..helpers import Brightness, synthetic_split


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


def test_calibrate_refuses_labels_beyond_classes(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    samples = [Sample(s.image_id, 5, s.width, s.height, s.boxes) for s in read_dataset(meta)]
    with pytest.raises(UsageError, match="top1"):
        calibrate(Brightness(), samples, images, progress=False)
