"""Evaluation on WSOL datasets under either protocol of PROTOCOLS.md, every variant from one forward pass.

Protocols, by name:

* ``rethinking`` (the paper's tables): resize 256 x 256, center crop 224; ground-truth boxes mapped
  into the crop by ``max(int(v * 256 / W - 16), 0)`` and ``min(int(v * 256 / W - 16), 223)``; one
  fixed threshold (theta 0.2 x max for ``cam`` / ``nwc``, 0.35 x 90th percentile for the PaS
  variants); box as in :mod:`camloc.localize`; inclusive IoU. Reports Top-1 / Top-5 Cls,
  GT-known Loc and Top-1 Loc.
* ``wsolevaluation`` (Choe et al.): resize to 224 x 224; score map = min-max normalised bicubic
  CAM (float64); boxes at ``t = int(tau * max(U))`` for ``tau`` in ``arange(0, 1, interval)``
  (PaS variants: ``tau * percentile_90(U)``, camloc's extension); ground truth ``int(v * 224 / W)``.
  Reports MaxBoxAcc (delta 50, largest contour), MaxBoxAccV2 (mean over 30/50/70, all contours)
  and, with masks, PxAP.

Variants: ``cam`` (neither fix), ``nwc``, ``pas``, ``nwc+pas``. The two protocols are never mixed:
a result names its protocol and settings.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from .atomic import atomic_write
from .boxacc import all_contour_table, iou_matrix, largest_contour_table, threshold_levels, thresholds_list
from .errors import ImageError, UsageError
from .extractor import CAMExtractor
from .imaging import Preprocess, load_image, preprocess_for
from .localize import Standard, contour_boxes, foreground, minmax, upsample
from .metadata import Sample
from .metrics import FixedThreshold, MaxBoxAcc, PxAP

VARIANTS = {"cam": (False, False), "nwc": (True, False), "pas": (False, True), "nwc+pas": (True, True)}
PROTOCOLS = ("rethinking", "wsolevaluation")
SIZE = 224


@dataclass(frozen=True)
class Settings:
    """Everything that makes a number: recorded in every result."""

    protocol: str = "rethinking"
    variants: tuple[str, ...] = ("cam", "nwc", "pas", "nwc+pas")
    cam_class: str = "gt"
    theta_max: float = 0.2
    theta_pas: float = 0.35
    percentile: float = 90.0
    interval: float = 0.001
    deltas_v2: tuple[int, ...] = (30, 50, 70)
    calibration: Optional[dict] = None

    def __post_init__(self) -> None:
        if "calibrated" in self.variants and self.calibration is None:
            raise UsageError("the calibrated variant needs a calibration file (--calibration)")
        if self.protocol not in PROTOCOLS:
            raise UsageError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}")
        unknown = [v for v in self.variants if v not in VARIANTS and v != "calibrated"]
        if unknown or not self.variants:
            raise UsageError(f"unknown variant {unknown[0] if unknown else '(none)'}: choose from {', '.join(VARIANTS)}")
        if self.cam_class not in ("gt", "top1"):
            raise UsageError("cam_class must be 'gt' or 'top1'")
        if not 0 < self.interval < 1:
            raise UsageError("interval must be in (0, 1)")

    def nwc(self, variant: str) -> bool:
        return bool(self.calibration["nwc"]) if variant == "calibrated" else VARIANTS[variant][0]

    def standard(self, variant: str) -> Standard:
        """The fixed threshold of a variant under the rethinking protocol."""
        if variant == "calibrated":
            return Standard(self.calibration["theta"], self.calibration["percentile"])
        pas = VARIANTS[variant][1]
        return Standard(self.theta_pas, self.percentile) if pas else Standard(self.theta_max, 100.0)

    def sweep_percentile(self, variant: str) -> float:
        """The standard the wsolevaluation sweep multiplies tau by: the max (100) or a percentile."""
        if variant == "calibrated":
            return float(self.calibration["percentile"])
        return self.percentile if VARIANTS[variant][1] else 100.0


def protocol_preprocess(protocol: str, model: nn.Module) -> Preprocess:
    """The test transform of a protocol, with the model's own mean and std."""
    own = preprocess_for(model)
    if protocol == "rethinking":
        return Preprocess((SIZE, SIZE), "crop", (256, 256), own.mean, own.std, "bilinear")
    return Preprocess((SIZE, SIZE), "resize", None, own.mean, own.std, "bilinear")


def gt_boxes(sample: Sample, protocol: str) -> np.ndarray:
    """Ground-truth boxes on the 224 x 224 input, by the protocol's own integer rules."""
    w, h = sample.width, sample.height
    out = []
    for x0, y0, x1, y1 in sample.boxes:
        if protocol == "rethinking":
            out.append((max(int(x0 * 256 / w - 16), 0), max(int(y0 * 256 / h - 16), 0),
                        min(int(x1 * 256 / w - 16), SIZE - 1), min(int(y1 * 256 / h - 16), SIZE - 1)))
        else:
            out.append((int(x0 * SIZE / w), int(y0 * SIZE / h), int(x1 * SIZE / w), int(y1 * SIZE / h)))
    return np.asarray(out, np.int64).reshape(-1, 4)


def load_masks(sample: Sample, root: Path) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Union of the instance masks and the ignore mask, nearest-resized to 224 x 224, value > 0.5."""

    def read(rel: str) -> np.ndarray:
        path = root / rel
        if not path.is_file():
            raise ImageError(path, "mask file not found; check --masks ROOT")
        arr = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        return cv2.resize(arr, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST) > 0.5

    fg = np.zeros((SIZE, SIZE), bool)
    for rel in sample.masks:
        fg |= read(rel)
    ignore = None
    for rel in sample.ignore:
        ignore = read(rel) if ignore is None else ignore | read(rel)
    return fg, ignore


def load_batch(pre: Preprocess, images: Path, chunk: Sequence[Sample], device: torch.device) -> torch.Tensor:
    """The preprocessed images of a chunk of samples, stacked on ``device``."""
    return torch.stack([pre(load_image(images / s.image_id))[0] for s in chunk]).to(device)


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
            v2 = self.v2.compute()
            out["maxboxacc"] = self.v1.compute()["mean"]
            out["maxboxacc_v2"] = v2["mean"]
            out["maxboxacc_v2_per_delta"] = v2["per_delta"]
            out["maxboxacc_tau"] = self.v1.compute()["per_delta"][50]["tau"]
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
        samples: the split, from :func:`camloc.metadata.read_dataset`.
        images: the image root the sample ids are relative to.
        settings: protocol, variants and thresholds.
        masks: the mask root (default: the image root), for PxAP.
        batch_size: images per forward pass.
        save_maps: write wsolevaluation score maps to ``<save_maps>/<variant>/<image_id>.npy``.
        progress: show a progress bar on stderr.
    """
    from tqdm import tqdm

    images, masks_root = Path(images), Path(masks) if masks else Path(images)
    pre = protocol_preprocess(settings.protocol, model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    extractor = CAMExtractor(model)
    nwcs = tuple(sorted({settings.nwc(v) for v in settings.variants}))
    has_boxes = any(s.boxes for s in samples)
    has_masks = any(s.masks for s in samples)
    wsol = settings.protocol == "wsolevaluation"
    if not wsol and not has_boxes:
        raise UsageError("the rethinking protocol needs boxes; this split has masks only: use --protocol wsolevaluation")
    known = settings.cam_class == "gt"
    fixed = {v: FixedThreshold() for v in settings.variants}  # rethinking: per variant
    cls_hits = np.zeros(2, np.int64)  # wsolevaluation: Top-1 and Top-5 Cls, the same for every variant
    scorers = {v: WsolScorer(settings, has_boxes, has_masks) for v in settings.variants} if wsol else {}
    num_classes = None
    bar = tqdm(total=len(samples), disable=not progress, unit="img", desc=f"evaluate ({settings.protocol})")
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        x = load_batch(pre, images, chunk, device)
        labels = torch.tensor([s.label for s in chunk])
        if num_classes is None:
            num_classes = check_labels(extractor, x[:1], samples, settings.cam_class)
        outs = extractor.variants(x, classes=labels if known else None, nwcs=nwcs)
        top5 = outs[nwcs[0]].logits.cpu().topk(min(5, num_classes), dim=1).indices
        top1_ok = (top5[:, 0] == labels).tolist()
        top5_ok = (top5 == labels[:, None]).any(dim=1).tolist()
        if wsol:
            cls_hits += (sum(top1_ok), sum(top5_ok))
            masks_of = [load_masks(s, masks_root) if s.masks else None for s in chunk]
            normalised = {nwc: minmax(upsample(outs[nwc].maps[:, 0], (SIZE, SIZE))).cpu().numpy() for nwc in nwcs}
        for variant in settings.variants:
            if wsol:
                maps = normalised[settings.nwc(variant)]
                for i, s in enumerate(chunk):
                    scorers[variant].add(maps[i], s, settings.sweep_percentile(variant), masks_of[i])
                    if save_maps:
                        atomic_write(Path(save_maps) / variant / f"{s.image_id}.npy",
                                     lambda fh, m=maps[i]: np.save(fh, m))
            else:
                _, fg = foreground(outs[settings.nwc(variant)].maps[:, 0], (SIZE, SIZE), settings.standard(variant))
                for i, (s, mask) in enumerate(zip(chunk, fg.cpu().numpy(), strict=True)):
                    box, _ = contour_boxes(mask)
                    best = float(iou_matrix([box], gt_boxes(s, "rethinking")).max())
                    fixed[variant].add(best, top1_ok[i] if known else None, top5_ok[i] if known else None)
        bar.update(len(chunk))
    bar.close()
    metrics: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, Any]] = {}
    for variant in settings.variants:
        if wsol:
            row = {"top1_cls": 100.0 * cls_hits[0] / len(samples), "top5_cls": 100.0 * cls_hits[1] / len(samples)} \
                if known else {}
            row.update(scorers[variant].compute())
            curves[variant] = scorers[variant].curves()
        else:
            row = fixed[variant].compute()
        metrics[variant] = row
    dataset = {"images": str(images), "n": len(samples), "boxes": has_boxes, "masks": has_masks}
    return EvaluationResult(settings, dataset, metrics, curves)


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
