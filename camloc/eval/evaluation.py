"""Evaluation on WSOL datasets under either protocol, every variant from one forward pass.

The protocols are those of :mod:`camloc.eval.protocols`; one or several methods (:mod:`camloc.cam.methods`) are
scored.

Example:
    >>> import tempfile, torch
    >>> from camloc.data.metadata import read_dataset
    >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
    >>> from camloc.eval.evaluation import evaluate
    >>> from camloc.eval.protocols import Settings
    >>> from camloc.models.wsol import build_wsol
    >>> root = tempfile.mkdtemp()                      # a tiny synthetic benchmark, 4 test images
    >>> folders = write_synthetic(root, SyntheticSpec(classes=2, train=1, train_fullsup=1, test=4))
    >>> samples = read_dataset(folders["test"])
    >>> _ = torch.manual_seed(0)
    >>> model = build_wsol("smallcnn", num_classes=2)   # untrained here: the numbers only show the layout
    >>> result = evaluate(model, samples, root, Settings("wsolevaluation"), progress=False)
    >>> sorted(result.metrics), result.metrics["nwc+pas"]["maxboxacc_v2"]
    (['cam', 'nwc', 'nwc+pas', 'pas'], 75.0)
    >>> evaluate(model, samples, root, Settings(methods=("cam", "gradcam")), progress=False).metrics["gradcam/pas"]
    {'top1_cls': 50.0, 'top5_cls': 100.0, 'gt_known_loc': 75.0, 'top1_loc': 25.0}
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..cam.boxes import foreground, minmax, upsample
from ..cam.extractor import CAMExtractor, CAMOutput
from ..cam.methods import MethodExtractor
from ..cam.rules import contour_boxes
from ..data.imaging import Preprocess
from ..data.metadata import Sample
from ..utils.atomic import atomic_write
from ..utils.defaults import SIZE
from ..utils.device import device_of
from ..utils.errors import ImageError, UsageError
from .batches import LoadedBatch, input_size_note, protocol_preprocess, sample_batches
from .boxacc import iou_matrix
from .metrics import FixedThreshold
from .perturbation import FaithfulnessAccumulator
from .protocols import Settings, gt_boxes, load_masks
from .records import PerImageRecords
from .result import EvaluationResult, failure, nothing_scored
from .scoring import WsolScorer, masks_or_none, no_metric

#: Images a run needs before :func:`label_space_warning` judges its Top-1 Cls.
MIN_IMAGES_FOR_LABEL_CHECK = 32
#: Top-1 Cls (%) under which ``cam_class="gt"`` is suspect whatever the number of classes.
SUSPECT_TOP1 = 10.0


class LabelSpaceWarning(UserWarning):
    """``cam_class="gt"`` maps classes the model hardly ever predicts (see :func:`label_space_warning`).

    The dataset's labels do not look like the model's classes.
    """


def label_space_warning(top1_hits: int, n: int, num_classes: int) -> str | None:
    """The warning for a run whose labels do not look like the model's classes, or None.

    The rule (one for ``evaluate`` and ``calibrate``): over at least
    :data:`MIN_IMAGES_FOR_LABEL_CHECK` classified images, Top-1 Cls under :data:`SUSPECT_TOP1` %, or
    not above chance (``1 / num_classes``) by a one-sided binomial test at the 1 % level (normal
    approximation, z < 2.33). CUB species indices read as ImageNet classes give about 1 to 6 %.

    Args:
        top1_hits: images whose top-1 prediction is their label.
        n: images classified (failed images excluded).
        num_classes: the model's number of outputs.
    """
    if n < MIN_IMAGES_FOR_LABEL_CHECK or num_classes < 1:
        return None
    acc = 100.0 * top1_hits / n
    chance = 1.0 / num_classes
    at_chance = chance < 1.0 and (top1_hits - n * chance) / math.sqrt(n * chance * (1.0 - chance)) < 2.33
    if acc >= SUSPECT_TOP1 and not at_chance:
        return None
    return (f"Top-1 Cls is {acc:.2f} % on {n} images (chance {100.0 * chance:.2f} %) with --cam-class gt: the "
            f"dataset's labels do not look like the model's {num_classes} classes (e.g. CUB species with an ImageNet "
            "model), or the model has not learned them, so the maps of the labelled classes mean little; use "
            "--cam-class top1 (cam_class='top1'), or a head fine-tuned on these classes (camloc finetune)")


def warn_label_space(top1_hits: int, n: int, num_classes: int) -> list[str]:
    """Issue :func:`label_space_warning` as a :class:`LabelSpaceWarning` if it applies; the messages issued."""
    message = label_space_warning(top1_hits, n, num_classes)
    if message is None:
        return []
    warnings.warn(message, LabelSpaceWarning, stacklevel=3)
    return [message]


def rethinking_boxes(maps: torch.Tensor, chunk: Sequence[Sample], standard, convention: str = "wsolevaluation"
                     ) -> list[tuple[float, tuple]]:
    """``(best IoU, box)`` per image of the one box the rethinking protocol draws.

    The box is drawn by the rule of :mod:`camloc.cam.boxes`, on the 224 x 224 input.
    """
    _, fg = foreground(maps, (SIZE, SIZE), standard)
    out = []
    for sample, mask in zip(chunk, fg.cpu().numpy(), strict=True):
        box, _ = contour_boxes(mask)
        out.append((float(iou_matrix([box], gt_boxes(sample, "rethinking", convention)).max()), box))
    return out


class _EvaluationAccumulator:
    """The accumulators of one evaluation.

    They hold fixed thresholds (rethinking) or sweeps (wsolevaluation), classification hits, the failed images
    and, when asked, the per-image records and the faithfulness metrics of each row's maps (``faithful``).
    """

    def __init__(self, settings: Settings, samples: Sequence[Sample], masks_root: Path,
                 save_maps: str | os.PathLike | None, per_image: bool = False, views: int = 0,
                 pre: Preprocess | None = None, model: nn.Module | None = None,
                 faithful: FaithfulnessAccumulator | None = None) -> None:
        self.settings, self.masks_root, self.save_maps, self.faithful = settings, masks_root, save_maps, faithful
        # per-image records (only when asked: a run without them does none of this work)
        self.per_image = PerImageRecords(settings, views, pre, model) if per_image or views else None
        self.wsol = settings.protocol == "wsolevaluation"
        self.known = settings.cam_class == "gt"
        has_boxes, has_masks = any(s.boxes for s in samples), any(s.masks for s in samples)
        if not self.wsol and not has_boxes:
            raise UsageError("the rethinking protocol needs boxes; this split has "
                             + ("masks only: use --protocol wsolevaluation" if has_masks else
                                "no box or mask (an empty localization.txt): give each image its boxes"))
        self.dataset = {"n": len(samples), "boxes": has_boxes, "masks": has_masks}
        self.rows = settings.rows()
        self.fixed = {r.name: FixedThreshold() for r in self.rows}
        self.scorers = {r.name: WsolScorer(settings, has_boxes, has_masks) for r in self.rows} if self.wsol else {}
        if self.wsol and not next(iter(self.scorers.values())).active:
            raise UsageError(no_metric(settings.metrics, has_boxes, has_masks))
        self.cls_hits = np.zeros(2, np.int64)  # Top-1 and Top-5 Cls (wsolevaluation: the same for every variant)
        self.classified = 0
        self.failed: list[dict[str, str]] = []

    def fail(self, sample: Sample, reason: str, masks_readable: bool = True) -> None:
        """An image that cannot be scored: a miss in every metric, listed."""
        self.failed.append(failure(sample, reason))
        if self.wsol:
            masks = masks_or_none(sample, self.masks_root) if masks_readable else None
            for scorer in self.scorers.values():
                scorer.add_miss(masks)
            return
        for row in self.rows:
            self.fixed[row.name].add(0.0, False if self.known else None, False if self.known else None)

    def requests(self) -> list[tuple[str, bool]]:
        """The ``(method, nwc)`` maps the rows need, each computed once per batch."""
        return list(dict.fromkeys((r.method, r.nwc) for r in self.rows))

    def add(self, chunk: Sequence[Sample], labels: torch.Tensor, outs: dict[tuple[str, bool], CAMOutput],
            num_classes: int, x: torch.Tensor | None = None) -> None:
        """Score one batch: its classification, then every row's boxes (rethinking) or sweeps (wsolevaluation).

        An image whose mask cannot be read fails here.

        Args:
            chunk: the batch's decoded samples.
            labels: their labels.
            outs: the maps of every ``(method, nwc)`` of :meth:`requests`, with the logits.
            num_classes: the model's number of classes.
            x: the network input (to keep views of the first images).
        """
        ok = np.ones(len(chunk), bool)
        masks_of = self._load_masks(chunk, ok) if self.wsol else [None] * len(chunk)
        first = next(iter(outs.values()))
        top5 = first.logits.cpu().topk(min(5, num_classes), dim=1).indices
        top1_ok = (top5[:, 0] == labels).numpy() & ok
        top5_ok = (top5 == labels[:, None]).any(dim=1).numpy() & ok
        self.cls_hits += (int(top1_ok.sum()), int(top5_ok.sum()))
        self.classified += int(ok.sum())
        records = None
        if self.per_image is not None:
            records = self.per_image.add_batch(chunk, first.logits, top5, ok, num_classes)
            if self.per_image.views_left > 0 and x is not None:
                self.per_image.keep_views(chunk, x, outs, ok)
        if self.faithful is not None and x is not None and ok.any():  # the same maps, on the same input
            self.faithful.add(x, outs, ok)
        if self.wsol:
            self._add_sweeps(chunk, outs, ok, masks_of, records)
        else:
            self._add_fixed(chunk, outs, top1_ok, top5_ok, records)

    def _load_masks(self, chunk: Sequence[Sample], ok: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None] | None]:
        """The batch's masks for PxAP (None for an image without).

        An image whose mask cannot be read is failed and marked in ``ok``.
        """
        masks_of: list = [None] * len(chunk)
        for i, s in enumerate(chunk):
            if s.masks:
                try:
                    masks_of[i] = load_masks(s, self.masks_root)
                except ImageError as exc:
                    self.fail(s, str(exc), masks_readable=False)
                    ok[i] = False
        return masks_of

    def _add_fixed(self, chunk: Sequence[Sample], outs: dict[tuple[str, bool], CAMOutput], top1_ok: np.ndarray,
                   top5_ok: np.ndarray, records: list[dict | None] | None = None) -> None:
        """Rethinking: each row's one box per image, at the row's fixed threshold, into its accumulator.

        With records, the row's hit, IoU and box go into each image's record too.
        """
        for row in self.rows:
            found = rethinking_boxes(outs[(row.method, row.nwc)].maps[:, 0], chunk, self.settings.standard(row.variant),
                                     self.settings.box_convention)
            for i, (best, box) in enumerate(found):
                acc = self.fixed[row.name]
                before = acc.gt_known
                acc.add(best, bool(top1_ok[i]) if self.known else None, bool(top5_ok[i]) if self.known else None)
                if records is not None and records[i] is not None:  # a hit is what GT-known Loc counted
                    records[i]["rows"][row.name] = {"hit": acc.gt_known > before, "iou": best,
                                                    "box": [int(v) for v in box]}

    def _add_sweeps(self, chunk: Sequence[Sample], outs: dict[tuple[str, bool], CAMOutput], ok: np.ndarray,
                    masks_of: list, records: list[dict | None] | None = None) -> None:
        """wsolevaluation: each row's min-max normalised map of every scored image into its scorer.

        With records, the image's hit at every tau goes into its record too; with ``save_maps``, the map is saved.
        """
        normalised = {key: minmax(upsample(out.maps[:, 0], (SIZE, SIZE))).cpu().numpy() for key, out in outs.items()}
        for row in self.rows:
            maps = normalised[(row.method, row.nwc)]
            for i, s in enumerate(chunk):
                if not ok[i]:
                    continue
                hits = self.scorers[row.name].add(maps[i], s, self.settings.sweep_percentile(row.variant), masks_of[i],
                                                  self.settings.rule(row.variant))
                if records is not None and hits is not None:  # every tau's hit, one bit each, until the best is known
                    records[i]["rows"][row.name] = {"bits": np.packbits(hits)}
                if self.save_maps:
                    atomic_write(Path(self.save_maps) / row.name / f"{s.image_id}.npy",
                                 lambda fh, m=maps[i]: np.save(fh, m))

    def operating_points(self) -> dict[str, dict[str, Any]]:
        """Per row, the metric and tau at which wsolevaluation's per-image hits and boxes are taken."""
        out = {}
        for r in self.rows:
            point = self.scorers[r.name].operating_point() if self.wsol else None
            if point is not None:
                out[r.name] = {"metric": point[0], "tau": point[1], "delta": 50}
        return out

    def finish_records(self) -> dict[str, dict[str, Any]]:
        """Settle the wsolevaluation records at each row's operating point; returns the operating points.

        Each record gets its hits, and its box and IoU where a view was kept.
        """
        points = self.operating_points()
        if self.wsol and self.per_image is not None:
            self.per_image.settle(self.rows, points)
        return points

    def result(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """``(metrics, curves)`` per row (curves under wsolevaluation only)."""
        metrics, curves = {}, {}
        n = self.dataset["n"]
        for r in self.rows:
            if not self.wsol:
                metrics[r.name] = self.fixed[r.name].compute()
                continue
            row = ({"top1_cls": float(100.0 * self.cls_hits[0] / n), "top5_cls": float(100.0 * self.cls_hits[1] / n)}
                   if self.known else {})
            row.update(self.scorers[r.name].compute())
            metrics[r.name] = row
            curves[r.name] = self.scorers[r.name].curves()
        for r in self.rows if self.faithful is not None else ():  # a row's maps are its (method, nwc)'s
            metrics[r.name].update(self.faithful.means((r.method, r.nwc)))
        return metrics, curves


def evaluate(model: nn.Module, samples: Sequence[Sample], images: str | os.PathLike,
             settings: Settings = Settings(), masks: str | os.PathLike | None = None,  # noqa: B008
             batch_size: int = 32, save_maps: str | os.PathLike | None = None, progress: bool = True, workers: int = 0,
             score_batch: int | None = None, per_image: bool = False, views: int = 0, faithfulness: bool = False,
             faithfulness_steps: int | None = None) -> EvaluationResult:
    """Run ``model`` once per image of a split and score every variant of every method.

    Each method's maps come from one pass per batch (the paper's CAM: one forward pass for every
    variant; the gradient methods together: one forward and one backward pass; Score-CAM: its
    masked forward passes, see :mod:`camloc.cam.methods`); ``settings.rows()`` names the rows.

    An image that cannot be read (or whose mask cannot be) does not stop the run: it is listed in
    ``result.failed`` with its reason and scored as a miss, counting in every denominator: a
    classification miss, a localization miss (no box reaches the ground truth at any threshold),
    and for PxAP an all-zero score map (its foreground counts, found by nothing; an unreadable mask
    adds nothing). No map is saved for it. Where the metadata gives no image size (an empty
    ``image_sizes.txt``) each image's own size is used.

    With ``cam_class="gt"``, a Top-1 Cls that says the labels are not the model's classes is issued as a
    :class:`LabelSpaceWarning`; it and :func:`~camloc.eval.batches.input_size_note` go in ``result.warnings``.

    Args:
        model: any classifier camloc's extractor supports (its device is used as it is).
        samples: the split, from :func:`camloc.data.metadata.read_dataset`.
        images: the image root the sample ids are relative to.
        settings: protocol, variants, methods, thresholds, metrics and box convention.
        masks: the mask root (default: the image root), for PxAP.
        batch_size: images per forward pass.
        save_maps: write wsolevaluation score maps to ``<save_maps>/<row>/<image_id>.npy`` (a row is the
            variant for ``cam``, ``METHOD/VARIANT`` for the other methods).
        progress: show a progress bar on stderr.
        workers: image decoding worker processes (0: decode in this process).
        score_batch: masked images per forward pass in Score-CAM (default
            :data:`camloc.cam.methods.SCORE_BATCH`).
        per_image: keep a record per image (``result.per_image``: prediction, and per row the hit,
            IoU and box; see :class:`EvaluationResult`). Off by default: a run without it does no
            per-image work.
        views: keep the network input and maps of the first ``views`` scored images
            (``result.views``, for pictures; implies ``per_image``).
        faithfulness: add to each row the faithfulness metrics of its maps, on the same input in the same pass
            (:func:`camloc.faithfulness`).
        faithfulness_steps: the deletion and insertion curves' steps (default one row of pixels per step).

    Raises:
        UsageError: bad settings for this split, labels beyond the model's classes with
            ``cam_class="gt"``, or no image of the split could be scored.
    """
    images = Path(images)
    pre = protocol_preprocess(settings.protocol, model)
    faithful = FaithfulnessAccumulator(model, steps=faithfulness_steps, batch_size=batch_size,
                                       progress=progress) if faithfulness else None
    run = _EvaluationAccumulator(settings, samples, Path(masks) if masks else images, save_maps, per_image, views,
                                 pre, model, faithful)
    extractor = MethodExtractor(model, progress=progress, **({"score_batch": score_batch} if score_batch else {}))
    batches = sample_batches(samples, images, pre, batch_size, device_of(model), workers)
    num_classes = _score_batches(run, extractor, samples, batches, progress)
    if samples and len(run.failed) == len(samples):
        raise nothing_scored(len(samples), "images", run.failed[0])
    found = warn_label_space(int(run.cls_hits[0]), run.classified, num_classes) if run.known and num_classes else []
    return _result(run, images, found + [n for n in (input_size_note(settings.protocol, model, pre),) if n], pre)


def _result(run: _EvaluationAccumulator, images: Path, found: list[str], pre: Preprocess) -> EvaluationResult:
    """The :class:`EvaluationResult` of a finished run, with its warnings ``found``."""
    metrics, curves = run.result()
    points = run.finish_records() if run.per_image is not None else {}
    dataset = {"images": str(images), **run.dataset, "failed": len(run.failed)}
    records, views_kept = (run.per_image.records, run.per_image.views) if run.per_image is not None else ([], {})
    return EvaluationResult(run.settings, dataset, metrics, curves, run.failed, found, records, points, views_kept,
                            {**pre.to_dict(), "region_mode": pre.region_mode},
                            run.faithful.settings if run.faithful is not None else {})


def _score_batches(run: _EvaluationAccumulator, extractor: MethodExtractor, samples: Sequence[Sample],
                   batches: Iterator[LoadedBatch], progress: bool) -> int | None:
    """Feed every batch of the split to ``run``: its failed images, then the maps of the rows.

    The maps are those of the images that decoded, from one :meth:`MethodExtractor.maps` call per batch.

    Args:
        run: the evaluation's accumulators.
        extractor: the methods' extractor on the model.
        samples: the whole split (its labels are checked against the model's classes once).
        batches: the split's batches, from :func:`sample_batches`.
        progress: show a progress bar on stderr.

    Returns:
        The model's number of classes, or None when no image decoded.
    """
    from tqdm import tqdm

    settings = run.settings
    requests = run.requests()
    num_classes = None
    bar = tqdm(total=len(samples), disable=not progress, unit="img", desc=f"evaluate ({settings.protocol})")
    for chunk in batches:
        for s, reason in chunk.failed:
            run.fail(s, reason)
        if chunk.samples:
            if num_classes is None:
                num_classes = check_labels(extractor.cam, chunk.x[:1], samples, settings.cam_class)
            outs = extractor.maps(chunk.x, requests, classes=chunk.labels if run.known else None)
            run.add(chunk.samples, chunk.labels, outs, num_classes, chunk.x)
        bar.update(len(chunk.samples) + len(chunk.failed))
    bar.close()
    return num_classes


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
