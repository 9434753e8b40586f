"""Per-class localization of a multi-label split: each ground-truth class of an image with its own map.

A multi-label split (``read_dataset(path, multilabel=True)``) gives an image several classes and each box,
optionally, its class. For every class ``c`` the split's images of class ``c`` are evaluated as a
single-label split of that class (:func:`class_splits`): the map is the CAM of ``c`` (``cam_class="gt"``),
and the ground truth is ``c``'s boxes, those given class ``c`` and those given no class
(:meth:`camloc.data.metadata.Sample.boxes_of`). Every metric is the single-label one of
:func:`camloc.eval.evaluation.evaluate` under the chosen protocol (docs/protocols.md): GT-known Loc
(rethinking: IoU >= 0.5 at the fixed thresholds), MaxBoxAcc and MaxBoxAccV2 (wsolevaluation), so a
single-label split gives the same numbers here, for its classes, as there. The metrics that rest on
a softmax Top-1 prediction (Top-1/Top-5 Cls and Loc) mean nothing for several classes at once and are
left out. The mean over classes (macro average) of each metric is :attr:`PerClassResult.mean`.

Example:
    >>> import tempfile, torch
    >>> from camloc.data.metadata import read_dataset
    >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
    >>> from camloc.eval.per_class import evaluate_per_class
    >>> from camloc.eval.protocols import Settings
    >>> from camloc.models.wsol import build_wsol
    >>> root = tempfile.mkdtemp()
    >>> folders = write_synthetic(root, SyntheticSpec(classes=2, train=1, train_fullsup=1, test=4))
    >>> _ = torch.manual_seed(0)
    >>> model = build_wsol("smallcnn", num_classes=2)
    >>> result = evaluate_per_class(model, read_dataset(folders["test"], multilabel=True), root,
    ...                             Settings("rethinking", ("cam",)), progress=False)
    >>> sorted(result.classes), [result.classes[c]["images"] for c in sorted(result.classes)]
    ([0, 1], [2, 2])
    >>> sorted(result.mean["cam"])
    ['gt_known_loc']
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from ..data.metadata import Sample
from ..utils.errors import UsageError
from .evaluation import LabelSpaceWarning, evaluate
from .protocols import Settings

#: Metrics of a single-label evaluation that rest on the softmax Top-1 prediction: not reported per class.
CLASSIFICATION = ("top1_cls", "top5_cls", "top1_loc", "top5_loc")


def class_splits(samples: Sequence[Sample]) -> dict[int, list[Sample]]:
    """``{class: its images}``, each image as a single-label sample of that class with that class's boxes.

    Example:
        >>> from camloc.data.metadata import Sample
        >>> from camloc.eval.per_class import class_splits
        >>> s = Sample("a.jpg", 3, 100, 80, ((0, 0, 9, 9), (5, 5, 50, 50)), classes=(3, 7), box_classes=(7, None))
        >>> {c: [x.boxes for x in xs] for c, xs in class_splits([s]).items()}
        {3: [((5, 5, 50, 50),)], 7: [((0, 0, 9, 9), (5, 5, 50, 50))]}
    """
    out: dict[int, list[Sample]] = {}
    for s in samples:
        for c in s.classes:
            out.setdefault(c, []).append(replace(s, label=c, classes=(c,), boxes=s.boxes_of(c), box_classes=()))
    return dict(sorted(out.items()))


def _mean(values: list[Any]) -> float | None:
    """The mean of the numbers among ``values`` (None where there is none)."""
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    return sum(numbers) / len(numbers) if numbers else None


def class_means(per_class: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per row, the mean over classes of each localization metric (and of MaxBoxAccV2's accuracy per IoU).

    Thresholds (``*_tau``) are each class's own and are not averaged.
    """
    rows = dict.fromkeys(r for metrics in per_class.values() for r in metrics)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        found = [m[row] for m in per_class.values() if row in m]
        keys = dict.fromkeys(k for m in found for k in m if not k.endswith("_tau"))
        out[row] = {}
        for key in keys:
            if key == "maxboxacc_v2_per_delta":
                deltas = dict.fromkeys(d for m in found for d in m.get(key, {}))
                out[row][key] = {d: {"acc": _mean([m[key][d]["acc"] for m in found if d in m.get(key, {})])}
                                 for d in deltas}
            else:
                out[row][key] = _mean([m.get(key) for m in found])
    return out


@dataclass
class PerClassResult:
    """Localization per class of a multi-label split, and the mean over classes.

    Attributes:
        settings: everything that made the numbers.
        dataset: the split: ``n`` images, ``pairs`` (image, class) pairs scored, ``failed`` images.
        classes: ``{class: {"images": n, "metrics": {row: {metric: value}}}}``, classes in order.
        mean: ``{row: {metric: mean over classes}}``.
        failed: ``{"image_id", "reason"}`` of each image that could not be read (a miss for each of its classes).
        warnings: one line each.
    """

    settings: Settings
    dataset: dict[str, Any]
    classes: dict[int, dict[str, Any]]
    mean: dict[str, dict[str, Any]]
    failed: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: protocol, settings, dataset, ``classes`` (keys as strings), ``mean``, failed, warnings."""
        return {"protocol": self.settings.protocol, "settings": asdict(self.settings), "dataset": self.dataset,
                "classes": {str(c): v for c, v in self.classes.items()}, "mean": self.mean,
                "failed": list(self.failed), "warnings": list(self.warnings)}


def evaluate_per_class(model: nn.Module, samples: Sequence[Sample], images: str | os.PathLike,
                       settings: Settings = Settings(),  # noqa: B008
                       masks: str | os.PathLike | None = None, batch_size: int = 32, progress: bool = True,
                       workers: int = 0) -> PerClassResult:
    """Localize each class of each image with that class's map and score it against that class's boxes.

    One :func:`~camloc.eval.evaluation.evaluate` run per class over the images of that class
    (:func:`class_splits`), so an image is run once per class it has. An image that cannot be read
    is a miss for each of its classes and is listed once.

    Args:
        model: a classifier with a head of the split's classes (sigmoid-trained or not: the maps are
            the same).
        samples: the split, from ``read_dataset(path, multilabel=True)``.
        images: the image root.
        settings: as for :func:`evaluate`; ``cam_class`` must be ``"gt"`` (the map of each labelled class).
        masks: the mask root, for PxAP (a mask counts for every class of its image).
        batch_size: images per forward pass.
        progress: a progress bar per class on stderr.
        workers: image decoding worker processes.

    Raises:
        UsageError: ``cam_class`` is not ``"gt"``, bad settings for this split, or nothing could be scored.
    """
    if settings.cam_class != "gt":
        raise UsageError(f"per-class localization maps each image's labelled classes: it needs cam_class 'gt', not "
                         f"{settings.cam_class!r} (drop --cam-class, or evaluate without --multilabel)")
    classes: dict[int, dict[str, Any]] = {}
    failed: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    for c, split in class_splits(samples).items():
        with warnings.catch_warnings(record=True) as caught:  # its Top-1 Cls check is single-label: left out
            warnings.simplefilter("always", LabelSpaceWarning)
            res = evaluate(model, split, images, settings, masks=masks, batch_size=batch_size, progress=progress,
                           workers=workers)
        for w in caught:
            if not issubclass(w.category, LabelSpaceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        dropped = {str(w.message) for w in caught if issubclass(w.category, LabelSpaceWarning)}
        metrics = {row: {k: v for k, v in m.items() if k not in CLASSIFICATION} for row, m in res.metrics.items()}
        classes[c] = {"images": len(split), "metrics": metrics}
        failed.update((f["image_id"], f) for f in res.failed)
        notes += [w for w in res.warnings if w not in notes and w not in dropped]
    dataset = {"images": str(Path(images)), "n": len(samples), "pairs": sum(v["images"] for v in classes.values()),
               "failed": len(failed)}
    per_class = {c: v["metrics"] for c, v in classes.items()}
    return PerClassResult(settings, dataset, classes, class_means(per_class), list(failed.values()), notes)
