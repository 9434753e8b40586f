"""The faithfulness metrics' computations: deletion, insertion, Average Drop, Increase (:func:`camloc.faithfulness`).

Localization metrics ask whether a map covers the object; these ask whether the pixels a map ranks
highest are the ones the model's score depends on. All four use the softmax probability of the
map's class ``c`` (the image's top-1 class unless another is asked for), on the network input ``x``
(``C x H x W``, already normalised), for a raw map ``M`` at any resolution.

**Deletion and insertion** (V. Petsiuk, A. Das, K. Saenko, "RISE: Randomized Input Sampling for
Explanation of Black-box Models", BMVC 2018; as the authors' ``CausalMetric`` and ``auc`` compute
them, ``evaluation.py`` and ``Evaluation.ipynb`` of github.com/eclique/RISE):

* ``M`` is upsampled to ``H x W`` as the box rule does (bicubic, ``align_corners=False``,
  :func:`camloc.cam.boxes.upsample`) and the pixels are ranked by it, highest first (a stable sort:
  equal values keep their raster order); ``r(p)`` is pixel ``p``'s rank;
* with ``s`` pixels per step (default the input's width, RISE's ``step=224`` at 224 x 224), there are
  ``n = ceil(HW / s)`` steps and ``k_i = min(i s, HW)`` pixels changed at point ``i = 0 .. n``;
* deletion: ``x_i(p) = 0`` where ``r(p) < k_i``, else ``x(p)``: RISE's ``torch.zeros_like``
  substrate, zero in network-input space, i.e. the normalisation's mean colour;
* insertion: ``x_i(p) = x(p)`` where ``r(p) < k_i``, else ``blur(x)(p)``: RISE's substrate, a
  Gaussian of sigma 5 px on an 11 x 11 support (``gkern(11, 5)``: scipy's ``gaussian_filter`` of a
  centred delta, so the kernel sums to 1), per channel, zero padded, on the network input;
* ``a_i = softmax(f(x_i))_c`` and ``AUC = (sum_i a_i - a_0 / 2 - a_n / 2) / n``, the trapezoid rule over
  the fractions ``i / n`` (RISE's ``auc``). A low deletion AUC and a high insertion AUC are good.
  Deletion starts at the image's own probability and insertion ends at it.

**Average Drop and Increase in Confidence** (A. Chattopadhay, A. Sarkar, P. Howlader, V. N.
Balasubramanian, "Grad-CAM++: Generalized Gradient-based Visual Explanations for Deep Convolutional
Networks", WACV 2018), computed exactly as torch-cam 0.5's ``torchcam.metrics.ClassificationMetric``
with ``logits_fn=softmax`` does (the tests check equality):

* ``L = bilinear((M - min M) / (max M - min M + 1e-8))``: min-max normalised at the map's own
  resolution, then upsampled bilinearly (``align_corners=False``), torch-cam's order and kernel, not
  the box rule's bicubic upsampling of the raw map;
* the explanation map ``E = L * x``, on the network input (torch-cam's, so a masked-out pixel
  becomes the mean colour); ``Y = softmax(f(x))_c``, ``O = softmax(f(E))_c``;
* ``Average Drop = 100 / N * sum max(0, Y - O) / (Y + 1e-7)`` (lower is better) and
  ``Increase = 100 / N * #{O > Y}`` (higher is better): percentages, where torch-cam's ``summary``
  gives fractions.

Cost: one forward pass for Average Drop and Increase together, ``2 n`` for the two curves (``n`` each:
their shared end points are the image itself); every perturbed input goes through the model in
batches of ``batch_size``, several images' steps stacked together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cam.analysis import as_logits
from ..cam.boxes import upsample
from ..cam.extractor import CAMOutput, model_dtype
from ..cam.hooks import eval_mode
from ..utils.defaults import FAITHFULNESS_METRICS
from ..utils.errors import UsageError

#: The metrics, in the order they are reported.
METRICS = FAITHFULNESS_METRICS
#: RISE's insertion substrate: ``gkern(BLUR_SIZE, BLUR_SIGMA)``.
BLUR_SIZE, BLUR_SIGMA = 11, 5.0
#: torch-cam's constants: the min-max normalisation's and Average Drop's denominators.
NORM_EPS, DROP_EPS = 1e-8, 1e-7


@dataclass(frozen=True)
class Schedule:
    """How many pixels a deletion / insertion curve changes at each point.

    Attributes:
        pixels: ``H * W``.
        step: pixels changed per step.
        steps: ``ceil(pixels / step)``; the curve has ``steps + 1`` points.
    """

    pixels: int
    step: int
    steps: int

    @classmethod
    def of(cls, height: int, width: int, steps: int | None = None, step: int | None = None) -> Schedule:
        """The schedule for an ``H x W`` input: ``step`` pixels per step, or ``steps`` steps, or one row per step.

        Raises:
            UsageError: both ``steps`` and ``step``, or either below 1.

        Example:
            >>> Schedule.of(224, 224), Schedule.of(224, 224, steps=28).step
            (Schedule(pixels=50176, step=224, steps=224), 1792)
        """
        if steps is not None and step is not None:
            raise UsageError("give steps (how many) or step (pixels per step) for the deletion and insertion "
                             "curves, not both")
        for name, v in (("steps", steps), ("step", step)):
            if v is not None and (isinstance(v, bool) or not hasattr(v, "__index__") or v < 1):
                raise UsageError(f"{name} must be a whole number of at least 1, not {v!r}")
        pixels = height * width
        size = int(step) if step is not None else -(-pixels // int(steps)) if steps is not None else width
        size = min(size, pixels)
        return cls(pixels, size, -(-pixels // size))

    def counts(self, device: torch.device | str | None = None) -> torch.Tensor:
        """``k_i = min(i * step, pixels)`` for ``i = 0 .. steps``."""
        return (torch.arange(self.steps + 1, device=device) * self.step).clamp_max(self.pixels)


def gaussian_kernel(size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """RISE's ``gkern(size, sigma)``: scipy's ``gaussian_filter`` (reflect mode, truncate 4) of a centred delta.

    Separable, so it is the outer product of the 1-D filter of a delta; returned as float32 ``size x size``.

    Example:
        >>> k = gaussian_kernel()
        >>> tuple(k.shape), round(float(k.sum()), 6), bool(k[5, 5] == k.max())
        ((11, 11), 1.0, True)
    """
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    delta = np.zeros(size)
    delta[size // 2] = 1.0
    line = np.convolve(np.pad(delta, radius, mode="symmetric"), taps, mode="valid")  # scipy's "reflect"
    return torch.from_numpy(np.outer(line, line).astype(np.float32))


def blur(x: torch.Tensor) -> torch.Tensor:
    """RISE's insertion substrate: each channel of a B x C x H x W batch convolved with :func:`gaussian_kernel`."""
    c = x.shape[1]
    kernel = gaussian_kernel().to(x).expand(c, 1, BLUR_SIZE, BLUR_SIZE)
    return F.conv2d(x, kernel, padding=BLUR_SIZE // 2, groups=c)


def auc(curves: torch.Tensor) -> torch.Tensor:
    """RISE's normalised area under each row of an N x P curve: ``(sum - first / 2 - last / 2) / (P - 1)``."""
    curves = curves.double()
    return (curves.sum(1) - curves[:, 0] / 2 - curves[:, -1] / 2) / (curves.shape[1] - 1)


def class_scores(model: nn.Module, x: torch.Tensor, classes: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``softmax(model(x))[classes]`` for a batch, in forward passes of ``batch_size`` (no gradients)."""
    out = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = as_logits(model(x[start:start + batch_size]))
            out.append(logits.softmax(1).gather(1, classes[start:start + batch_size].view(-1, 1)).squeeze(1))
    return torch.cat(out) if out else x.new_zeros(0)


def explanation(maps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """torch-cam's explanation map ``E = bilinear(minmax(M)) * x`` of B x h x w maps on a B x C x H x W batch."""
    m = maps.float().clone()
    dims = (1, 2)
    m = m - m.amin(dim=dims, keepdim=True)
    m = m / (m.amax(dim=dims, keepdim=True) + NORM_EPS)
    m = F.interpolate(m.unsqueeze(1), tuple(x.shape[2:]), mode="bilinear", align_corners=False)
    return m.to(x.dtype) * x


def drop_and_increase(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor,
                      scores: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, Average Drop's term ``100 max(0, Y - O) / (Y + 1e-7)`` and Increase's ``100 [O > Y]``."""
    masked = class_scores(model, explanation(maps, x), classes, batch_size)
    drop = torch.relu(scores - masked) / (scores + DROP_EPS)
    return 100.0 * drop.double(), 100.0 * (masked > scores).double()


def salience_ranks(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B x (H W) rank of each pixel in its upsampled map, 0 for the highest (stable: ties in raster order)."""
    flat = upsample(maps, size).flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def causal_curves(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor,
                  scores: torch.Tensor, schedule: Schedule, batch_size: int, bar: Any = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The deletion and insertion curves of a batch: two B x (steps + 1) tensors of class probabilities.

    Every perturbed input of every image (deletion's points 1..n, insertion's 0..n-1; the image itself
    ends both) goes through the model in batches of ``batch_size``.
    """
    b, c, h, w = x.shape
    n = schedule.steps
    ranks = salience_ranks(maps, (h, w))
    counts = schedule.counts(x.device)
    flat, blurred = x.reshape(b, c, h * w), blur(x).reshape(b, c, h * w)
    # jobs j = 0 .. 2bn - 1, image by image: deletion's points 1..n, then insertion's 0..n-1
    job = torch.arange(2 * n, device=x.device).repeat(b)
    image, deleting = torch.arange(b, device=x.device).repeat_interleave(2 * n), job < n
    point = torch.where(deleting, job + 1, job - n)
    probs = torch.empty(len(image), dtype=scores.dtype, device=scores.device)
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(image), batch_size):
            rows = slice(start, start + batch_size)
            i, d, k = image[rows], deleting[rows], point[rows]
            changed = (ranks[i] < counts[k].view(-1, 1)).unsqueeze(1)  # the k_i top-ranked pixels
            keep, substrate = flat[i], torch.where(d.view(-1, 1, 1), torch.zeros_like(flat[i]), blurred[i])
            inputs = torch.where(d.view(-1, 1, 1), torch.where(changed, substrate, keep),
                                 torch.where(changed, keep, substrate))
            logits = as_logits(model(inputs.reshape(-1, c, h, w)))
            probs[start:start + len(i)] = logits.softmax(1).gather(1, classes[i].view(-1, 1)).squeeze(1).to(probs)
            if bar is not None:
                bar.update(len(i))
    probs = probs.view(b, 2 * n)
    deletion = torch.cat([scores.view(-1, 1), probs[:, :n]], 1)
    insertion = torch.cat([probs[:, n:], scores.view(-1, 1)], 1)
    return deletion, insertion


def check_metrics(metrics: Sequence[str] | str) -> tuple[str, ...]:
    """The metrics asked for, in :data:`METRICS` order.

    Raises:
        UsageError: an unknown name (the names listed) or none at all.

    Example:
        >>> check_metrics(["increase", "deletion"])
        ('deletion', 'increase')
    """
    asked = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    bad = [m for m in asked if m not in METRICS]
    if bad or not asked:
        raise UsageError(f"unknown faithfulness metric {bad[0]!r}: choose from {', '.join(METRICS)}" if bad else
                         f"no faithfulness metric asked for: choose from {', '.join(METRICS)}")
    return tuple(m for m in METRICS if m in asked)


def batch_faithfulness(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor,
                       scores: torch.Tensor, metrics: Sequence[str], schedule: Schedule, batch_size: int,
                       bar: Any = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The per-image values of ``metrics`` for one batch, and its curves: ``(values, curves)``.

    Args:
        model: the classifier.
        x: B x C x H x W network input on the model's device.
        maps: B x h x w raw maps (any resolution), on any device.
        classes: B class indices, the maps' classes.
        scores: B probabilities ``softmax(model(x))[classes]``.
        metrics: names from :data:`METRICS`.
        schedule: the curves' steps (:meth:`Schedule.of` for ``H x W``).
        batch_size: perturbed inputs per forward pass.
        bar: a tqdm bar advanced by the curves' forward passes, or None.
    """
    maps = maps.to(x.device)
    values: dict[str, torch.Tensor] = {}
    curves: dict[str, torch.Tensor] = {}
    if {"deletion", "insertion"} & set(metrics):
        deletion, insertion = causal_curves(model, x, maps, classes, scores, schedule, batch_size, bar)
        for name, curve in (("deletion", deletion), ("insertion", insertion)):
            if name in metrics:
                curves[name], values[name] = curve, auc(curve)
    if {"average_drop", "increase"} & set(metrics):
        drop, increase = drop_and_increase(model, x, maps, classes, scores, batch_size)
        for name, v in (("average_drop", drop), ("increase", increase)):
            if name in metrics:
                values[name] = v
    return values, curves


def schedule_settings(schedule: Schedule, height: int, width: int) -> dict[str, Any]:
    """What a result records of the curves' schedule and the substrates (the same for every method)."""
    return {"input_size": [height, width], "step": schedule.step, "steps": schedule.steps,
            "score": "softmax probability of the map's class", "order": "bicubic-upsampled map, highest first",
            "deletion_baseline": "zeros of the network input (the mean colour)",
            "insertion_baseline": f"Gaussian blur of the network input, {BLUR_SIZE}x{BLUR_SIZE}, sigma {BLUR_SIGMA:g}",
            "explanation": "bilinear(minmax(map)) * input, as torch-cam"}


class FaithfulnessAccumulator:
    """The faithfulness metrics of several ``(method, nwc)`` maps, batch by batch (for :func:`camloc.evaluate`).

    Args:
        model: the classifier.
        metrics: names from :data:`METRICS`.
        steps: the curves' number of steps (default one row of pixels per step, RISE's).
        batch_size: perturbed inputs per forward pass.
        progress: show a bar (on stderr) over each batch's forward passes.
    """

    def __init__(self, model: nn.Module, metrics: Sequence[str] = METRICS, steps: int | None = None,
                 batch_size: int = 32, progress: bool = False) -> None:
        self.model, self.metrics, self.steps = model, check_metrics(metrics), steps
        Schedule.of(1, 1, steps=steps)  # a bad count before any work
        self.batch_size, self.progress = batch_size, progress
        self.values: dict[tuple[str, bool], dict[str, list[torch.Tensor]]] = {}
        self.settings: dict[str, Any] = {}

    def add(self, x: torch.Tensor, outs: dict[tuple[str, bool], CAMOutput], keep: np.ndarray | None = None) -> None:
        """Score each request's maps (``maps[:, 0]``, for its ``classes[:, 0]``) on the batch ``x``.

        ``keep``: which of the batch's images to score (default all).
        """
        from tqdm import tqdm

        rows = torch.arange(len(x)) if keep is None else torch.as_tensor(np.flatnonzero(keep))
        x = x[rows.to(x.device)].to(model_dtype(self.model) or x.dtype)
        schedule = Schedule.of(x.shape[2], x.shape[3], steps=self.steps)
        self.settings = {"metrics": list(self.metrics), **schedule_settings(schedule, x.shape[2], x.shape[3])}
        curves = bool({"deletion", "insertion"} & set(self.metrics))
        done: dict[int, dict[str, torch.Tensor]] = {}
        for key, out in outs.items():
            if id(out) not in done:  # where NWC does not apply, both keys hold one output
                at = rows.to(out.maps.device)
                classes = out.classes[at, 0].to(x.device)
                scores = out.logits[at.to(out.logits.device)].softmax(1).gather(1, classes.view(-1, 1)).squeeze(1)
                with tqdm(total=2 * schedule.steps * len(x) * curves, disable=not self.progress, leave=False,
                          unit="fwd", desc=f"faithfulness ({key[0]})") as bar:
                    done[id(out)] = batch_faithfulness(self.model, x, out.maps[at, 0], classes, scores, self.metrics,
                                                       schedule, self.batch_size, bar)[0]
            for name, v in done[id(out)].items():
                self.values.setdefault(key, {}).setdefault(name, []).append(v.cpu())

    def means(self, key: tuple[str, bool]) -> dict[str, float]:
        """``{metric: mean}`` of one request over every image added (empty before any)."""
        return {name: float(torch.cat(parts).mean()) for name, parts in self.values.get(key, {}).items()}
