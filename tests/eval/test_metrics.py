"""The accumulators with hand-computed values: PxAP, MaxBoxAcc, the fixed-threshold metrics."""

from __future__ import annotations

import numpy as np
import pytest

from camloc.eval.metrics import FixedThreshold, MaxBoxAcc, PxAP


def test_pxap_by_hand():
    acc = PxAP(np.array([0.0, 0.5]))  # edges 0, 0.5, 1, 2, 3
    scores = np.array([[0.9, 0.2], [0.7, 0.6]])
    mask = np.array([[True, False], [False, True]])
    acc.add(scores, mask)
    # thresholds high -> low: bins [2,3), [1,2), [0.5,1), [0,0.5): fg 0,0,2,0; bg 0,0,1,1
    precision, recall = acc.curve()
    assert np.allclose(recall, [0, 0, 1, 1])
    assert np.allclose(precision[2:], [2 / 3, 2 / 4])
    assert acc.compute() == pytest.approx(100 * 2 / 3)


def test_pxap_ignores_ignored_pixels():
    acc = PxAP(np.array([0.0, 0.5]))
    scores = np.array([[0.9, 0.8]])
    acc.add(scores, np.array([[True, False]]), ignore=np.array([[False, True]]))
    assert acc.compute() == pytest.approx(100.0)


def test_maxboxacc_by_hand():
    acc = MaxBoxAcc(np.array([0.1, 0.2, 0.3]), (30, 50))
    acc.add(np.array([[True, False], [True, True], [False, False]]))
    acc.add(np.array([[True, True], [False, False], [False, False]]))
    res = acc.compute()
    assert res["per_delta"][30] == {"acc": 100.0, "tau": 0.1}
    assert res["per_delta"][50] == {"acc": 50.0, "tau": 0.1}
    assert res["mean"] == 75.0


def test_fixed_threshold_by_hand():
    acc = FixedThreshold()
    acc.add(0.5, True, True)
    acc.add(0.49, True, True)
    acc.add(0.8, False, True)
    acc.add(0.1, False, False)
    assert acc.compute() == {"top1_cls": 50.0, "top5_cls": 75.0, "gt_known_loc": 50.0, "top1_loc": 25.0}
