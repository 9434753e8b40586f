"""Measuring localization: the field's protocols and metrics, and threshold calibration.

* :mod:`~camloc.eval.protocols`: the ``rethinking`` and ``wsolevaluation`` protocols, :class:`Settings`;
* :mod:`~camloc.eval.evaluate`: :func:`evaluate` (every variant from one forward pass), :func:`score_maps`;
* :mod:`~camloc.eval.batches`: a split's images in batches, and how an image that fails is listed;
* :mod:`~camloc.eval.scoring`: the wsolevaluation scorer (MaxBoxAcc, MaxBoxAccV2, PxAP of score maps);
* :mod:`~camloc.eval.records`: per-image records (hit, IoU and box per row) and the views kept for pictures;
* :mod:`~camloc.eval.calibrate`: theta and percentile chosen on a labelled split;
* :mod:`~camloc.eval.boxacc`: box hits at every threshold in one pass (the MaxBoxAcc core);
* :mod:`~camloc.eval.maxtree`: the compiled max-tree sweep behind it;
* :mod:`~camloc.eval.metrics`: accumulators (fixed threshold, MaxBoxAcc, PxAP);
* :mod:`~camloc.viz.figures`: accuracy-vs-threshold and precision-recall pictures.

Built on :mod:`camloc.cam` (maps and the box rule), :mod:`camloc.models` (a model's preprocessing)
and :mod:`camloc.data`. Importing this package loads numba and OpenCV; plots load matplotlib.
"""

from .calibrate import Calibration
from .evaluate import EvaluationResult, score_maps
from .protocols import PROTOCOLS, VARIANTS, Settings

# The functions evaluate() and calibrate() are not re-exported here: their names would hide the
# modules camloc.eval.evaluate and camloc.eval.calibrate (camloc.evaluate_split and
# camloc.calibrate_split are their public names).
__all__ = ["Calibration", "EvaluationResult", "PROTOCOLS", "Settings", "VARIANTS", "score_maps"]
