"""What an evaluation returns, and how it lists the images it could not score (no torch).

:class:`EvaluationResult` is what :func:`camloc.eval.evaluation.evaluate` (maps made in the run) and
:func:`camloc.eval.scoring.score_maps` (maps saved beforehand) return; :func:`failure` is how either
lists an image that could not be scored, and :func:`nothing_scored` the error when none could be.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..utils.errors import UsageError

if TYPE_CHECKING:
    from ..data.metadata import Sample
    from .protocols import Settings
    from .records import ImageView


@dataclass
class EvaluationResult:
    """Metrics per variant, with the protocol and settings that made them, and the curves.

    Attributes:
        settings: everything that made the numbers.
        dataset: the split (``n`` images in all, ``failed`` of them could not be scored).
        metrics: ``{row: {metric: value}}``, a row per variant and method (:meth:`Settings.rows`).
        curves: accuracy against threshold, precision-recall (wsolevaluation).
        failed: ``{"image_id", "reason"}`` for each image that could not be scored; each counts as a
            miss in every metric (see :func:`evaluate`).
        warnings: one line each, e.g. :func:`label_space_warning`'s.
        per_image: with ``evaluate(per_image=True)``, a record per scored image in split order:
            ``image_id``, ``label``, ``predicted`` (top-1 class), ``label_name`` and
            ``predicted_name`` (the model's class names, where known; the label's only with
            ``cam_class="gt"``, where labels are the model's classes), ``score`` (the top-1 softmax
            probability) and ``rows``: ``{row: {"hit", "iou", "box"}}``, the box ``[x0, y0, x1, y1]``
            on the 224 x 224 input. Under ``rethinking`` the box is the row's one box and a hit is
            what GT-known Loc counts (IoU >= 0.5). Under ``wsolevaluation`` they are taken at the
            row's operating point (:attr:`operating_points`): the tau of the best accuracy at IoU 50
            over the split (MaxBoxAccV2's, all contours; MaxBoxAcc's, largest contour, where V2 is
            not computed), a hit being the image's hit there as that metric counts it, so that the
            hits of a row average to its accuracy at IoU 50; the box (the best of that threshold's
            contour boxes) and its IoU are given for the images with a view, None for the others.
            Empty without boxes to judge.
        operating_points: ``{row: {"metric", "tau", "delta"}}`` (wsolevaluation with per-image records).
        views: with ``evaluate(views=N)``, an :class:`ImageView` of each of the first N scored images.
        preprocess: the test transform the maps were made on (``Preprocess.to_dict()`` and its
            ``region_mode``: ``full``, the whole image resized, or ``crop``, a center crop of it), where
            the run made them (:func:`evaluate`); empty for saved maps.
        faithfulness: with ``evaluate(faithfulness=True)``, the settings of the faithfulness metrics each
            row's metrics then hold (``deletion``, ``insertion``, ``average_drop``, ``increase``: the
            metrics, the curves' ``step`` and ``steps``, the baselines; :mod:`camloc.eval.perturbation`).
    """

    settings: Settings
    dataset: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, Any]] = field(repr=False, default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    per_image: list[dict[str, Any]] = field(repr=False, default_factory=list)
    operating_points: dict[str, dict[str, Any]] = field(repr=False, default_factory=dict)
    views: dict[str, ImageView] = field(repr=False, default_factory=dict)
    preprocess: dict[str, Any] = field(repr=False, default_factory=dict)
    faithfulness: dict[str, Any] = field(repr=False, default_factory=dict)

    def to_dict(self, with_curves: bool = False) -> dict[str, Any]:
        """A JSON-ready dict of the result.

        Its keys: protocol, settings, dataset, ``variants`` (the metrics), failed images, warnings, the
        ``preprocess`` (with its ``region_mode``) where known, ``faithfulness`` (its settings) where computed
        and, with ``with_curves``, the curves.
        """
        d = {"protocol": self.settings.protocol, "settings": asdict(self.settings), "dataset": self.dataset,
             "variants": self.metrics, "failed": list(self.failed), "warnings": list(self.warnings)}
        if self.preprocess:
            d["preprocess"] = dict(self.preprocess)
        if self.faithfulness:
            d["faithfulness"] = dict(self.faithfulness)
        if with_curves:
            d["curves"] = _jsonable(self.curves)
        return d


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [None if np.isnan(v) else float(v) for v in obj.ravel()]
    return obj


def failure(sample: Sample, reason: str) -> dict[str, str]:
    """How a result lists an image that could not be scored."""
    return {"image_id": sample.image_id, "reason": reason}


def nothing_scored(n: int, what: str, first: dict[str, str]) -> UsageError:
    """The error when every one of ``n`` items failed: the first one's reason names the fix."""
    return UsageError(f"none of the {n} {what} could be scored; the first, {first['image_id']}: {first['reason']}")
