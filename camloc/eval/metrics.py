"""Accumulators for the WSOL metrics (docs/protocols.md, "The rethinking protocol", "The wsolevaluation protocol").

* :class:`FixedThreshold`: Top-1 / Top-5 Cls, GT-known Loc and Top-1 Loc at one threshold
  (the rethinking protocol);
* :class:`MaxBoxAcc`: the share of images whose best box reaches IoU >= delta at each tau, and
  its maximum over tau, per delta (V1: delta 50, largest contour; V2: mean over 30/50/70, all
  contours);
* :class:`PxAP`: one dataset-level precision-recall curve of score-map pixels against masks.

Every number is a percentage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FixedThreshold:
    """Counts for Top-1 / Top-5 Cls, GT-known Loc and Top-1 Loc."""

    n: int = 0
    top1: int = 0
    top5: int = 0
    gt_known: int = 0
    top1_loc: int = 0
    with_labels: bool = True

    def add(self, best_iou: float, top1_correct: bool | None, top5_correct: bool | None) -> None:
        """One image: its best IoU with the ground truth and whether the top-1 / top-5 are right."""
        self.n += 1
        loc = best_iou >= 0.5
        self.gt_known += loc
        if top1_correct is None:
            self.with_labels = False
            return
        self.top1 += bool(top1_correct)
        self.top5 += bool(top5_correct)
        self.top1_loc += bool(loc and top1_correct)

    def compute(self) -> dict[str, float | None]:
        """The four accuracies so far in percent (NaN before any image); Cls and Top-1 Loc are None without labels."""
        pct = lambda k: 100.0 * k / self.n if self.n else float("nan")  # noqa: E731
        return {
            "top1_cls": pct(self.top1) if self.with_labels else None,
            "top5_cls": pct(self.top5) if self.with_labels else None,
            "gt_known_loc": pct(self.gt_known),
            "top1_loc": pct(self.top1_loc) if self.with_labels else None,
        }


@dataclass
class MaxBoxAcc:
    """Accuracy-vs-threshold counts for several IoU thresholds (deltas, in percent)."""

    taus: np.ndarray
    deltas: Sequence[int]
    correct: np.ndarray = field(init=False)
    n: int = 0

    def __post_init__(self) -> None:
        self.correct = np.zeros((len(self.deltas), len(self.taus)), np.int64)

    def add(self, hits: np.ndarray) -> None:
        """One image's T x D hits (tau by delta)."""
        self.correct += hits.T
        self.n += 1

    def curves(self) -> np.ndarray:
        """D x T accuracy (%) per delta and tau."""
        return 100.0 * self.correct / max(self.n, 1)

    def compute(self) -> dict:
        """Per delta the best accuracy and the tau reaching it; their mean is MaxBoxAccV2."""
        curves = self.curves()
        best = curves.max(axis=1)
        return {
            "per_delta": {int(d): {"acc": float(best[i]), "tau": float(self.taus[int(curves[i].argmax())])}
                          for i, d in enumerate(self.deltas)},
            "mean": float(best.mean()),
        }


@dataclass
class PxAP:
    """Pixel average precision: histograms of score-map values over foreground and background pixels."""

    taus: np.ndarray
    fg: np.ndarray = field(init=False)
    bg: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.edges = np.append(self.taus, [1.0, 2.0, 3.0])
        self.fg = np.zeros(len(self.edges) - 1, np.int64)
        self.bg = np.zeros(len(self.edges) - 1, np.int64)

    def add(self, scoremap: np.ndarray, mask: np.ndarray, ignore: np.ndarray | None = None) -> None:
        """One image: score map in [0, 1], boolean foreground mask, optional boolean ignore mask.

        Ignored pixels (``ignore AND NOT foreground``) count as neither foreground nor background.
        """
        background = ~mask if ignore is None else ~mask & ~(ignore & ~mask)
        self.fg += np.histogram(scoremap[mask], bins=self.edges)[0]
        self.bg += np.histogram(scoremap[background], bins=self.edges)[0]

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Precision and recall at each threshold, from the highest threshold down."""
        tp = np.cumsum(self.fg[::-1])
        fp = np.cumsum(self.bg[::-1])
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / (tp + fp)
            recall = tp / max(int(self.fg.sum()), 1)
        return precision, recall

    def compute(self) -> float:
        """``100 * sum_k P_k (R_k - R_(k-1))`` over thresholds with TP + FP > 0."""
        precision, recall = self.curve()
        terms = precision[1:] * np.diff(recall)
        return float(100.0 * terms[~np.isnan(terms)].sum())
