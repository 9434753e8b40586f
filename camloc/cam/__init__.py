"""From a classifier to maps and boxes: the paper's method, post hoc.

* :mod:`~camloc.cam.hooks`: eval mode and forward hooks that leave no trace; one traced forward pass;
* :mod:`~camloc.cam.pooling`: the pooling formulas (GAP, max, avgmax, catavgmax, TAP), written once;
* :mod:`~camloc.cam.heads`: head kinds (:class:`HeadSpec`), exact maps (with NWC) and gradient maps;
* :mod:`~camloc.cam.analysis`: finding the feature map and classifier of any CNN by structure;
* :mod:`~camloc.cam.extractor`: :class:`CAMExtractor`, maps for a batch;
* :mod:`~camloc.cam.boxes`: the box rule (upsample, min-max, threshold standards, contours).

It needs nothing of camloc but :mod:`camloc.utils.errors` and knows no model by name: it works on any module.
"""

from .analysis import analyze
from .boxes import Standard, boxes_from_maps, contour_boxes, foreground, make_standard
from .extractor import CAMExtractor, CAMOutput, ClassSpec, resolve_classes
from .heads import HeadSpec

__all__ = [
    "CAMExtractor", "CAMOutput", "ClassSpec", "HeadSpec", "Standard", "analyze", "boxes_from_maps", "contour_boxes",
    "foreground", "make_standard", "resolve_classes",
]
