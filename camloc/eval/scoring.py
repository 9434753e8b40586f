"""wsolevaluation's scoring of score maps: MaxBoxAcc, MaxBoxAccV2 and PxAP from one sweep per map.

:class:`WsolScorer` is shared by :func:`camloc.eval.evaluation.evaluate` (maps made in the run) and
:func:`camloc.eval.evaluation.score_maps` (maps saved beforehand, read by :func:`read_scoremap`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data.metadata import Sample, image_size
from ..utils.defaults import SIZE
from ..utils.errors import ImageError, UsageError
from .boxacc import all_contour_table, largest_contour_table, threshold_levels, thresholds_list
from .metrics import MaxBoxAcc, PxAP
from .protocols import Settings, gt_boxes, load_masks
from .result import EvaluationResult, failure, nothing_scored


class WsolScorer:
    """MaxBoxAcc, MaxBoxAccV2 and PxAP of score maps (shared by ``evaluate`` and ``score``).

    Only the metrics of ``settings.metrics`` are computed, each where the split has what it needs
    (boxes for MaxBoxAcc and V2, masks for PxAP).
    """

    def __init__(self, settings: Settings, boxes: bool, masks: bool) -> None:
        self.settings = settings
        self.taus = thresholds_list(settings.interval)
        want = set(settings.metrics)
        self.v1 = MaxBoxAcc(self.taus, (50,)) if boxes and "maxboxacc" in want else None
        self.v2 = MaxBoxAcc(self.taus, settings.deltas_v2) if boxes and "maxboxacc_v2" in want else None
        self.pxap = PxAP(self.taus) if masks and "pxap" in want else None
        # one all-contour sweep serves V2 and V1's short cut: its deltas, and where V1's 50 is among them
        self.deltas = tuple(dict.fromkeys((settings.deltas_v2 if self.v2 else ()) + ((50,) if self.v1 else ())))
        self.col50 = self.deltas.index(50) if self.v1 else None
        self.n_v2 = len(settings.deltas_v2) if self.v2 else 0

    @property
    def active(self) -> bool:
        """Whether any metric applies."""
        return any(m is not None for m in (self.v1, self.v2, self.pxap))

    def add(self, scoremap: np.ndarray, sample: Sample, percentile: float = 100.0,
            masks: tuple[np.ndarray, np.ndarray | None] | None = None, rule: str = "percentile"
            ) -> np.ndarray | None:
        """One image's float score map in [0, 1] (224 x 224), swept at ``tau x percentile(U)``.

        With an automatic ``rule`` it is swept at the rule's threshold for every tau
        (:func:`camloc.eval.boxacc.threshold_levels`).

        Returns:
            The image's hits at IoU 50 for every tau, as its :meth:`operating_point` metric counts
            them (MaxBoxAccV2's all contours, else MaxBoxAcc's largest), or None without box metrics.
        """
        hits = None
        if self.v1 is not None or self.v2 is not None:
            u8 = (scoremap * 255).astype(np.uint8)
            gt = gt_boxes(sample, "wsolevaluation", self.settings.box_convention)
            levels = threshold_levels(u8, self.taus, percentile, rule)
            if self.v1 is None:
                table = all_contour_table(u8, gt, self.deltas, parallel=True)
            else:
                table, counts = all_contour_table(u8, gt, self.deltas, parallel=True, counts=True)
                col = table[:, self.col50:self.col50 + 1]
                hits = largest_contour_table(u8, gt, (50,), levels, shortcut=(col, counts))[levels]
                self.v1.add(hits)
                hits = hits[:, 0]
            if self.v2 is not None:
                self.v2.add(table[:, :self.n_v2][levels])
                if 50 in self.settings.deltas_v2:
                    hits = table[levels, self.settings.deltas_v2.index(50)]
        if self.pxap is not None and masks is not None:
            self.pxap.add(scoremap, *masks)
        return hits

    def operating_point(self) -> tuple[str, float] | None:
        """``(metric, tau)``: the tau of the best box accuracy at IoU 50, from one of the box metrics.

        That is MaxBoxAccV2's (all contours) where it is computed at delta 50, else MaxBoxAcc's
        (largest contour); None without either. An image's box there is what :func:`evaluate`'s
        per-image records call its box.
        """
        if self.v2 is not None and 50 in self.settings.deltas_v2:
            return "maxboxacc_v2", self.v2.compute()["per_delta"][50]["tau"]
        if self.v1 is not None:
            return "maxboxacc", self.v1.compute()["per_delta"][50]["tau"]
        return None

    def add_miss(self, masks: tuple[np.ndarray, np.ndarray | None] | None = None) -> None:
        """An image that could not be scored: a box miss at every threshold.

        Given its masks, it also adds an all-zero score map for PxAP (its foreground counts, found by nothing).
        """
        for acc in (self.v1, self.v2):
            if acc is not None:
                acc.add(np.zeros((len(self.taus), len(acc.deltas)), bool))
        if self.pxap is not None and masks is not None:
            self.pxap.add(np.zeros(masks[0].shape, np.float64), *masks)

    def compute(self) -> dict[str, Any]:
        """The metrics so far, each where it is computed.

        They are ``maxboxacc`` and its ``maxboxacc_tau``, ``maxboxacc_v2`` and its
        ``maxboxacc_v2_per_delta``, ``pxap``.
        """
        out: dict[str, Any] = {}
        if self.v1 is not None:
            v1 = self.v1.compute()
            out["maxboxacc"] = v1["mean"]
            out["maxboxacc_tau"] = v1["per_delta"][50]["tau"]
        if self.v2 is not None:
            v2 = self.v2.compute()
            out["maxboxacc_v2"] = v2["mean"]
            out["maxboxacc_v2_per_delta"] = v2["per_delta"]
        if self.pxap is not None:
            out["pxap"] = self.pxap.compute()
        return out

    def curves(self) -> dict[str, Any]:
        """The curves behind them: ``taus``, box accuracy against tau per delta, precision and recall."""
        out: dict[str, Any] = {"taus": self.taus}
        if self.v1 is not None:
            out["maxboxacc"] = {50: self.v1.curves()[0]}
        if self.v2 is not None:
            out["maxboxacc_v2"] = dict(zip(self.settings.deltas_v2, self.v2.curves(), strict=True))
        if self.pxap is not None:
            out["precision"], out["recall"] = self.pxap.curve()
        return out


def read_scoremap(path: Path) -> np.ndarray:
    """A saved score map (224 x 224, finite, in [0, 1]) as float64.

    Raises:
        ImageError: missing, unreadable, of another shape, or with values outside [0, 1].
    """
    if not path.is_file():
        raise ImageError(path, "score map not found; every image id needs <scoremaps>/<image_id>.npy")
    try:
        scoremap = np.load(path, allow_pickle=False).astype(np.float64)
    except (ValueError, OSError, EOFError) as exc:
        raise ImageError(path, f"not a readable .npy array ({exc})") from exc
    if scoremap.shape != (SIZE, SIZE):
        raise ImageError(path, f"has shape {scoremap.shape}; score maps must be {SIZE} x {SIZE}")
    if not np.isfinite(scoremap).all() or scoremap.min() < 0 or scoremap.max() > 1:
        raise ImageError(path, "has values outside [0, 1]; normalise the map first")
    return scoremap


def masks_or_none(sample: Sample, root: Path | None) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The sample's masks for PxAP, or None (no masks, no mask root, or unreadable)."""
    if not sample.masks or root is None:
        return None
    try:
        return load_masks(sample, root)
    except ImageError:
        return None


def no_metric(metrics: Sequence[str], boxes: bool, masks: bool) -> str:
    """The error message when none of ``metrics`` applies to a split with (or without) boxes and masks."""
    has = ("boxes and masks" if boxes and masks else "boxes only" if boxes else "masks only" if masks
           else "no boxes or masks")
    return (f"none of the metrics asked for ({', '.join(metrics)}) applies to this split, which has {has}: "
            "maxboxacc and maxboxacc_v2 need boxes, pxap needs masks (--metrics)")


def score_maps(
    samples: Sequence[Sample],
    scoremaps: str | os.PathLike,
    settings: Settings,
    masks: str | os.PathLike | None = None,
    images: str | os.PathLike | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Score saved maps (``<scoremaps>/<image_id>.npy``, 224 x 224 in [0, 1]) under wsolevaluation.

    Only ``settings.metrics`` are computed. A map that is missing, unreadable, of another shape or
    outside [0, 1] is listed in ``result.failed`` and scored as a miss, as :func:`evaluate` scores an
    unreadable image. Boxes need the image size: where the metadata has none (an empty
    ``image_sizes.txt``), it is read from the image's header under ``images``.

    Returns:
        An :class:`EvaluationResult` with one variant, ``maps``.

    Raises:
        UsageError: no metric applies to the split, or no map could be scored.
    """
    from tqdm import tqdm

    root, masks_root = Path(scoremaps), Path(masks) if masks else None
    has_boxes, has_masks = any(s.boxes for s in samples), any(s.masks for s in samples) and masks_root is not None
    scorer = WsolScorer(settings, has_boxes, has_masks)
    if not scorer.active:
        raise UsageError(no_metric(settings.metrics, has_boxes, has_masks))
    failed: list[dict[str, str]] = []
    for s in tqdm(samples, disable=not progress, unit="map", desc="score"):
        try:
            scoremap = read_scoremap(root / f"{s.image_id}.npy")
            if s.boxes and (s.width is None or s.height is None):
                if images is None:
                    raise ImageError(s.image_id, "image size unknown (image_sizes.txt is empty) and no image root to "
                                                 "read it from; pass --images ROOT")
                w, h = image_size(Path(images) / s.image_id)
                s = replace(s, width=w, height=h)
            m = load_masks(s, masks_root) if s.masks and masks_root is not None else None
        except ImageError as exc:
            failed.append(failure(s, str(exc)))
            scorer.add_miss(masks_or_none(s, masks_root))
            continue
        scorer.add(scoremap, s, 100.0, m)
    if samples and len(failed) == len(samples):
        raise nothing_scored(len(samples), "score maps", failed[0])
    dataset = {"scoremaps": str(root), "n": len(samples), "boxes": has_boxes, "masks": has_masks, "failed": len(failed)}
    return EvaluationResult(settings, dataset, {"maps": scorer.compute()}, {"maps": scorer.curves()}, failed)
