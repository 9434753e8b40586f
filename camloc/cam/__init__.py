"""From a classifier to maps and boxes: the paper's method, post hoc.

* :mod:`~camloc.cam.hooks`: eval mode and forward hooks that leave no trace; one traced forward pass;
* :mod:`~camloc.cam.pooling`: the pooling formulas (GAP, max, avgmax, catavgmax, TAP), written once;
* :mod:`~camloc.cam.heads`: head kinds (:class:`HeadSpec`), exact maps (with NWC) and gradient maps;
* :mod:`~camloc.cam.analysis`: finding the feature map and classifier of any CNN by structure;
* :mod:`~camloc.cam.extractor`: :class:`CAMExtractor`, maps for a batch;
* :mod:`~camloc.cam.boxes`: the box rule (upsample, min-max, threshold standards, contours).

It needs nothing of camloc but :mod:`camloc.utils` and knows no model by name: it works on any module.
Importing it loads nothing: each name is imported on first use.
"""

from ..utils.lazy import lazy_namespace

_NAMES = {
    "analyze": ("analysis", "analyze"), "HeadSpec": ("heads", "HeadSpec"),
    "ThresholdRule": ("rules", "ThresholdRule"), "Standard": ("rules", "ThresholdRule"),
    "make_standard": ("rules", "make_standard"), "contour_boxes": ("rules", "contour_boxes"),
    "boxes_from_maps": ("boxes", "boxes_from_maps"), "foreground": ("boxes", "foreground"),
    "CAMExtractor": ("extractor", "CAMExtractor"), "CAMOutput": ("extractor", "CAMOutput"),
    "ClassSpec": ("extractor", "ClassSpec"), "resolve_classes": ("extractor", "resolve_classes"),
}
__getattr__, __dir__ = lazy_namespace(__name__, _NAMES)
__all__ = sorted(_NAMES)
