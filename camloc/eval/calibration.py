"""Calibration, beyond the paper: choose theta and the percentile on a labelled split.

The paper fixes PaS at ``theta = 0.35`` and the 90th percentile for every backbone and dataset.
:func:`calibrate` instead searches a grid of percentiles and thetas for the pair that maximises
GT-known Loc (IoU >= 0.5 with the largest contour's box, the rethinking protocol's conventions)
on a fully annotated split, such as wsolevaluation's train-fullsup, never the test split. One
forward pass per image serves the whole grid: a map's box only changes where the integer
threshold ``int(theta * percentile(U))`` crosses a level present in the map. Automatic rules
(``rules``: ``otsu``, ``li``, ``triangle``, ``yen``; :func:`camloc.cam.boxes.make_standard`) can
compete with the grid: each is one more threshold per map, scored by the same table, and the
best of all is kept (the grid first where they tie).

The result is a small JSON file that ``camloc localize --calibration``, ``camloc.boxes(...,
calibration=...)`` and ``camloc evaluate --calibration`` load; evaluation reports the split it was
calibrated on beside the split it evaluates. A calibration is made for one method's maps
(:mod:`camloc.cam.methods`, default ``cam``) and records it; whatever loads it uses that method.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..cam.boxes import thresholds, to_uint8, upsample
from ..cam.methods import MethodExtractor
from ..cam.names import DEFAULT_METHOD, check_method, effective_nwc
from ..cam.rules import ThresholdRule
from ..data.metadata import Sample
from ..utils.atomic import atomic_write_text
from ..utils.defaults import ADAPTIVE_RULES, SIZE
from ..utils.device import device_of
from ..utils.errors import CamlocError, UsageError
from .batches import LoadedBatch, protocol_preprocess, sample_batches
from .boxacc import largest_contour_table, threshold_levels
from .evaluation import check_labels, warn_label_space
from .protocols import check_box_convention, check_cam_class, gt_boxes
from .result import failure, nothing_scored

#: The file name ``camloc calibrate --out DIR`` saves to; ``--calibration DIR`` reads it.
FILE = "calibration.json"
DEFAULT_PERCENTILES = (50.0, 60.0, 70.0, 80.0, 85.0, 90.0, 95.0, 100.0)
#: The theta grid searched by default: 0.05 to 0.99 in steps of 0.01.
DEFAULT_THETAS = np.round(np.arange(0.05, 1.0, 0.01), 2)


@dataclass(frozen=True)
class Calibration:
    """A threshold rule chosen on a labelled split, and where it came from.

    Attributes:
        theta, percentile, nwc: the rule (``theta x percentile_i(U)``, NWC on or off; off for methods
            NWC does not apply to); theta and percentile are ``None`` where an automatic rule won.
        gt_known_loc: its GT-known Loc (%) on the split, failed images counted as misses.
        metadata, model, n: the split, the model, and the split's number of images.
        cam_class: ``gt`` or ``top1``.
        protocol: the conventions of the search (``rethinking``).
        box_convention: where ground-truth boxes end (:data:`camloc.eval.protocols.BOX_CONVENTIONS`).
        failed: ``{"image_id", "reason"}`` for each image that could not be read.
        warnings: one line each, e.g. :func:`camloc.eval.evaluation.label_space_warning`'s.
        method: the maps' method (:data:`camloc.cam.methods.METHODS`); files made before methods
            existed name none and mean ``cam``.
        rule: ``percentile`` (theta x percentile) or the automatic rule that won (``otsu``, ``li``,
            ``triangle``, ``yen``); files made before automatic rules existed name none.
        rule_scores: the GT-known Loc (%) of each automatic rule tried, beside the grid's best.
    """

    theta: float | None
    percentile: float | None
    nwc: bool
    gt_known_loc: float
    metadata: str
    model: str
    n: int
    cam_class: str = "gt"
    protocol: str = "rethinking"
    box_convention: str = "wsolevaluation"
    failed: tuple[dict[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    method: str = DEFAULT_METHOD
    rule: str = "percentile"
    rule_scores: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:  # JSON gives lists; keep tuples so a loaded file equals the saved one
        object.__setattr__(self, "failed", tuple(dict(f) for f in self.failed))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "rule_scores", dict(self.rule_scores))
        check_method(self.method)
        if self.rule == "percentile" and (self.theta is None or self.percentile is None):
            raise ValueError("the percentile rule needs theta and percentile")
        self.standard()  # a file whose rule, theta and percentile do not make a threshold is refused

    def standard(self) -> ThresholdRule:
        """The threshold rule: ``ThresholdRule(theta, percentile)`` or the automatic rule.

        Example:
            >>> from camloc.eval.calibration import Calibration
            >>> Calibration(None, None, True, 61.0, "m", "x", 10, rule="otsu").standard()
            ThresholdRule(theta=None, percentile=None, rule='otsu')
        """
        return ThresholdRule(self.theta, self.percentile, self.rule)

    def describe(self) -> str:
        """The rule in words (:attr:`camloc.cam.boxes.ThresholdRule.label`): ``0.3 x p90`` or ``otsu``."""
        return self.standard().label

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON, atomically."""
        atomic_write_text(path, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Calibration:
        """Read a file written by :meth:`save`, or the :data:`FILE` in a folder.

        The folder is where ``camloc calibrate --out DIR`` saves it; a clear error names a bad file.
        """
        if Path(path).is_dir():
            path = Path(path) / FILE
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError as exc:
            raise CamlocError(f"{path}: no such calibration file; make one with camloc calibrate") from exc
        except (ValueError, TypeError) as exc:
            raise CamlocError(f"{path}: not a camloc calibration file ({exc}); make one with camloc calibrate") from exc


def check_rules(rules: Sequence[str]) -> tuple[str, ...]:
    """Automatic rules to try, each once, in order; an unknown name is one line naming the choices.

    Example:
        >>> from camloc.eval.calibration import check_rules
        >>> check_rules(["yen", "otsu", "yen"])
        ('yen', 'otsu')
    """
    unknown = [r for r in rules if r not in ADAPTIVE_RULES]
    if unknown:
        raise UsageError(f"unknown rule {unknown[0]!r}: choose from {', '.join(ADAPTIVE_RULES)}")
    return tuple(dict.fromkeys(rules))


def calibrate(model: nn.Module, samples: Sequence[Sample], images: str | os.PathLike, nwc: bool = True,
              cam_class: str = "gt", percentiles: Sequence[float] = DEFAULT_PERCENTILES,
              thetas: np.ndarray | None = None, batch_size: int = 32, model_name: str = "", metadata: str = "",
              progress: bool = True, box_convention: str = "wsolevaluation", workers: int = 0,
              method: str = DEFAULT_METHOD, rules: Sequence[str] = ()) -> tuple[Calibration, np.ndarray]:
    """Grid-search ``(percentile, theta)`` for the best GT-known Loc on a labelled split.

    ``cam_class="top1"`` maps the predicted class, for splits whose labels are not the model's classes (CUB with an
    ImageNet model); with ``"gt"``, a Top-1 Cls that says they are not
    (:func:`camloc.eval.evaluation.label_space_warning`, the rule ``evaluate`` applies) is issued as a
    :class:`~camloc.eval.evaluation.LabelSpaceWarning` and recorded in the calibration's ``warnings``. An image that
    cannot be read is a miss at every grid point, listed in ``failed``. ``workers`` DataLoader processes decode the
    images (0: this process). ``method`` picks the maps (:mod:`camloc.cam.methods`); NWC is recorded off for methods it
    does not apply to. ``rules`` (automatic thresholds: ``otsu``, ``li``, ``triangle``, ``yen``) compete with the grid;
    their GT-known Loc is recorded in ``rule_scores`` and one of them is chosen only where it beats the grid's best.

    Returns:
        The best :class:`Calibration` (first best in grid order, then ``rules`` in their order) and
        the P x T accuracy grid (%).

    Example:
        >>> import tempfile, torch
        >>> from camloc.data.metadata import read_dataset
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> from camloc.models.wsol import build_wsol
        >>> root = tempfile.mkdtemp()                  # a synthetic benchmark whose train-fullsup split has 4 images
        >>> data = read_dataset(write_synthetic(root, SyntheticSpec(train=1, train_fullsup=4, test=1))["train-fullsup"])
        >>> _ = torch.manual_seed(0)
        >>> best, grid = calibrate(build_wsol("smallcnn", num_classes=4), data, root, rules=("otsu",), progress=False)
        >>> best.describe(), best.gt_known_loc, best.rule_scores, grid.shape      # an untrained model's
        ('0.58 x p50', 100.0, {'otsu': 100.0}, (8, 95))

    Raises:
        UsageError: no boxes, bad names, labels beyond the model's classes with ``"gt"``, or no image could be read.
    """
    if not any(s.boxes for s in samples):
        raise UsageError("calibration needs a split with boxes")
    check_cam_class(cam_class)
    check_box_convention(box_convention)
    nwc = effective_nwc(method, nwc)
    rules = check_rules(rules)
    thetas = DEFAULT_THETAS if thetas is None else np.asarray(thetas, np.float64)
    pcts = [float(p) for p in percentiles]
    pre = protocol_preprocess("rethinking", model)
    extractor = MethodExtractor(model, method, progress=progress)
    counts = _GridCounts(np.zeros((len(pcts), len(thetas)), np.int64), np.zeros(len(rules), np.int64))
    batches = sample_batches(samples, Path(images), pre, batch_size, device_of(model), workers)
    _count_hits(counts, extractor, batches, samples, batch_size, thetas, pcts, rules, nwc, cam_class, box_convention,
                progress)
    if samples and len(counts.failed) == len(samples):
        raise nothing_scored(len(samples), "images", counts.failed[0])
    found = (warn_label_space(counts.top1_hits, counts.classified, counts.num_classes)
             if cam_class == "gt" and counts.num_classes else [])
    grid = 100.0 * counts.hits / len(samples)
    scores = {r: float(100.0 * h / len(samples)) for r, h in zip(rules, counts.rule_hits, strict=True)}
    theta, percentile, rule, acc = _best_rule(grid, scores, thetas, pcts)
    best = Calibration(theta, percentile, nwc, acc, str(metadata), model_name, len(samples), cam_class,
                       box_convention=box_convention, failed=tuple(counts.failed), warnings=tuple(found), method=method,
                       rule=rule, rule_scores=scores)
    return best, grid


@dataclass
class _GridCounts:
    """What the search counts over a split.

    It counts hits at IoU 50 per grid point and per automatic rule, the failed images, and the classification (for
    the label check).

    Attributes:
        hits: P x T images hit at each ``(percentile, theta)``.
        rule_hits: images hit by each automatic rule.
        failed: ``{"image_id", "reason"}`` of each image that could not be read.
        top1_hits: images whose top-1 prediction is their label.
        classified: images classified.
        num_classes: the model's number of classes (None until an image decoded).
    """

    hits: np.ndarray
    rule_hits: np.ndarray
    failed: list[dict[str, str]] = field(default_factory=list)
    top1_hits: int = 0
    classified: int = 0
    num_classes: int | None = None


def _count_hits(counts: _GridCounts, extractor: MethodExtractor, batches: Iterator[LoadedBatch],
                samples: Sequence[Sample], batch_size: int, thetas: np.ndarray, pcts: list[float],
                rules: tuple[str, ...], nwc: bool, cam_class: str, box_convention: str, progress: bool) -> None:
    """Add every batch's maps to ``counts``.

    One map per image, its box hit at IoU 50 judged at every grid point and every rule (a failed image adds no hit:
    a miss everywhere).
    """
    from tqdm import tqdm

    total = -(-len(samples) // batch_size)
    for chunk in tqdm(batches, total=total, disable=not progress, desc="calibrate", unit="batch"):
        counts.failed += [failure(s, reason) for s, reason in chunk.failed]  # a miss everywhere: adds no hit
        if not chunk.samples:
            continue
        if counts.num_classes is None:
            counts.num_classes = check_labels(extractor.cam, chunk.x[:1], samples, cam_class)
        out = extractor(chunk.x, classes=chunk.labels if cam_class == "gt" else None, nwc=nwc)
        counts.top1_hits += int((out.logits.argmax(1).cpu() == chunk.labels).sum())
        counts.classified += len(chunk.samples)
        _add_batch_hits(counts, to_uint8(upsample(out.maps[:, 0], (SIZE, SIZE))), chunk.samples, thetas, pcts, rules,
                        box_convention)


def _add_batch_hits(counts: _GridCounts, u8s: torch.Tensor, samples: Sequence[Sample], thetas: np.ndarray,
                    pcts: list[float], rules: tuple[str, ...], box_convention: str) -> None:
    """Add one batch's hits to ``counts``.

    Per image, the largest contour's box at ``int(theta x percentile_p(U))`` for every grid point, and at each rule's
    threshold, judged at IoU >= 0.5 (the rethinking protocol's conventions) in one table over the distinct levels.

    Args:
        counts: the counts to add to.
        u8s: the batch's B x 224 x 224 uint8 maps ``U``.
        samples: the batch's samples.
        thetas: the grid's thetas.
        pcts: the grid's percentiles.
        rules: the automatic rules.
        box_convention: where ground-truth boxes end.
    """
    rule_levels = np.stack([thresholds(u8s, ThresholdRule.adaptive(r)).cpu().numpy() for r in rules], 1) if rules \
        else np.zeros((len(u8s), 0), np.int64)
    for s, u8, own in zip(samples, u8s.cpu().numpy(), rule_levels, strict=True):
        gt = gt_boxes(s, "rethinking", box_convention)
        levels = np.stack([threshold_levels(u8, thetas, p) for p in pcts])
        table = largest_contour_table(u8, gt, (50,), np.concatenate([levels.ravel(), own]), rethinking=True)[:, 0]
        counts.hits += table[levels]
        counts.rule_hits += table[own]


def _best_rule(grid: np.ndarray, scores: dict[str, float], thetas: np.ndarray, pcts: list[float]
               ) -> tuple[float | None, float | None, str, float]:
    """The best threshold rule: the grid's first best ``(percentile, theta)``, unless an automatic rule is better.

    An automatic rule wins where it scores strictly higher (the first such best, in ``rules`` order).

    Returns:
        ``(theta, percentile, rule, GT-known Loc %)``; theta and percentile are None for a rule.
    """
    i, j = np.unravel_index(int(grid.argmax()), grid.shape)
    theta, percentile, rule, acc = float(thetas[j]), pcts[i], "percentile", float(grid[i, j])
    for r, score in scores.items():
        if score > acc:
            theta, percentile, rule, acc = None, None, r, score
    return theta, percentile, rule, acc
