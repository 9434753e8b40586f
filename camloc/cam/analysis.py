"""Finding, by structure, the feature map and the classifier of any classifier, and how the head joins them.

:func:`analyze` runs one traced forward pass (:func:`camloc.cam.hooks.trace`) and reads it in steps,
each a function of its own:

1. :func:`find_feature_map`: the last module whose output lies on a spatial grid and that is not a
   pooling layer (:func:`grid_layout`): B x C x H x W (CNNs), B x H x W x C (timm's Swin), or
   B x N x C tokens that are some prefix tokens (class, distillation, register) plus a patch grid,
   by the model's own geometry (:func:`geometry`: timm's ``num_prefix_tokens``,
   ``patch_embed.grid_size``, dynamic image sizes) or, where it declares none, by the token count;
2. :func:`find_classifier`: the last Linear / 1x1 Conv after it whose output is the logits;
3. :func:`match_head`: the classifier's input compared with each pooled form of the feature map on
   its grid (:mod:`camloc.cam.pooling`, :func:`camloc.cam.heads.as_grid`); the first that matches
   makes the head exact (a ViT with ``global_pool="avg"`` and ``fc_norm``: ``avg`` with the norm
   folded), otherwise the head is ``"gradient"``;
4. :func:`reading_layer`: for a token map whose head is not exact (a ViT reading its class token),
   the latest token sequence whose patch tokens the logit depends on, and the reason
   (``"class token"``).

Example:
    >>> import timm, torch
    >>> from camloc.cam.analysis import analyze
    >>> spec = analyze(timm.create_model("resnet18"), torch.randn(2, 3, 224, 224))
    >>> spec.feature_layer, spec.classifier, spec.pool
    ('layer4', 'fc', 'avg')
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..utils.errors import ModelError
from . import heads
from .heads import HeadSpec
from .hooks import Record, Trace, eval_mode, forward_hooks, trace
from .pooling import POOL_KINDS, TAP, is_pool, pooled, tap_theta


def as_logits(out: Any) -> torch.Tensor:
    """The B x K logits tensor of a model's output (a tensor, an object with ``.logits``, or a tuple)."""
    if isinstance(out, torch.Tensor):
        logits = out
    elif hasattr(out, "logits") and isinstance(out.logits, torch.Tensor):
        logits = out.logits
    elif isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        logits = out[0]
    else:
        raise ModelError(f"the model returned {type(out).__name__}, not a logits tensor")
    if logits.ndim != 2:
        raise ModelError(f"the model returned a tensor of shape {tuple(logits.shape)}, not B x classes logits")
    return logits


def is_spatial(out: Any) -> bool:
    """A B x C x H x W tensor with more than one location."""
    return isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[2] * out.shape[3] > 1


#: Most non-patch tokens (class, distillation, register) a token sequence may start with.
MAX_PREFIX = 16
#: Largest ratio between the vertical and horizontal input pixels per grid cell of a plausible grid.
MAX_STRIDE_RATIO = 1.3
#: After token sequences, a 4-D output whose cells' ratio exceeds this is an attention tensor.
MAX_ATTENTION_RATIO = 4.0


@dataclass(frozen=True)
class Geometry:
    """What the model declares about its patch grid for one input (timm's conventions), and that input.

    Attributes:
        size: the network input's ``(H, W)``.
        grid: the patch grid ``(h, w)`` at that input (``patch_embed.grid_size``, or computed from the
            input size where the model takes dynamic image sizes), None if the model declares none.
        stride: ``patch_embed.patch_size`` where the grid follows the input size, else None.
        prefix: ``num_prefix_tokens`` (class, distillation, register tokens), None if undeclared.
    """

    size: tuple[int, int]
    grid: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    prefix: int | None = None


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    return None


def geometry(model: nn.Module, x: torch.Tensor) -> Geometry:
    """The patch geometry ``model`` declares for input ``x`` (see :class:`Geometry`).

    Read from timm's attributes: ``num_prefix_tokens``, ``patch_embed.grid_size`` and, with
    ``dynamic_img_size`` (on the model or its patch embedding), ``patch_embed.dynamic_feat_size``
    or ``(H // ph, W // pw)`` from ``patch_embed.patch_size``. A model without them declares nothing;
    its token grids are inferred from the token count (:func:`grid_layout`).

    Example:
        >>> import timm, torch
        >>> from camloc.cam.analysis import geometry
        >>> geometry(timm.create_model("vit_tiny_patch16_224"), torch.randn(1, 3, 224, 224))
        Geometry(size=(224, 224), grid=(14, 14), stride=None, prefix=1)
    """
    size = (int(x.shape[-2]), int(x.shape[-1]))
    prefix = getattr(model, "num_prefix_tokens", None)
    prefix = int(prefix) if isinstance(prefix, int) and not isinstance(prefix, bool) else None
    embed = getattr(model, "patch_embed", None)
    grid, stride = _pair(getattr(embed, "grid_size", None)), None
    patch = _pair(getattr(embed, "patch_size", None))
    if embed is not None and patch is not None and (
        getattr(model, "dynamic_img_size", False) is True or getattr(embed, "dynamic_img_size", False) is True
    ):
        stride = patch
        dynamic = getattr(embed, "dynamic_feat_size", None)
        grid = _pair(tuple(dynamic(size))) if callable(dynamic) else (size[0] // patch[0], size[1] // patch[1])
    return Geometry(size, grid, stride, prefix)


def _mismatch(size: tuple[int, int], h: int, w: int) -> float:
    """``|log(sh / sw)|`` for the input pixels per cell ``sh = H / h``, ``sw = W / w`` (0: square cells)."""
    return abs(math.log((size[0] / h) / (size[1] / w)))


def plausible(size: tuple[int, int], h: int, w: int) -> bool:
    """A grid of ``h x w`` cells (more than one) whose cells cover about as many input rows as columns."""
    return h >= 1 and w >= 1 and h * w > 1 and _mismatch(size, h, w) <= math.log(MAX_STRIDE_RATIO)


def infer_grid(tokens: int, geo: Geometry) -> tuple[int, tuple[int, int]] | None:
    """``(prefix, (h, w))`` with ``prefix + h w = tokens`` for a token sequence, or None.

    The declared grid first (``prefix = tokens - h w``, at most :data:`MAX_PREFIX`); otherwise the
    factorisation whose cells are squarest on the input (:func:`plausible`), preferring the declared
    prefix count, then the fewest prefix tokens.

    Example:
        >>> infer_grid(50, Geometry((224, 224)))        # a class token and 7 x 7 patches
        (1, (7, 7))
    """
    if geo.grid is not None and 0 <= tokens - geo.grid[0] * geo.grid[1] <= MAX_PREFIX:
        return tokens - geo.grid[0] * geo.grid[1], geo.grid
    best = None
    for prefix in range(0, min(MAX_PREFIX, tokens - 2) + 1):
        cells = tokens - prefix
        for h in range(1, cells + 1):
            if cells % h == 0 and plausible(geo.size, h, cells // h):
                key = (_mismatch(geo.size, h, cells // h), prefix != geo.prefix, prefix)
                if best is None or key < best[0]:
                    best = (key, prefix, (h, cells // h))
    return (best[1], best[2]) if best is not None else None


def grid_layout(out: Any, batch: int, geo: Geometry) -> HeadSpec | None:
    """How a module output lies on a spatial grid, as the layout fields of a :class:`HeadSpec`, or None.

    * a B x N x C token sequence whose N is some prefix tokens plus a patch grid (:func:`infer_grid`):
      ``tokens``;
    * a 4-D tensor that is a plausible grid read as B x H x W x C but not read as B x C x H x W:
      ``nhwc`` (timm's Swin);
    * any other B x C x H x W tensor with more than one location: ``nchw``.

    Only outputs with the batch's own leading size count (window attention runs on B * windows).
    """
    if not isinstance(out, torch.Tensor) or out.ndim not in (3, 4) or out.shape[0] != batch:
        return None
    if out.ndim == 3:
        found = infer_grid(out.shape[1], geo)
        if found is None:
            return None
        prefix, grid = found
        return HeadSpec("", None, "gradient", layout="tokens", prefix_tokens=prefix, grid=grid, stride=geo.stride)
    if plausible(geo.size, out.shape[1], out.shape[2]) and not plausible(geo.size, out.shape[2], out.shape[3]):
        return HeadSpec("", None, "gradient", layout="nhwc")
    return HeadSpec("", None, "gradient") if is_spatial(out) else None


class Candidates:
    """Which module outputs may be the feature map, read in the order the forward pass produces them.

    An output is a candidate when it lies on a grid (:func:`grid_layout`) and is not a pooling
    layer's, except

    * a Linear's (or 1x1 conv's) token output: a per-token projection or classifier (VOLO's
      auxiliary head), not features;
    * after a token sequence, a 4-D output with a side as long as one, or whose cells would be more
      than :data:`MAX_ATTENTION_RATIO` times taller than wide (or wider than tall): an attention's
      queries, keys, values or weights (B x heads x N x d, B x heads x N x N), not a B x C x H x W map.
    """

    def __init__(self, batch: int, geo: Geometry):
        self.batch, self.geo, self.token_counts = batch, geo, set()

    def layout(self, module: nn.Module, out: Any) -> HeadSpec | None:
        """The candidate's layout (see :func:`grid_layout`), or None; call once per output, in order."""
        if is_pool(module):
            return None
        spec = grid_layout(out, self.batch, self.geo)
        if spec is None:
            return None
        if spec.layout == "tokens":
            self.token_counts.add(out.shape[1])
            return spec if heads.linear_params(module) is None else None
        if spec.layout == "nchw" and self.token_counts and (
            {out.shape[2], out.shape[3]} & self.token_counts
            or _mismatch(self.geo.size, out.shape[2], out.shape[3]) > math.log(MAX_ATTENTION_RATIO)
        ):
            return None
        return spec


def traced(model: nn.Module, x: torch.Tensor, feature_layer: str | None = None) -> Trace:
    """The forward pass the analysis reads, with a copy of the latest feature-map candidate.

    The copy is taken when the candidate is produced: the head may change the tensor in place
    afterwards (torchvision's DenseNet applies ReLU in place).
    """
    geo = geometry(model, x)
    candidates = Candidates(x.shape[0], geo)

    def candidate(name: str, module: nn.Module, out: Any) -> bool:
        if feature_layer:
            return name == feature_layer and grid_layout(out, x.shape[0], geo) is not None
        return candidates.layout(module, out) is not None

    return trace(model, x, snapshot=candidate)


def find_feature_map(
    model: nn.Module, run: Trace, feature_layer: str | None = None, geo: Geometry | None = None
) -> tuple[int, HeadSpec]:
    """Index in ``run.records`` of the feature map (see the module docs) and its layout.

    The feature map is the last :class:`Candidates` output: a CNN's B x C x H x W map, a Swin's
    B x H x W x C map, a vision transformer's token sequence.

    Returns:
        ``(index, layout)``: ``layout`` is a :class:`HeadSpec` whose layout fields are set.

    Raises:
        ModelError: the model has no spatial feature map at its end, or the named layer does not
            return one.
    """
    records = run.records
    batch = as_logits(run.output).shape[0]
    geo = geo or Geometry((0, 0))
    if feature_layer is not None:
        pos = run.last_index(feature_layer)
        layout = grid_layout(records[pos].output, batch, geo) if pos is not None else None
        if layout is None:
            raise ModelError(
                f"module {feature_layer!r} does not return a spatial feature map "
                "(B x C x H x W, B x H x W x C, or B x N x C tokens on a patch grid)"
            )
        return pos, layout
    candidates = Candidates(batch, geo)
    found = [(i, candidates.layout(r.module, r.output)) for i, r in enumerate(records)]
    found = [(i, layout) for i, layout in found if layout is not None]
    if not found:
        shapes = sorted({tuple(r.output.shape[1:]) for r in records if isinstance(r.output, torch.Tensor)}, key=len)
        raise ModelError(
            f"{type(model).__name__} has no spatial feature map (no module returns B x C x H x W, B x H x W x C "
            f"or patch tokens; output shapes seen include {shapes[-3:]}): name the feature layer with feature_layer="
        )
    pos, layout = found[-1]
    tokens = [
        r.name for r in records[pos + 1:]
        if isinstance(r.output, torch.Tensor) and r.output.ndim == 3 and r.output.shape[0] == batch
        and r.output.shape[1] > 1 and heads.linear_params(r.module) is None and not is_pool(r.module)
    ]
    if tokens:
        raise ModelError(
            f"{type(model).__name__} has no spatial feature map at its end: its last spatial output "
            f"({records[pos].name}) is followed by token sequences ({tokens[0]}) that fit no patch grid; "
            "name the feature layer with feature_layer="
        )
    return pos, layout


def find_classifier(head: list[Record], logits: torch.Tensor, classifier: str | None = None) -> Record | None:
    """The head's final Linear / 1x1 Conv: the named one, or the last whose output is the logits."""
    if classifier is not None:
        found = [r for r in head if r.name == classifier]
        return found[-1] if found and heads.linear_params(found[-1].module) is not None else None
    found = [
        r for r in head
        if heads.linear_params(r.module) is not None and isinstance(r.output, torch.Tensor)
        and r.output.numel() == logits.numel() and torch.equal(r.output.reshape(logits.shape), logits)
    ]
    return found[-1] if found else None


def match_head(
    feature_layer: str, feats: torch.Tensor, head: list[Record], classifier: Record,
    layout: HeadSpec | None = None, input_size: tuple[int, int] | None = None,
) -> HeadSpec | None:
    """The pooled form that turns ``feats`` into the classifier's input, or None if none does.

    Tried in order: a declared TAP pool, each of :data:`~camloc.cam.pooling.POOL_KINDS`, then
    GAP followed by a foldable LayerNorm / BatchNorm; each on ``F`` and on ``relu(F)``, where ``F``
    is ``feats`` on its grid (:func:`camloc.cam.heads.as_grid` with the layout fields of ``layout``).
    """
    base = replace(layout or HeadSpec("", None, "gradient"), feature_layer=feature_layer, classifier=classifier.name)
    cls_in = classifier.input.flatten(1)  # its own dtype: close() allows for half precision

    def grid(relu: bool) -> torch.Tensor:
        return heads.features_for(replace(base, pool="avg", relu=relu), feats, input_size)

    for relu in (False, True):
        fmap = grid(relu)
        for r in head:
            theta = tap_theta(r.module)
            if theta is not None and heads.close(cls_in, pooled(TAP, fmap, theta)):
                return replace(base, pool=TAP, relu=relu, theta_tap=theta)
    for relu in (False, True):
        fmap = grid(relu)
        for kind in POOL_KINDS:
            if heads.close(cls_in, pooled(kind, fmap)):
                return replace(base, pool=kind, relu=relu)
        avg = fmap.mean(dim=(2, 3))
        batch, channels = avg.shape
        for r in head:
            if (
                heads.foldable(r.module, channels)
                and isinstance(r.input, torch.Tensor) and r.input.numel() == avg.numel()
                and heads.close(r.input.reshape(batch, -1), avg)
                and heads.close(cls_in, heads.apply_norm(r.module, avg))
            ):
                return replace(base, pool="avg", relu=relu, norm=r.name)
    return None


#: How many of the latest token sequences :func:`reading_layer` probes first (all of them if none fits).
PROBE_LAST = 16


def reading_layer(model: nn.Module, x: torch.Tensor, run: Trace, pos: int, layout: HeadSpec) -> tuple[int, str]:
    """For a token feature map whose head is not exact: the layer whose patch tokens the logit reads, and why.

    A head that reads the class token (timm's ``global_pool="token"``) has no gradient at the last
    token sequence's patch tokens: the final norm acts token by token. The candidates are the
    outputs of the feature map's shape up to ``run.records[pos]``, Linear / 1x1 conv outputs (an
    attention's value projection) excepted. One forward and backward pass (without touching the
    model's parameters: a zero leaf ``delta`` is added to each candidate output, and gradients are
    recorded from the first one on) gives ``d logit / d tokens`` at each; the latest candidate with a
    non-zero gradient at a patch token is the map (a ViT's last ``norm1``, before the last
    attention). The :data:`PROBE_LAST` latest candidates are probed first, all of them if none fits.
    The reason is read from the gradient at ``run.records[pos]``: which prefix tokens the logit
    depends on there (``"class token"``), or ``"not affine after pooling"`` where it depends on
    patch tokens.

    Returns:
        ``(index in run.records, reason)``.

    Raises:
        ModelError: no token sequence's patch tokens reach the logits.
    """
    shape = run.records[pos].output.shape
    seen: dict[str, int] = {}
    calls: list[tuple[int, str, int]] = []  # (record index, module name, its call number)
    for i, r in enumerate(run.records[: pos + 1]):
        if isinstance(r.output, torch.Tensor) and r.output.shape == shape and heads.linear_params(r.module) is None:
            calls.append((i, r.name, seen.get(r.name, 0)))
        seen[r.name] = seen.get(r.name, 0) + 1
    if len(calls) > PROBE_LAST:
        found = _probe(model, x, calls[-PROBE_LAST:], layout.prefix_tokens)
        if found[0] is not None:
            return found[0], found[1]
    index, reason = _probe(model, x, calls, layout.prefix_tokens)
    if index is None:
        raise ModelError(
            f"{type(model).__name__}'s logits depend on none of the patch tokens of its {tuple(shape)} token "
            "sequences (the head reads only prefix tokens): name the feature layer with feature_layer="
        )
    return index, reason


def _probe(model: nn.Module, x: torch.Tensor, calls: list[tuple[int, str, int]], prefix: int) -> tuple[int | None, str]:
    """The latest of ``calls`` whose patch tokens have a non-zero logit gradient, and the head's reason."""
    wanted = {(name, k): i for i, name, k in calls}
    count: dict[str, int] = {}
    deltas: list[tuple[int, torch.Tensor]] = []

    def probe(name: str):
        def hook(_m, _args, out):
            k = count.get(name, 0)
            count[name] = k + 1
            if (name, k) in wanted and isinstance(out, torch.Tensor) and out.is_floating_point():
                torch.set_grad_enabled(True)  # the graph starts here: the backbone before it runs without one
                delta = torch.zeros_like(out, requires_grad=True)
                deltas.append((wanted[(name, k)], delta))
                return out + delta
            return None

        return hook

    names = {name for _, name, _ in calls}
    modules = [(m, probe(n)) for n, m in model.named_modules() if n in names]
    grad_mode = torch.is_grad_enabled()
    with contextlib.ExitStack() as stack:
        if torch.is_inference_mode_enabled():
            stack.enter_context(torch.inference_mode(False))
            x = x.clone()
        stack.enter_context(eval_mode(model))
        try:
            torch.set_grad_enabled(False)
            with forward_hooks(modules):
                logits = as_logits(model(x))
            if not deltas or not logits.requires_grad:
                return None, "prefix tokens"
            target = logits.gather(1, logits.detach().argmax(dim=1, keepdim=True)).sum()
            grads = torch.autograd.grad(target, [d for _, d in deltas], allow_unused=True)
        finally:
            torch.set_grad_enabled(grad_mode)
    last = grads[-1]
    if last is not None and bool(last[:, prefix:].abs().amax() > 0):
        reason = "not affine after pooling"
    else:
        read = [] if last is None else [i for i in range(prefix) if bool(last[:, i].abs().amax() > 0)]
        reason = _prefix_reason(model, read)
    for (index, _), g in zip(reversed(deltas), reversed(grads), strict=True):
        if g is not None and bool(g[:, prefix:].abs().amax() > 0):
            return index, reason
    return None, reason


def _prefix_reason(model: nn.Module, read: list[int]) -> str:
    """Which prefix tokens the head reads, in words (timm puts the class token first, then distillation)."""
    if read == [0]:
        return "class token"
    if read == [0, 1] and getattr(model, "dist_token", None) is not None:
        return "class and distillation tokens"
    return f"prefix tokens {read}" if read else "prefix tokens"


def analyze(
    model: nn.Module, x: torch.Tensor, feature_layer: str | None = None, classifier: str | None = None,
    run: Trace | None = None,
) -> HeadSpec:
    """Find the feature map and classifier of ``model`` and how the head joins them.

    Args:
        model: any classifier (left as it was: flags restored, hooks removed).
        x: a small input batch (two images are enough).
        feature_layer: the feature layer's module name, to override the search.
        classifier: the classifier's module name, to override the search.
        run: a trace of ``model`` on ``x`` made by :func:`traced`, to avoid running it again.

    Returns:
        A :class:`HeadSpec`; ``spec.exact`` tells an exact CAM from a gradient map, ``spec.reason``
        says why a map is a gradient (``"class token"``, ``"not affine after pooling"``,
        ``"no single classifier"``), ``spec.layout`` how the feature layer's output lies on its grid.

    Raises:
        ModelError: when the model has no spatial feature map.
    """
    run = run or traced(model, x, feature_layer)
    logits = as_logits(run.output)
    geo = geometry(model, x)
    pos, layout = find_feature_map(model, run, feature_layer, geo)
    name = run.records[pos].name
    feats = run.snapshot if run.snapshot_index == pos else run.records[pos].output
    head = run.records[pos + 1:]
    found = find_classifier(head, logits, classifier)
    spec = match_head(name, feats, head, found, layout, geo.size) if found is not None else None
    if spec is not None:
        return spec
    reason = "not affine after pooling" if found is not None else "no single classifier"
    if layout.layout == "tokens" and feature_layer is None:
        pos, token_reason = reading_layer(model, x, run, pos, layout)
        name = run.records[pos].name
        if token_reason != "not affine after pooling":  # the head reads prefix tokens
            reason = token_reason
    return replace(layout, feature_layer=name, classifier=None, pool="gradient", reason=reason)
