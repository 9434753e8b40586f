"""``camloc.faithfulness(model, images)``: how faithful a method's maps (or your own) are to the model.

Deletion and insertion AUC (RISE) and Average Drop / Increase in Confidence (Grad-CAM++), for each
image's top-1 class (or the classes asked for), on the images :func:`camloc.boxes` takes; the
formulas, baselines and references are in :mod:`camloc.eval.perturbation`, which computes them. The
same numbers come out of ``camloc evaluate --faithfulness`` for every method of an evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..batch.images import Images, PreparedBatch, as_list, prepare_image, prepared_batches, split_classes
from ..cam.analysis import as_logits
from ..cam.cache import PROCESS_HEADS
from ..cam.extractor import ClassSpec, first_name, model_dtype
from ..cam.hooks import eval_mode
from ..cam.methods import MethodExtractor
from ..cam.names import DEFAULT_METHOD, check_method
from ..data.imaging import Preprocess, mode_for_region
from ..models.config import preprocess_for
from ..models.labels import label_indices, model_labels
from ..models.registry import load_model
from ..utils.defaults import REGION
from ..utils.device import device_of
from ..utils.errors import UsageError
from .perturbation import METRICS, Schedule, batch_faithfulness, check_metrics, schedule_settings

#: Perturbed forward passes above which ``progress=None`` shows a bar.
PROGRESS_FORWARDS = 2000


@dataclass(frozen=True)
class FaithfulnessResult:
    """The faithfulness metrics of one method's maps on a set of images.

    Attributes:
        metrics: the metrics computed (:data:`METRICS` order).
        means: ``{metric: mean over the images}``; AUCs in 0..1, ``average_drop`` and ``increase`` in %.
        values: ``{metric: one value per image}`` (``increase``: 100 where ``O > Y``, else 0, so that
            its mean is the metric).
        classes: the class each image's map is for.
        names: the images, as :func:`camloc.boxes` names them.
        settings: what made the numbers: method, NWC, input size, ``step`` (pixels per step),
            ``steps``, the baselines, the score.
        curves: with deletion / insertion, ``{"deletion": N x (steps + 1), "insertion": ...}`` probabilities
            at the fractions ``i / steps`` of pixels changed.
    """

    metrics: tuple[str, ...]
    means: dict[str, float]
    values: dict[str, tuple[float, ...]]
    classes: tuple[int, ...]
    names: tuple[str, ...]
    settings: dict[str, Any]
    curves: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)

    def to_dict(self, with_curves: bool = False) -> dict[str, Any]:
        """A JSON-ready dict: metrics, means, per-image values, classes, names, settings (and the curves)."""
        d = {"metrics": list(self.metrics), "means": dict(self.means),
             "values": {k: list(v) for k, v in self.values.items()}, "classes": list(self.classes),
             "names": list(self.names), "settings": dict(self.settings)}
        if with_curves:
            d["curves"] = {k: v.tolist() for k, v in self.curves.items()}
        return d


def faithfulness(
    model: nn.Module | str, images: Images, maps: torch.Tensor | np.ndarray | None = None,
    method: str = DEFAULT_METHOD, *, classes: ClassSpec = None, metrics: Sequence[str] = METRICS,
    steps: int | None = None, step: int | None = None, batch_size: int = 32, nwc: bool = True,
    resize: str | None = None, preprocess: Preprocess | None = None, device: str | torch.device | None = None,
    checkpoint: str | None = None, feature_layer: str | None = None, classifier: str | None = None,
    progress: bool | None = None,
) -> FaithfulnessResult:
    """Deletion and insertion AUC, Average Drop and Increase in Confidence of a method's maps (formulas above).

    Args:
        model: an ``nn.Module`` (used on its own device, never changed) or a registered name.
        images: what :func:`camloc.boxes` takes: paths, PIL images, arrays, uint8 pixel tensors, or a
            float tensor batch already preprocessed (used as it is).
        maps: your own maps instead of ``method``'s, one per image (N x h x w, any resolution); scored for each
            image's top-1 class unless ``classes`` says otherwise.
        method: ``cam`` (the paper's CAM) or a baseline (:mod:`camloc.cam.methods`), when ``maps`` is None.
        classes: one class for all or one per image (indices or label names); default each image's top-1.
        metrics: any of ``deletion``, ``insertion``, ``average_drop``, ``increase``.
        steps: the curves' number of steps, or ``step`` pixels per step; default one row of the input per
            step (RISE's ``step=224`` at 224 x 224: 224 steps, 448 forward passes per image).
        step: pixels changed per step (instead of ``steps``).
        batch_size: images, and perturbed inputs, per forward pass.
        nwc: negative weight clamping in the method's maps (where it applies).
        resize: ``"full"`` (the default: the whole image squashed to the input size) or ``"crop"``.
        preprocess: an explicit :class:`Preprocess`.
        device: where a model given by name runs.
        checkpoint: local weights for a model given by name.
        feature_layer: the feature layer's module name, overriding discovery.
        classifier: the classifier's module name, overriding discovery.
        progress: a bar on stderr; default shown beyond :data:`PROGRESS_FORWARDS` forward passes.

    Raises:
        UsageError: an unknown metric or method, maps that are not one per image, bad steps or classes.

    Example:
        >>> import camloc
        >>> images = ["examples/images/cat.jpg", "examples/images/coffee.jpg"]
        >>> r = camloc.faithfulness("efficientnet_lite0", images, steps=8)
        >>> r.classes, r.settings["step"], tuple(r.curves["deletion"].shape)
        ((285, 967), 6272, (2, 9))
        >>> r.means["deletion"] < r.means["insertion"]       # deleting the CAM's top pixels hurts most
        True
    """
    metrics = check_metrics(metrics)
    items = as_list(images)
    cls = split_classes(classes, len(items))
    method = check_method(method)
    given = _given_maps(maps, len(items))
    model = _load(model, checkpoint, device)
    mode = mode_for_region(resize if resize is not None or preprocess is not None else REGION)
    pre = (preprocess.with_mode(mode) if mode else preprocess) if preprocess else preprocess_for(model, mode)
    cls = _class_indices(model, pre, cls, len(items))
    extractor = None if given is not None else MethodExtractor(model, method, feature_layer, classifier,
                                                                input_size=pre.input_size, cache=PROCESS_HEADS)
    batches = prepared_batches(items, batch_size, lambda im, name: prepare_image(im, pre, name))
    parts = _score_all(model, batches, extractor, given, cls, nwc, metrics, (steps, step), batch_size,
                       progress, len(items))
    return _result(parts, metrics, {"method": "given maps" if given is not None else method,
                                    "nwc": bool(nwc) if given is None else None})


def _given_maps(maps: torch.Tensor | np.ndarray | None, n: int) -> torch.Tensor | None:
    """The user's maps as an N x h x w float tensor, checked against the ``n`` images (None: none given)."""
    if maps is None:
        return None
    try:
        t = torch.as_tensor(maps)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UsageError(f"maps must be a tensor or array of N x h x w numbers, not {type(maps).__name__} ({exc})"
                         ) from exc
    if t.ndim == 2 and n == 1:
        t = t.unsqueeze(0)
    if t.ndim != 3 or min(t.shape) < 1 or t.dtype == torch.bool or t.is_complex():
        raise UsageError(f"maps must be N x h x w, one real-valued map per image, got shape {tuple(t.shape)} "
                         f"({t.dtype}); for one image's map give 1 x h x w")
    if t.shape[0] != n:
        raise UsageError(f"got {t.shape[0]} maps for {n} images: give one map (h x w) per image, N x h x w")
    t = t.float()
    if not torch.isfinite(t).all():
        raise UsageError("maps hold NaN or infinite values: give finite maps (torch.nan_to_num) to rank pixels by")
    return t


def _load(model: nn.Module | str, checkpoint: str | None, device: str | torch.device | None) -> nn.Module:
    """A model given by name, loaded (with ``checkpoint``) and moved to ``device``; a module as it is."""
    if not isinstance(model, str):
        if checkpoint is not None:
            raise UsageError("checkpoint applies to models given by name; load weights into your module yourself")
        return model
    loaded = load_model(model, checkpoint=checkpoint)
    return loaded.to(device) if device is not None else loaded


def _class_indices(model: nn.Module, pre: Preprocess, cls: Any, n: int) -> Any:
    """The class request with label names replaced by indices; one class per image (never B x k)."""
    if first_name(cls) is not None:
        cls = split_classes(label_indices(cls, *model_labels(model, pre.input_size, device_of(model))), n)
    if isinstance(cls, torch.Tensor) and cls.ndim != 1:
        raise UsageError(f"faithfulness scores one class per image: give {n} classes, not a "
                         f"{' x '.join(map(str, cls.shape))} request")
    return cls


def _batch_classes(cls: Any, rows: slice, logits: torch.Tensor) -> torch.Tensor:
    """The B class indices of one batch: the request's, else each image's top-1."""
    if cls is None:
        return logits.argmax(1)
    if isinstance(cls, torch.Tensor):
        return cls[rows].to(logits.device).long()
    return torch.full((logits.shape[0],), int(cls), dtype=torch.long, device=logits.device)


def _score_all(model: nn.Module, batches: Iterator[PreparedBatch], extractor: MethodExtractor | None,
               given: torch.Tensor | None, cls: Any, nwc: bool, metrics: tuple[str, ...],
               steps: tuple[int | None, int | None], batch_size: int, progress: bool | None, n: int) -> dict[str, Any]:
    """Every batch's maps, classes, probabilities and metrics, gathered: ``{"values", "curves", "classes", ...}``."""
    from tqdm import tqdm

    dev, dtype = device_of(model), model_dtype(model)
    parts: dict[str, Any] = {"values": {}, "curves": {}, "classes": [], "names": [], "schedule": None}
    bar = None
    for x, _, names, rows in batches:
        x = x.to(dev, dtype or x.dtype)
        if extractor is not None:
            out = extractor(x, cls if not isinstance(cls, torch.Tensor) else cls[rows], nwc=nwc)
            maps, classes, logits = out.maps[:, 0], out.classes[:, 0].to(dev), out.logits
        else:
            with eval_mode(model), torch.no_grad():
                logits = as_logits(model(x))
            maps, classes = given[rows], _batch_classes(cls, rows, logits)
        schedule = Schedule.of(x.shape[2], x.shape[3], *steps)
        if parts["schedule"] not in (None, schedule):
            raise UsageError(f"images of different sizes in one run ({tuple(x.shape[2:])} after "
                             f"{parts['size']}): give float tensors of one size, or the images themselves")
        parts["schedule"], parts["size"] = schedule, tuple(x.shape[2:])
        if bar is None:
            total = 2 * schedule.steps * n if {"deletion", "insertion"} & set(metrics) else 0
            bar = tqdm(total=total, unit="fwd", desc="faithfulness",
                       disable=not (progress if progress is not None else total > PROGRESS_FORWARDS))
        scores = logits.softmax(1).gather(1, classes.view(-1, 1)).squeeze(1)
        values, curves = batch_faithfulness(model, x, maps, classes, scores, metrics, schedule, batch_size, bar)
        for key, target in (("values", values), ("curves", curves)):
            for name, v in target.items():
                parts[key].setdefault(name, []).append(v.detach().cpu())
        parts["classes"] += classes.tolist()
        parts["names"] += list(names)
    if bar is not None:
        bar.close()
    return parts


def _result(parts: dict[str, Any], metrics: tuple[str, ...], settings: dict[str, Any]) -> FaithfulnessResult:
    """The :class:`FaithfulnessResult` of :func:`_score_all`'s parts."""
    values = {k: torch.cat(v) for k, v in parts["values"].items()}
    schedule, size = parts["schedule"], parts.get("size", (0, 0))
    extra = schedule_settings(schedule, *size) if schedule is not None else {}
    return FaithfulnessResult(
        metrics, {k: float(v.mean()) if len(v) else float("nan") for k, v in values.items()},
        {k: tuple(float(a) for a in v) for k, v in values.items()}, tuple(parts["classes"]), tuple(parts["names"]),
        {**settings, **extra}, {k: torch.cat(v).float() for k, v in parts["curves"].items()})
