"""Evaluation on WSOL datasets under either protocol (:mod:`camloc.eval.protocols`), every variant
from one forward pass.

Example:
    >>> samples = read_dataset("data/cub-test")
    >>> result = evaluate(model, samples, "data/cub-test", Settings("wsolevaluation"))
    >>> result.metrics["nwc+pas"]["maxboxacc_v2"]
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write
from ..cam.boxes import contour_boxes, foreground, minmax, upsample
from ..cam.extractor import CAMExtractor, CAMOutput
from ..data.dataset import ImageDataset
from ..data.imaging import Preprocess
from ..data.metadata import Sample
from ..data.transforms import SIZE
from ..device import device_of
from ..errors import ImageError, UsageError
from .boxacc import all_contour_table, iou_matrix, largest_contour_table, threshold_levels, thresholds_list
from .metrics import FixedThreshold, MaxBoxAcc, PxAP
from .protocols import Settings, gt_boxes, load_masks, protocol_preprocess


def sample_batches(samples: Sequence[Sample], images: Path, pre: Preprocess, batch_size: int,
                   device: torch.device) -> Iterator[tuple[Sequence[Sample], torch.Tensor, torch.Tensor]]:
    """``(chunk, x, labels)`` per batch of a split: images through camloc's one Dataset, on ``device``."""
    data = ImageDataset([images / s.image_id for s in samples], pre, [s.label for s in samples])
    for start in range(0, len(samples), batch_size):
        stop = min(start + batch_size, len(samples))
        batch = ImageDataset.collate([data[i] for i in range(start, stop)])
        yield samples[start:stop], batch.images.to(device), batch.labels


class WsolScorer:
    """MaxBoxAcc, MaxBoxAccV2 and PxAP of score maps (shared by ``evaluate`` and ``score``)."""

    def __init__(self, settings: Settings, boxes: bool, masks: bool) -> None:
        self.settings = settings
        self.taus = thresholds_list(settings.interval)
        self.v1 = MaxBoxAcc(self.taus, (50,)) if boxes else None
        self.v2 = MaxBoxAcc(self.taus, settings.deltas_v2) if boxes else None
        self.pxap = PxAP(self.taus) if masks else None

    def add(self, scoremap: np.ndarray, sample: Sample, percentile: float = 100.0,
            masks: Optional[tuple[np.ndarray, Optional[np.ndarray]]] = None) -> None:
        """One image's float score map in [0, 1] (224 x 224), swept at ``tau x percentile(U)``."""
        if self.v2 is not None:
            u8 = (scoremap * 255).astype(np.uint8)
            gt = gt_boxes(sample, "wsolevaluation")
            levels = threshold_levels(u8, self.taus, percentile)
            self.v2.add(all_contour_table(u8, gt, self.settings.deltas_v2, parallel=True)[levels])
            self.v1.add(largest_contour_table(u8, gt, (50,), levels)[levels])
        if self.pxap is not None and masks is not None:
            self.pxap.add(scoremap, *masks)

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.v2 is not None:
            v1, v2 = self.v1.compute(), self.v2.compute()
            out["maxboxacc"] = v1["mean"]
            out["maxboxacc_v2"] = v2["mean"]
            out["maxboxacc_v2_per_delta"] = v2["per_delta"]
            out["maxboxacc_tau"] = v1["per_delta"][50]["tau"]
        if self.pxap is not None:
            out["pxap"] = self.pxap.compute()
        return out

    def curves(self) -> dict[str, Any]:
        out: dict[str, Any] = {"taus": self.taus}
        if self.v2 is not None:
            out["maxboxacc"] = {50: self.v1.curves()[0]}
            out["maxboxacc_v2"] = dict(zip(self.settings.deltas_v2, self.v2.curves(), strict=True))
        if self.pxap is not None:
            out["precision"], out["recall"] = self.pxap.curve()
        return out


@dataclass
class EvaluationResult:
    """Metrics per variant, with the protocol and settings that made them, and the curves."""

    settings: Settings
    dataset: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, Any]] = field(repr=False, default_factory=dict)

    def to_dict(self, with_curves: bool = False) -> dict[str, Any]:
        d = {"protocol": self.settings.protocol, "settings": asdict(self.settings), "dataset": self.dataset,
             "variants": self.metrics}
        if with_curves:
            d["curves"] = _jsonable(self.curves)
        return d


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [None if np.isnan(v) else float(v) for v in obj.ravel()]
    return obj


def rethinking_hits(maps: torch.Tensor, chunk: Sequence[Sample], standard) -> list[float]:
    """Best IoU per image of the one box the rethinking protocol draws (the rule of :mod:`camloc.cam.boxes`)."""
    _, fg = foreground(maps, (SIZE, SIZE), standard)
    out = []
    for sample, mask in zip(chunk, fg.cpu().numpy(), strict=True):
        box, _ = contour_boxes(mask)
        out.append(float(iou_matrix([box], gt_boxes(sample, "rethinking")).max()))
    return out


class _Run:
    """The accumulators of one evaluation: fixed thresholds (rethinking) or sweeps (wsolevaluation)."""

    def __init__(self, settings: Settings, samples: Sequence[Sample], masks_root: Path,
                 save_maps: Optional[str | os.PathLike]) -> None:
        self.settings, self.masks_root, self.save_maps = settings, masks_root, save_maps
        self.wsol = settings.protocol == "wsolevaluation"
        self.known = settings.cam_class == "gt"
        has_boxes, has_masks = any(s.boxes for s in samples), any(s.masks for s in samples)
        if not self.wsol and not has_boxes:
            raise UsageError("the rethinking protocol needs boxes; this split has masks only: use --protocol wsolevaluation")
        self.dataset = {"n": len(samples), "boxes": has_boxes, "masks": has_masks}
        self.fixed = {v: FixedThreshold() for v in settings.variants}
        self.scorers = {v: WsolScorer(settings, has_boxes, has_masks) for v in settings.variants} if self.wsol else {}
        self.cls_hits = np.zeros(2, np.int64)  # Top-1 and Top-5 Cls (wsolevaluation: the same for every variant)

    def add(self, chunk: Sequence[Sample], labels: torch.Tensor, outs: dict[bool, CAMOutput], num_classes: int) -> None:
        first = next(iter(outs.values()))
        top5 = first.logits.cpu().topk(min(5, num_classes), dim=1).indices
        top1_ok = (top5[:, 0] == labels).tolist()
        top5_ok = (top5 == labels[:, None]).any(dim=1).tolist()
        self.cls_hits += (sum(top1_ok), sum(top5_ok))
        if self.wsol:
            self._add_sweeps(chunk, outs)
            return
        for variant in self.settings.variants:
            ious = rethinking_hits(outs[self.settings.nwc(variant)].maps[:, 0], chunk, self.settings.standard(variant))
            for i, best in enumerate(ious):
                self.fixed[variant].add(best, top1_ok[i] if self.known else None, top5_ok[i] if self.known else None)

    def _add_sweeps(self, chunk: Sequence[Sample], outs: dict[bool, CAMOutput]) -> None:
        masks_of = [load_masks(s, self.masks_root) if s.masks else None for s in chunk]
        normalised = {nwc: minmax(upsample(out.maps[:, 0], (SIZE, SIZE))).cpu().numpy() for nwc, out in outs.items()}
        for variant in self.settings.variants:
            maps = normalised[self.settings.nwc(variant)]
            for i, s in enumerate(chunk):
                self.scorers[variant].add(maps[i], s, self.settings.sweep_percentile(variant), masks_of[i])
                if self.save_maps:
                    atomic_write(Path(self.save_maps) / variant / f"{s.image_id}.npy", lambda fh, m=maps[i]: np.save(fh, m))

    def result(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        metrics, curves = {}, {}
        n = self.dataset["n"]
        for variant in self.settings.variants:
            if not self.wsol:
                metrics[variant] = self.fixed[variant].compute()
                continue
            row = {"top1_cls": float(100.0 * self.cls_hits[0] / n), "top5_cls": float(100.0 * self.cls_hits[1] / n)} if self.known else {}
            row.update(self.scorers[variant].compute())
            metrics[variant] = row
            curves[variant] = self.scorers[variant].curves()
        return metrics, curves


def evaluate(
    model: nn.Module,
    samples: Sequence[Sample],
    images: str | os.PathLike,
    settings: Settings = Settings(),
    masks: Optional[str | os.PathLike] = None,
    batch_size: int = 32,
    save_maps: Optional[str | os.PathLike] = None,
    progress: bool = True,
) -> EvaluationResult:
    """Run ``model`` once per image of a split and score every variant.

    Args:
        model: any classifier camloc's extractor supports (its device is used as it is).
        samples: the split, from :func:`camloc.data.metadata.read_dataset`.
        images: the image root the sample ids are relative to.
        settings: protocol, variants and thresholds.
        masks: the mask root (default: the image root), for PxAP.
        batch_size: images per forward pass.
        save_maps: write wsolevaluation score maps to ``<save_maps>/<variant>/<image_id>.npy``.
        progress: show a progress bar on stderr.
    """
    from tqdm import tqdm

    images = Path(images)
    run = _Run(settings, samples, Path(masks) if masks else images, save_maps)
    extractor = CAMExtractor(model)
    nwcs = tuple(sorted({settings.nwc(v) for v in settings.variants}))
    num_classes = None
    bar = tqdm(total=len(samples), disable=not progress, unit="img", desc=f"evaluate ({settings.protocol})")
    pre = protocol_preprocess(settings.protocol, model)
    for chunk, x, labels in sample_batches(samples, images, pre, batch_size, device_of(model)):
        if num_classes is None:
            num_classes = check_labels(extractor, x[:1], samples, settings.cam_class)
        outs = extractor.variants(x, classes=labels if run.known else None, nwcs=nwcs)
        run.add(chunk, labels, outs, num_classes)
        bar.update(len(chunk))
    bar.close()
    metrics, curves = run.result()
    return EvaluationResult(settings, {"images": str(images), **run.dataset}, metrics, curves)


def check_labels(extractor: CAMExtractor, x: torch.Tensor, samples: Sequence[Sample], cam_class: str) -> int:
    """The model's number of classes (one forward pass of ``x``); labels beyond it are an error with 'gt'."""
    with torch.no_grad():
        num_classes = int(extractor.variants(x, nwcs=(False,))[False].logits.shape[1])
    bad = [s for s in samples if not 0 <= s.label < num_classes]
    if cam_class == "gt" and bad:
        raise UsageError(
            f"label {bad[0].label} of {bad[0].image_id} is beyond the model's {num_classes} classes; "
            "use --cam-class top1 when the dataset's labels are not the model's classes"
        )
    return num_classes


def score_maps(
    samples: Sequence[Sample],
    scoremaps: str | os.PathLike,
    settings: Settings,
    masks: Optional[str | os.PathLike] = None,
    progress: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score saved maps (``<scoremaps>/<image_id>.npy``, 224 x 224 in [0, 1]) under wsolevaluation."""
    from tqdm import tqdm

    root, masks_root = Path(scoremaps), Path(masks) if masks else None
    scorer = WsolScorer(settings, any(s.boxes for s in samples), any(s.masks for s in samples))
    for s in tqdm(samples, disable=not progress, unit="map", desc="score"):
        path = root / f"{s.image_id}.npy"
        if not path.is_file():
            raise ImageError(path, "score map not found; every image id needs <scoremaps>/<image_id>.npy")
        try:
            scoremap = np.load(path, allow_pickle=False).astype(np.float64)
        except (ValueError, OSError) as exc:
            raise ImageError(path, f"not a readable .npy array ({exc})") from exc
        if scoremap.shape != (SIZE, SIZE):
            raise ImageError(path, f"has shape {scoremap.shape}; score maps must be {SIZE} x {SIZE}")
        if not np.isfinite(scoremap).all() or scoremap.min() < 0 or scoremap.max() > 1:
            raise ImageError(path, "has values outside [0, 1]; normalise the map first")
        scorer.add(scoremap, s, 100.0, load_masks(s, masks_root) if s.masks and masks_root else None)
    return scorer.compute(), scorer.curves()
