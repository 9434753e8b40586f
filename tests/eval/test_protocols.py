"""The protocols' ground-truth box conventions."""

from __future__ import annotations

from camloc.data.metadata import Sample
from camloc.eval.protocols import gt_boxes


def test_gt_box_conventions():
    s = Sample("a", 0, 500, 400, ((10.0, 20.0, 499.0, 399.0),))
    # rethinking: int(v * 256 / W - 16), clipped to [0, 223]
    assert gt_boxes(s, "rethinking").tolist() == [[0, 0, 223, 223]]
    s2 = Sample("a", 0, 500, 400, ((100.0, 100.0, 300.0, 200.0),))
    assert gt_boxes(s2, "rethinking").tolist() == [[int(100 * 256 / 500 - 16), int(100 * 256 / 400 - 16),
                                                    int(300 * 256 / 500 - 16), int(200 * 256 / 400 - 16)]]
    # wsolevaluation: int(v * 224 / W), no clipping
    assert gt_boxes(s2, "wsolevaluation").tolist() == [[44, 56, 134, 112]]
