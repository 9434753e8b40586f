r"""How good a run's boxes are as labels for training a detector: precision and recall at IoU 0.5.

``camloc localize IMAGES --metadata META`` scores the boxes it wrote (its *detections*, each with the
score of its class) against the true boxes of a metadata folder (docs/protocols.md, "Pseudo-box quality"):

* Per image, detections are taken in descending score; each is a true positive when its IoU with a
  true box not yet matched is at least 0.5 (the unmatched box of highest IoU is matched), else a false
  positive. IoU is COCO's: continuous coordinates, a box ``[x0, y0, x1, y1]`` of area
  ``(x1 - x0)(y1 - y0)`` (:func:`camloc.eval.boxacc.iou_matrix` with ``inclusive=False``).
* Keeping the detections of score :math:`\ge t`:
  :math:`P(t) = TP(t) / D(t)` and :math:`R(t) = TP(t) / G`, with :math:`D(t)` the detections kept and
  :math:`G` the true boxes of the images the run covered. A detection's match depends only on the
  detections of higher score in its image, so one matching gives the whole curve.
* AP50 is COCO's 101-point interpolated average precision of that curve: the precision envelope
  :math:`\hat P(r) = \max_{r' \ge r} P(r')` averaged at :math:`r = 0, 0.01, \dots, 1` (0 past the
  largest recall), the value pycocotools' ``COCOeval`` gives at IoU 0.5 with ``useCats=0`` where no
  image has more than 100 detections.
* *any class* matches every detection with every true box of its image; *own class* only with the
  image's class in ``class_labels.txt`` (meaningful where the metadata numbers classes as the model does).

Images the metadata does not list are left out (and counted); an image of the metadata is found by the
end of the run's path (``.../images/a.jpg`` is the image ``images/a.jpg`` of the folder).

Example:
    >>> from camloc.eval.pseudoboxes import Detections
    >>> d = Detections.match([("a.jpg", 0.9, 0, (0, 0, 10, 10)), ("a.jpg", 0.4, 0, (50, 50, 60, 60))],
    ...                      {"a.jpg": ((0, 0, 10, 10), (20, 20, 30, 30))})
    >>> d.hits.tolist(), d.objects
    ([True, False], 2)
    >>> d.at(0.5)          # (boxes kept, precision, recall) at score >= 0.5
    (1, 1.0, 0.5)
    >>> round(d.ap50(), 4)  # recall 0.5 at precision 1, never more
    0.505
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np

from ..data.metadata import Sample, read_dataset
from ..utils.errors import UsageError
from .boxacc import iou_matrix

#: The IoU a detection needs with a true box to count.
IOU = 0.5
#: The report's table: the score thresholds that keep these shares of the boxes.
TABLE_SHARES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
#: One box a detection: ``(image, score, class, (x0, y0, x1, y1))``.
Detection = tuple[str, float, int, Sequence[float]]


def match_image(boxes: np.ndarray, truth: np.ndarray, iou: float = IOU) -> np.ndarray:
    """Which of an image's detections (N x 4, in descending score) match a true box (G x 4): N booleans.

    Each detection in turn takes the unmatched true box of highest IoU, where that IoU is at least ``iou``.

    Example:
        >>> match_image(np.array([[0, 0, 10, 10], [1, 0, 10, 10]]), np.array([[0, 0, 10, 10]])).tolist()
        [True, False]
    """
    hits = np.zeros(len(boxes), dtype=bool)
    if not len(boxes) or not len(truth):
        return hits
    ious = iou_matrix(boxes, truth, inclusive=False)
    free = np.ones(len(truth), dtype=bool)
    for i in range(len(boxes)):
        candidates = np.where(free & (ious[i] >= iou), ious[i], -1.0)
        j = int(candidates.argmax())
        if candidates[j] >= 0:
            hits[i], free[j] = True, False
    return hits


@dataclass(frozen=True)
class Detections:
    """A run's detections matched against true boxes: each one's score and whether it hit, in descending score.

    Attributes:
        scores: the detections' scores, descending.
        hits: whether each matched a true box at IoU :data:`IOU`.
        objects: the true boxes of the images the run covered (:math:`G`).
    """

    scores: np.ndarray
    hits: np.ndarray
    objects: int

    @classmethod
    def match(cls, detections: Iterable[Detection], truth: Mapping[Any, Sequence[Sequence[float]]],
              by_class: bool = False, iou: float = IOU) -> Detections:
        """Match ``detections`` with ``truth``: the true boxes of every image the run covered.

        ``truth`` is keyed by image, or with ``by_class`` by ``(image, class)``: a detection then meets only the
        true boxes of its own class (none: a false positive).
        """
        groups: dict[Any, list[tuple[float, Sequence[float]]]] = {}
        for image, score, c, box in detections:
            groups.setdefault((image, c) if by_class else image, []).append((score, box))
        scores, hits = [], []
        for key, found in groups.items():
            order = sorted(range(len(found)), key=lambda k: -found[k][0])  # stable: ties keep the run's order
            boxes = np.array([found[k][1] for k in order], dtype=np.float64).reshape(-1, 4)
            true = np.array(truth.get(key, ()), dtype=np.float64).reshape(-1, 4)
            scores += [found[k][0] for k in order]
            hits += match_image(boxes, true, iou).tolist()
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        return cls(np.asarray(scores, dtype=np.float64)[order], np.asarray(hits, dtype=bool)[order],
                   sum(len(b) for b in truth.values()))

    def at(self, threshold: float) -> tuple[int, float, float]:
        """``(detections kept, precision, recall)`` keeping the scores of at least ``threshold``.

        The precision of no detection is 1 (nothing wrong was said); a run over images without true boxes
        has recall 0.
        """
        kept = int((self.scores >= threshold).sum())
        tp = int(self.hits[:kept].sum())
        return kept, tp / kept if kept else 1.0, tp / self.objects if self.objects else 0.0

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(scores, precision, recall)`` after each detection, in descending score."""
        tp = np.cumsum(self.hits)
        n = np.arange(1, len(self.hits) + 1)
        return self.scores, tp / n, tp / max(self.objects, 1)

    def ap50(self) -> float:
        """COCO's 101-point interpolated average precision of :meth:`curve` (see the module's docstring)."""
        _, precision, recall = self.curve()
        if not len(precision):
            return 0.0
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        at = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
        return float(np.where(at < len(envelope), envelope[np.minimum(at, len(envelope) - 1)], 0.0).mean())

    def best_f1(self) -> tuple[float, float, float, float]:
        """``(score threshold, precision, recall, F1)`` of the threshold with the highest F1 (the lowest of ties).

        Thresholds between two scores keep the same boxes, so each detection's score is tried; with no
        detection, ``(1.0, 1.0, 0.0, 0.0)``.
        """
        scores, precision, recall = self.curve()
        if not len(scores):
            return 1.0, 1.0, 0.0, 0.0
        last = np.r_[scores[1:] != scores[:-1], True]  # a threshold keeps every detection of equal score
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
        f1 = np.where(last, f1, -1.0)
        i = int(np.flatnonzero(f1 == f1.max())[-1])
        return float(scores[i]), float(precision[i]), float(recall[i]), float(f1[i])

    def table_scores(self) -> list[float]:
        """The score thresholds that keep each share of :data:`TABLE_SHARES` of the boxes (no repeats), descending.

        Scores spread as the model's do (softmax scores over [0, 1], sigmoid scores of a single-label model
        near 1), so the table's rows are shares of the boxes, each with its threshold.

        Example:
            >>> Detections(np.array([0.9, 0.8, 0.7, 0.6]), np.zeros(4, bool), 4).table_scores()
            [0.6, 0.7, 0.8, 0.9]
        """
        n = len(self.scores)
        picked = {float(self.scores[max(int(np.ceil(q * n)) - 1, 0)]) for q in TABLE_SHARES} if n else set()
        return sorted(picked)

    def summary(self) -> dict[str, Any]:
        """AP50, the best F1 and the table of :meth:`table_scores`, ready for JSON."""
        t, p, r, f1 = self.best_f1()
        return {"ap50": round(self.ap50(), 6), "detections": len(self.scores), "true_boxes": self.objects,
                "best_f1": {"score_threshold": t, "precision": round(p, 6), "recall": round(r, 6), "f1": round(f1, 6)},
                "by_score": [{"score_threshold": s, "boxes": k, "precision": round(p, 6), "recall": round(r, 6)}
                             for s in self.table_scores() for k, p, r in [self.at(s)]]}


@dataclass(frozen=True)
class PseudoBoxQuality:
    """Precision and recall of a run's boxes against a metadata folder's true boxes.

    Attributes:
        metadata: the folder.
        images: the run's images found in it (their true boxes are :math:`G`).
        not_listed: the run's images it does not list (left out).
        any_class: every detection against every true box of its image.
        own_class: a detection only against the true boxes of its class (the image's class).
    """

    metadata: str
    images: int
    not_listed: list[str]
    any_class: Detections
    own_class: Detections

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON (what ``pseudo_boxes.json`` holds)."""
        return {"metadata": self.metadata, "iou": IOU, "images": self.images, "not_listed": len(self.not_listed),
                "any_class": self.any_class.summary(), "own_class": self.own_class.summary()}

    def lines(self) -> list[str]:
        """The report in words: AP50 and the best F1 per matching, then precision and recall by score threshold."""
        out = [f"boxes against the true boxes of {self.metadata} (IoU >= {IOU}): {self.images} images, "
               f"{self.any_class.objects} true boxes, {len(self.any_class.scores)} boxes"
               + (f"; {len(self.not_listed)} images it does not list left out" if self.not_listed else "")]
        for name, d in (("any class", self.any_class), ("own class", self.own_class)):
            t, p, r, f1 = d.best_f1()
            out.append(f"  {name:<9}  AP50 {100 * d.ap50():5.1f}  best F1 {f1:.3f} at score >= {t:.4g} "
                       f"(precision {100 * p:.1f}%, recall {100 * r:.1f}%)")
        out.append("  score >=    boxes   any class: precision  recall   own class: precision  recall")
        for s in self.any_class.table_scores():
            (k, p, r), (_, p2, r2) = self.any_class.at(s), self.own_class.at(s)
            out.append(f"  {s:<9.4g}  {k:6d}  {100 * p:20.1f}%  {100 * r:6.1f}%  {100 * p2:20.1f}%  {100 * r2:6.1f}%")
        return out


def true_boxes(metadata: str | os.PathLike) -> list[Sample]:
    """The samples of a metadata folder with true boxes; one line when it has none (masks only, or no localization).

    Raises:
        UsageError: the folder has no boxes.
        camloc.data.metadata.MetadataError: a file of it is missing or malformed (one line naming it).
    """
    samples = read_dataset(metadata)
    if not any(s.boxes for s in samples):
        raise UsageError(f"--metadata {metadata}: its localization.txt holds no boxes (masks or nothing); give a "
                         "folder with boxes IMAGE_ID,X0,Y0,X1,Y1")
    return samples


def find_sample(path: str, by_id: Mapping[str, Sample]) -> Sample | None:
    """The sample whose image id is the longest end of ``path`` (``/data/images/a.jpg`` is ``images/a.jpg``).

    Example:
        >>> s = Sample("images/a.jpg", 3, 10, 10)
        >>> find_sample("/data/coco/images/a.jpg", {"images/a.jpg": s}) is s, find_sample("b.jpg", {"a.jpg": s})
        (True, None)
    """
    parts = PurePath(path).parts
    for k in range(len(parts), 0, -1):
        found = by_id.get("/".join(parts[-k:]))
        if found is not None:
            return found
    return None


def pseudo_box_quality(records: Iterable[dict], samples: Sequence[Sample], metadata: str) -> PseudoBoxQuality:
    """Score a run's records (``camloc localize`` rows; errors left out) against ``samples``' true boxes."""
    by_id = {s.image_id: s for s in samples}
    covered: dict[str, Sample] = {}
    not_listed: list[str] = []
    detections: list[Detection] = []
    for d in records:
        if "error" in d:
            continue
        sample = find_sample(d["image"], by_id)
        if sample is None:
            if d["image"] not in not_listed:
                not_listed.append(d["image"])
            continue
        covered[d["image"]] = sample
        if d.get("class") is not None:
            detections += [(d["image"], float(d["score"]), int(d["class"]), b) for b in d.get("boxes", ())]
    any_class = Detections.match(detections, {image: s.boxes for image, s in covered.items()})
    own_class = Detections.match(detections, {(image, s.label): s.boxes for image, s in covered.items()}, True)
    return PseudoBoxQuality(str(metadata), len(covered), not_listed, any_class, own_class)
