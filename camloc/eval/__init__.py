"""Measuring localization: the field's protocols and metrics, and threshold calibration.

* :mod:`~camloc.eval.protocols`: the ``rethinking`` and ``wsolevaluation`` protocols, :class:`Settings`;
* :mod:`~camloc.eval.evaluation`: :func:`evaluate` (every variant from one forward pass), :func:`score_maps`;
* :mod:`~camloc.eval.batches`: a split's images in batches, and how an image that fails is listed;
* :mod:`~camloc.eval.scoring`: the wsolevaluation scorer (MaxBoxAcc, MaxBoxAccV2, PxAP of score maps);
* :mod:`~camloc.eval.records`: per-image records (hit, IoU and box per row) and the views kept for pictures;
* :mod:`~camloc.eval.faithfulness_metrics`: :func:`faithfulness` (deletion, insertion, Average Drop, Increase),
  computed by :mod:`~camloc.eval.perturbation`;
* :mod:`~camloc.eval.calibration`: theta and percentile chosen on a labelled split;
* :mod:`~camloc.eval.boxacc`: box hits at every threshold in one pass (the MaxBoxAcc core);
* :mod:`~camloc.eval.maxtree`: the compiled max-tree sweep behind it;
* :mod:`~camloc.eval.metrics`: accumulators (fixed threshold, MaxBoxAcc, PxAP);
* :mod:`~camloc.viz.figures`: accuracy-vs-threshold and precision-recall pictures.

Built on :mod:`camloc.cam` (maps and the box rule), :mod:`camloc.models` (a model's preprocessing)
and :mod:`camloc.data`. Importing this package loads nothing: each name is imported on first use
(the evaluation loads torch, numba and OpenCV; scoring saved maps needs neither torch nor timm).
"""

from ..utils.lazy import lazy_namespace

_NAMES = {
    "evaluate": ("evaluation", "evaluate"), "score_maps": ("scoring", "score_maps"),
    "EvaluationResult": ("result", "EvaluationResult"),
    "calibrate": ("calibration", "calibrate"), "Calibration": ("calibration", "Calibration"),
    "diagnose": ("diagnosis", "diagnose"), "Diagnosis": ("diagnosis", "Diagnosis"),
    "faithfulness": ("faithfulness_metrics", "faithfulness"),
    "FaithfulnessResult": ("faithfulness_metrics", "FaithfulnessResult"),
    "PROTOCOLS": ("protocols", "PROTOCOLS"), "VARIANTS": ("protocols", "VARIANTS"),
    "Settings": ("protocols", "Settings"),
}
__getattr__, __dir__ = lazy_namespace(__name__, _NAMES)
__all__ = sorted(_NAMES)
