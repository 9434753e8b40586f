"""Calibration, beyond the paper: choose theta and the percentile on a labelled split.

The paper fixes PaS at ``theta = 0.35`` and the 90th percentile for every backbone and dataset.
:func:`calibrate` instead searches a grid of percentiles and thetas for the pair that maximises
GT-known Loc (IoU >= 0.5 with the largest contour's box, the rethinking protocol's conventions)
on a fully annotated split, such as wsolevaluation's train-fullsup, never the test split. One
forward pass per image serves the whole grid: a map's box only changes where the integer
threshold ``int(theta * percentile(U))`` crosses a level present in the map.

The result is a small JSON file that ``camloc localize --calibration``, ``camloc.boxes(...,
calibration=...)`` and ``camloc evaluate --calibration`` load; evaluation reports the split it was
calibrated on beside the split it evaluates. A calibration is made for one method's maps
(:mod:`camloc.cam.methods`, default ``cam``) and records it; whatever loads it uses that method.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from torch import nn

from ..atomic import atomic_write_text
from ..cam.boxes import Standard, to_uint8, upsample
from ..cam.methods import DEFAULT_METHOD, MethodExtractor, check_method, effective_nwc
from ..data.metadata import Sample
from ..data.transforms import SIZE
from ..device import device_of
from ..errors import CamlocError, UsageError
from .boxacc import largest_contour_table, threshold_levels
from .evaluate import check_labels, failure, nothing_scored, sample_batches, warn_label_space
from .protocols import check_box_convention, check_cam_class, gt_boxes, protocol_preprocess

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
            NWC does not apply to).
        gt_known_loc: its GT-known Loc (%) on the split, failed images counted as misses.
        metadata, model, n: the split, the model, and the split's number of images.
        cam_class: ``gt`` or ``top1``.
        protocol: the conventions of the search (``rethinking``).
        box_convention: where ground-truth boxes end (:data:`camloc.eval.protocols.BOX_CONVENTIONS`).
        failed: ``{"image_id", "reason"}`` for each image that could not be read.
        warnings: one line each, e.g. :func:`camloc.eval.evaluate.label_space_warning`'s.
        method: the maps' method (:data:`camloc.cam.methods.METHODS`); files made before methods
            existed name none and mean ``cam``.
    """

    theta: float
    percentile: float
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

    def __post_init__(self) -> None:  # JSON gives lists; keep tuples so a loaded file equals the saved one
        object.__setattr__(self, "failed", tuple(dict(f) for f in self.failed))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        check_method(self.method)

    def standard(self) -> Standard:
        return Standard(self.theta, self.percentile)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write as JSON, atomically."""
        atomic_write_text(path, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Calibration":
        """Read a file written by :meth:`save` (or the :data:`FILE` in a folder, where ``camloc
        calibrate --out DIR`` saves it); a clear error names a bad file."""
        if Path(path).is_dir():
            path = Path(path) / FILE
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError as exc:
            raise CamlocError(f"{path}: no such calibration file; make one with camloc calibrate") from exc
        except (ValueError, TypeError) as exc:
            raise CamlocError(f"{path}: not a camloc calibration file ({exc}); make one with camloc calibrate") from exc


def calibrate(
    model: nn.Module,
    samples: Sequence[Sample],
    images: Union[str, os.PathLike],
    nwc: bool = True,
    cam_class: str = "gt",
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    thetas: Optional[np.ndarray] = None,
    batch_size: int = 32,
    model_name: str = "",
    metadata: str = "",
    progress: bool = True,
    box_convention: str = "wsolevaluation",
    workers: int = 0,
    method: str = DEFAULT_METHOD,
) -> tuple[Calibration, np.ndarray]:
    """Grid-search ``(percentile, theta)`` for the best GT-known Loc on a labelled split.

    ``cam_class="top1"`` maps the predicted class, for splits whose labels are not the model's
    classes (CUB with an ImageNet model); with ``"gt"``, a Top-1 Cls that says they are not
    (:func:`camloc.eval.evaluate.label_space_warning`, the rule ``evaluate`` applies) is issued as a
    :class:`~camloc.eval.evaluate.LabelSpaceWarning` and recorded in the calibration's ``warnings``.
    An image that cannot be read is a miss at every grid point, listed in ``failed``. ``workers``
    DataLoader processes decode the images (0: this process). ``method`` picks the maps
    (:mod:`camloc.cam.methods`); NWC is recorded off for methods it does not apply to.

    Returns:
        The best :class:`Calibration` (first best in grid order) and the P x T accuracy grid (%).

    Raises:
        UsageError: no boxes, bad names, labels beyond the model's classes with ``"gt"``, or no
            image could be read.
    """
    from tqdm import tqdm

    if not any(s.boxes for s in samples):
        raise UsageError("calibration needs a split with boxes")
    check_cam_class(cam_class)
    check_box_convention(box_convention)
    nwc = effective_nwc(method, nwc)
    thetas = DEFAULT_THETAS if thetas is None else np.asarray(thetas, np.float64)
    pcts = [float(p) for p in percentiles]
    pre = protocol_preprocess("rethinking", model)
    extractor = MethodExtractor(model, method, progress=progress)
    hits = np.zeros((len(pcts), len(thetas)), np.int64)
    failed: list[dict[str, str]] = []
    top1_hits, classified, num_classes = 0, 0, None
    batches = sample_batches(samples, Path(images), pre, batch_size, device_of(model), workers)
    total = -(-len(samples) // batch_size)
    for chunk in tqdm(batches, total=total, disable=not progress, desc="calibrate", unit="batch"):
        failed += [failure(s, reason) for s, reason in chunk.failed]  # a miss everywhere: adds no hit
        if not chunk.samples:
            continue
        if num_classes is None:
            num_classes = check_labels(extractor.cam, chunk.x[:1], samples, cam_class)
        out = extractor(chunk.x, classes=chunk.labels if cam_class == "gt" else None, nwc=nwc)
        top1_hits += int((out.logits.argmax(1).cpu() == chunk.labels).sum())
        classified += len(chunk.samples)
        u8s = to_uint8(upsample(out.maps[:, 0], (SIZE, SIZE))).cpu().numpy()
        for s, u8 in zip(chunk.samples, u8s, strict=True):
            gt = gt_boxes(s, "rethinking", box_convention)
            levels = np.stack([threshold_levels(u8, thetas, p) for p in pcts])
            table = largest_contour_table(u8, gt, (50,), levels.ravel(), rethinking=True)[:, 0]
            hits += table[levels]
    if samples and len(failed) == len(samples):
        raise nothing_scored(len(samples), "images", failed[0])
    found = warn_label_space(top1_hits, classified, num_classes) if cam_class == "gt" and num_classes else []
    grid = 100.0 * hits / len(samples)
    i, j = np.unravel_index(int(grid.argmax()), grid.shape)
    best = Calibration(float(thetas[j]), pcts[i], nwc, float(grid[i, j]), str(metadata), model_name, len(samples),
                       cam_class, box_convention=box_convention, failed=tuple(failed), warnings=tuple(found),
                       method=method)
    return best, grid
