"""The paper's mechanism, measured: how a GAP or TAP head weighs its feature channels, and where they fire.

"Rethinking CAM" (Bae, Noh, Kim, ECCV 2020, section 3) argues from two observations, which
:func:`diagnose` measures on any model whose CAM is exact and a weighted sum of channels
(``M_k = sum_c w_kc F_c``, a GAP or TAP head), on the class of each image (its ground truth, or the
top-1 prediction), with the model's own preprocessing and on the feature map camloc builds the CAM
from (see docs/protocols.md, "Mechanism statistics"):

* **Fig. 2, the area bias of GAP.** Under GAP a channel that fires over a large area has a large
  mean, so the classifier can give it a small weight; a channel that fires on a small part needs a
  large one. ``area_weight_rho`` is, per image, Spearman's rank correlation over the channels with
  positive class weight between the channel's *active area* ``a_c = |{x : F_c(x) > 0.1 max F_c}| /
  (h w)`` and its weight ``w_kc`` (channels with no positive value on that image are left out),
  averaged over images. The paper's story needs it negative under GAP and nearer zero under TAP.
* **Fig. 3b, negative weights on the object.** The map of the positive-weight channels alone,
  ``P = sum_{w_c > 0} w_c F_c`` (which is the NWC map), and of the negative-weight channels alone,
  ``N = sum_{w_c < 0} |w_c| F_c`` (so that its foreground is where those channels fire), are each
  thresholded at the paper's ``0.2 x max`` (camloc's box rule: upsampled to the input, min-max
  normalised, ``U > int(0.2 max U)``). ``ioa_positive`` and ``ioa_negative`` are the intersection
  over area with the ground-truth boxes, ``|fg and GT| / |GT|`` (the paper names the boxes first, and
  the authors' ``ioa(box1, box2)`` divides by its first argument); ``ioa_positive_by_foreground`` and
  ``ioa_negative_by_foreground`` are the other reading, ``|fg and GT| / |fg|``. A high
  ``ioa_negative`` means channels with negative weight fire on the object and erase it from the CAM,
  which is what NWC undoes.

Beside them: ``negative_weight_share``, the share of the class's head weights that are negative,
and ``box_gt_area_ratio``, the median over images of the predicted box's area over the area of the
ground-truth box it overlaps most, for each of the paper's variants (vanilla ``0.2 x max``, NWC, PaS
``0.35 x p90``, NWC + PaS), so that a change in localization can be told apart as "moved to the
object" (the ratio stays) or "shrank an oversized box" (the ratio falls towards 1).

Ground-truth boxes are mapped onto the network input through the preprocessing and clipped to it
(a pixel belongs to a box when its centre lies inside); an image whose boxes all fall outside the
crop is left out of the IoA and box statistics.

Example:
    >>> import tempfile, torch
    >>> from camloc.data.metadata import read_dataset
    >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
    >>> from camloc.eval.diagnosis import diagnose
    >>> from camloc.models.wsol import build_wsol
    >>> root = tempfile.mkdtemp()                      # a tiny synthetic benchmark, 4 test images
    >>> test = write_synthetic(root, SyntheticSpec(classes=2, train=1, train_fullsup=1, test=4))["test"]
    >>> _ = torch.manual_seed(0)
    >>> d = diagnose(build_wsol("smallcnn", num_classes=2), read_dataset(test), root, progress=False)  # untrained
    >>> s = d.summary
    >>> round(s["area_weight_rho"], 2), round(s["ioa_negative"], 2), round(s["box_gt_area_ratio"]["cam"], 2)
    (-0.04, 0.98, 1.65)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..cam.boxes import above, to_uint8, upsample
from ..cam.extractor import CAMExtractor
from ..cam.heads import HeadSpec
from ..cam.rules import ThresholdRule, contour_boxes
from ..data.imaging import Preprocess
from ..data.metadata import Sample
from ..models.config import model_config, preprocess_for
from ..utils.device import device_of
from ..utils.errors import UsageError
from .batches import sample_batches
from .boxacc import iou_matrix
from .protocols import check_cam_class
from .result import failure, nothing_scored

#: A channel is active where it exceeds this fraction of its own maximum (the Fig. 2 statistic).
ACTIVE_FRACTION = 0.1
#: The foreground of the positive and negative maps: the paper's vanilla threshold, ``0.2 x max``.
IOA_STANDARD = ThresholdRule.max(0.2)
#: The paper's inference variants for the box-size statistic: ``(name, nwc, standard)``.
BOX_VARIANTS = (("cam", False, ThresholdRule.max(0.2)), ("nwc", True, ThresholdRule.max(0.2)),
                ("pas", False, ThresholdRule.pas()), ("nwc+pas", True, ThresholdRule.pas()))
#: The per-image statistics averaged into the summary (NaN where undefined: left out).
MEAN_KEYS = ("area_weight_rho", "ioa_positive", "ioa_negative", "ioa_positive_by_foreground",
             "ioa_negative_by_foreground", "negative_weight_share")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two vectors: the Pearson correlation of their ranks.

    Ties are given their average rank (as ``scipy.stats.spearmanr``); NaN with fewer than 3 values or a constant one.

    Example:
        >>> import numpy as np
        >>> from camloc.eval.diagnosis import spearman
        >>> spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 9.0, 2.0, 1.0]))
        -1.0
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"spearman needs two vectors of one length, got shapes {a.shape} and {b.shape}")
    if a.size < 3:
        return math.nan
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else math.nan


def _ranks(v: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their average rank."""
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], v.size]
    ranks = np.empty(v.size)
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return ranks


def active_area(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each channel's active area and whether it has one: ``(a, valid)``, both B x C.

    ``a_c = mean_x [F_c(x) > 0.1 max_x F_c(x)]``; ``valid`` is False for a channel with no positive
    value (all zero after a ReLU), whose area is undefined.

    Example:
        >>> import torch
        >>> from camloc.eval.diagnosis import active_area
        >>> f = torch.zeros(1, 2, 2, 2); f[0, 0, 0, 0] = 1.0
        >>> active_area(f)
        (tensor([[0.2500, 0.0000]]), tensor([[ True, False]]))
    """
    peak = features.amax(dim=(2, 3))
    area = (features > ACTIVE_FRACTION * peak[..., None, None]).float().mean(dim=(2, 3))
    return area, peak > 0


def truth_region(boxes: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """The union of boxes ``(x0, y0, x1, y1)`` (pixel edges on the network input) as an H x W mask.

    Pixel ``(i, j)`` is inside when its centre ``(j + 0.5, i + 0.5)`` lies in ``[x0, x1) x [y0, y1)``.
    """
    h, w = size
    ys, xs = torch.arange(h).view(-1, 1) + 0.5, torch.arange(w).view(1, -1) + 0.5
    region = torch.zeros(h, w, dtype=torch.bool)
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        region |= (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    return region


def _ratio(num: torch.Tensor, den: torch.Tensor, valid: torch.Tensor) -> list[float]:
    return [float(n) / float(d) if ok and d > 0 else math.nan for n, d, ok in zip(num, den, valid, strict=True)]


def batch_statistics(features: torch.Tensor, weights: torch.Tensor, truth: Sequence[np.ndarray],
                     size: tuple[int, int], box_ratios: bool = True) -> list[dict[str, Any]]:
    """The mechanism statistics of each image of a batch (see the module docs).

    Args:
        features: B x C x h x w feature map the head pools.
        weights: B x C weight of each image's class on each channel.
        truth: per image, its ground-truth boxes on the network input (G x 4, pixel edges, clipped).
        size: ``(H, W)`` of the network input, where maps are thresholded.
        box_ratios: also draw each variant's box (four contour passes per image) for ``box_gt_area_ratio``.

    Returns:
        One dict per image: ``area_weight_rho``, ``channels`` (how many it was computed over),
        ``negative_weight_share``, ``ioa_positive``, ``ioa_negative``, ``ioa_positive_by_foreground``,
        ``ioa_negative_by_foreground`` and (with ``box_ratios``) ``box_gt_area_ratio``, a dict by
        variant; NaN where a value is undefined (fewer than 3 channels, no negative weight, no ground
        truth in view).
    """
    features, weights = features.float(), weights.float().to(features.device)
    if len(truth) != features.shape[0] or weights.shape != features.shape[:2]:
        raise ValueError(f"{features.shape[0]} images, {weights.shape[0]} weight rows and {len(truth)} box lists: give "
                         "one of each per image")
    area, alive = active_area(features)
    maps = {"positive": torch.einsum("bc,bchw->bhw", weights.clamp_min(0), features),
            "negative": torch.einsum("bc,bchw->bhw", (-weights).clamp_min(0), features)}
    if box_ratios:
        maps["cam"] = torch.einsum("bc,bchw->bhw", weights, features)
    # each map to the protocol's uint8 once; every threshold rule reads the same U
    u8 = {name: to_uint8(upsample(m, size)) for name, m in maps.items()}
    region = torch.stack([truth_region(t, size) for t in truth]).to(features.device)
    gt_area = region.flatten(1).sum(1)
    in_view = gt_area > 0
    out = [{} for _ in truth]
    for name in ("positive", "negative"):
        flat = maps[name].flatten(1)
        valid = (flat.amax(1) > flat.amin(1)) & in_view  # a constant map has no foreground
        fg = above(u8[name], IOA_STANDARD)
        inter = (fg & region).flatten(1).sum(1)
        for row, v, v_fg in zip(out, _ratio(inter, gt_area, valid), _ratio(inter, fg.flatten(1).sum(1), valid),
                                strict=True):
            row[f"ioa_{name}"], row[f"ioa_{name}_by_foreground"] = v, v_fg
    ratios = {name: _box_ratios(above(u8["positive" if nwc else "cam"], standard), truth)
              for name, nwc, standard in BOX_VARIANTS} if box_ratios else {}
    for b, row in enumerate(out):
        keep = (weights[b] > 0) & alive[b]
        row["channels"] = int(keep.sum())
        row["area_weight_rho"] = spearman(area[b][keep].cpu().numpy(), weights[b][keep].cpu().numpy())
        row["negative_weight_share"] = float((weights[b] < 0).float().mean())
        if box_ratios:
            row["box_gt_area_ratio"] = {name: r[b] for name, r in ratios.items()}
    return out


def _box_ratios(masks: torch.Tensor, truth: Sequence[np.ndarray]) -> list[float]:
    """Per image, its box's area over the area of the ground-truth box it overlaps most.

    The box is that of the largest contour of the image's mask; the ratio is NaN without a ground-truth box.
    """
    out = []
    for mask, gt in zip(masks.to("cpu", torch.uint8).numpy(), truth, strict=True):
        box, _ = contour_boxes(mask)
        gt = np.asarray(gt, np.float64).reshape(-1, 4)
        areas = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
        if not (areas > 0).any():
            out.append(math.nan)
            continue
        gt, areas = gt[areas > 0], areas[areas > 0]
        best = int(iou_matrix(np.asarray([box], np.float64), gt)[0].argmax())
        out.append((box[2] - box[0]) * (box[3] - box[1]) / float(areas[best]))
    return out


def input_boxes(sample: Sample, pre: Preprocess) -> np.ndarray:
    """A sample's ground-truth boxes on the network input of ``pre`` (G x 4 float, clipped to it)."""
    geometry = pre.geometry(sample.width, sample.height)
    return np.asarray([geometry.box_to_input(b) for b in sample.boxes], np.float64).reshape(-1, 4)


def _nanmean(values: Sequence[float]) -> float | None:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else None


def _nanmedian(values: Sequence[float]) -> float | None:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.median(kept)) if kept else None


@dataclass
class Diagnosis:
    """What :func:`diagnose` found.

    Attributes:
        summary: the statistics over images (``area_weight_rho``, ``ioa_positive``, ``ioa_negative``,
            ``ioa_positive_by_foreground``, ``ioa_negative_by_foreground``, ``negative_weight_share``,
            ``box_gt_area_ratio`` by variant), the counts behind them and the settings.
        images: one record per scored image (its id, class and statistics).
        failed: ``{"image_id", "reason"}`` of each image that could not be read.
        points: ``(area, weight)`` of every positive-weight channel of the first images (Fig. 2).
    """

    summary: dict[str, Any]
    images: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    points: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))

    def to_dict(self, with_images: bool = False) -> dict[str, Any]:
        """The summary (and the failed images) as JSON-ready values; ``with_images`` adds every record."""
        out = {**self.summary, "failed": list(self.failed)}
        if with_images:
            out["images"] = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                             | {"box_gt_area_ratio": {n: (None if math.isnan(x) else x)
                                                      for n, x in r["box_gt_area_ratio"].items()}}
                             for r in self.images]
        return out


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary statistics of per-image records (means of :data:`MEAN_KEYS`, medians of the box ratios)."""
    out: dict[str, Any] = {key: _nanmean([r[key] for r in rows]) for key in MEAN_KEYS}
    out["box_gt_area_ratio"] = {name: _nanmedian([r["box_gt_area_ratio"][name] for r in rows])
                                for name, _, _ in BOX_VARIANTS}
    out["counts"] = {key: sum(not math.isnan(r[key]) for r in rows) for key in MEAN_KEYS}
    return out


def diagnose(model: nn.Module, samples: Sequence[Sample], images: str | Path, *, cam_class: str = "gt",
             batch_size: int = 32, workers: int = 0, progress: bool = True, points_images: int = 64) -> Diagnosis:
    """Measure the paper's mechanism on a labelled split: a :class:`Diagnosis` (see the module docs for each statistic).

    Args:
        model: a classifier whose CAM is exact with one weight per channel (a GAP or TAP head:
            timm and torchvision CNNs, camloc's WSOL and retrofitted models, average-pooled ViTs).
        samples: the split (wsolevaluation metadata, :func:`camloc.data.metadata.read_dataset`).
        images: the root the samples' image paths are relative to.
        cam_class: ``"gt"`` maps each image's label, ``"top1"`` its top-1 prediction (for labels
            that are not the model's classes).
        batch_size: images per forward pass.
        workers: image decoding processes (0: in this process).
        progress: show a progress bar.
        points_images: keep the Fig. 2 points (one per positive-weight channel) of this many images.

    Raises:
        ModelError: the map is not an exact weighted sum of channels (a gradient map, class-token ViT, max-pooled head).
        UsageError: no sample, no image that could be read, or a label out of the model's range.

    Example:
        >>> import tempfile, camloc
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> root = tempfile.mkdtemp()          # 2 test images whose labels are not ImageNet's: map the top-1 class
        >>> test = camloc.read_dataset(write_synthetic(root, SyntheticSpec(train=1, train_fullsup=1, test=2))["test"])
        >>> d = diagnose(camloc.load_model("efficientnet_lite0"), test, root, cam_class="top1", progress=False)
        >>> d.summary["images"], d.summary["feature_layer"], round(d.summary["area_weight_rho"], 2)
        (2, 'bn2', 0.1)
    """
    check_cam_class(cam_class)
    if not samples:
        raise UsageError("no images to diagnose: the metadata lists none")
    pre = preprocess_for(model)
    extractor = CAMExtractor(model, input_size=pre.input_size)
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    areas, weights = [], []
    head = None
    chunks = sample_batches(samples, Path(images), pre, batch_size, device_of(model), workers)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, total=math.ceil(len(samples) / batch_size), desc="diagnose", unit="batch")
    for chunk in chunks:
        failed += [failure(s, reason) for s, reason in chunk.failed]
        if chunk.x is None:
            continue
        out = extractor.channels(chunk.x, classes=chunk.labels.tolist() if cam_class == "gt" else None)
        head = out.head
        w = out.weights[:, 0]
        truth = [input_boxes(s, pre) for s in chunk.samples]
        stats = batch_statistics(out.features, w, truth, pre.input_size)
        for s, c, stat in zip(chunk.samples, out.classes[:, 0].tolist(), stats, strict=True):
            rows.append({"image_id": s.image_id, "label": s.label, "class": c, **stat})
        if len(areas) < points_images:
            _keep_points(out.features, w, areas, weights, points_images)
    if not rows:
        raise nothing_scored(len(samples), "images", failed[0])
    points = (np.concatenate(areas) if areas else np.zeros(0), np.concatenate(weights) if weights else np.zeros(0))
    return Diagnosis(_summary(rows, model, cam_class, head, pre), rows, failed, points)


def _summary(rows: Sequence[dict[str, Any]], model: nn.Module, cam_class: str, head: HeadSpec, pre: Preprocess
             ) -> dict[str, Any]:
    """The summary of a diagnosis: :func:`summarize` of its records, with the number of images and the settings.

    The settings are the model, class choice, head form and feature layer, preprocessing and thresholds.
    """
    summary = summarize(rows)
    summary.update(images=len(rows), model=model_config(model).name or type(model).__name__, cam_class=cam_class,
                   head=head.form, feature_layer=head.feature_layer, preprocess=pre.to_dict(),
                   active_fraction=ACTIVE_FRACTION, ioa_threshold=IOA_STANDARD.label)
    return summary


def _keep_points(features: torch.Tensor, weights: torch.Tensor, areas: list[np.ndarray],
                 kept_weights: list[np.ndarray], limit: int) -> None:
    """Append the Fig. 2 points of the batch's first images, until ``limit`` images have theirs.

    Per image, the active area ``a_c`` and the weight ``w_kc`` of each channel with positive weight that fires on it.

    Args:
        features: the batch's B x C x h x w feature maps.
        weights: the B x C class weights.
        areas: the active areas kept so far, one array per image (appended to).
        kept_weights: the weights kept so far, one array per image (appended to).
        limit: the number of images to keep points of.
    """
    area, alive = active_area(features)
    for b in range(min(limit - len(areas), weights.shape[0])):
        keep = (weights[b] > 0) & alive[b]
        areas.append(area[b][keep].cpu().numpy())
        kept_weights.append(weights[b][keep].cpu().numpy())
