"""Finding, by structure, the feature map and the classifier of any CNN, and how the head joins them.

:func:`analyze` runs one traced forward pass (:func:`camloc.cam.hooks.trace`) and reads it in three
steps, each a function of its own:

1. :func:`find_feature_map`: the last module whose output is spatial (B x C x H x W, H W > 1) and
   that is not a pooling layer;
2. :func:`find_classifier`: the last Linear / 1x1 Conv after it whose output is the logits;
3. :func:`match_head`: the classifier's input compared with each pooled form of the feature map
   (:mod:`camloc.cam.pooling`, :mod:`camloc.cam.heads`); the first that matches makes the head
   exact, otherwise the head is ``"gradient"``.

Example:
    >>> spec = analyze(timm.create_model("resnet18"), torch.randn(2, 3, 224, 224))
    >>> spec.feature_layer, spec.classifier, spec.pool
    ('layer4', 'fc', 'avg')
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from ..errors import ModelError
from . import heads
from .heads import HeadSpec
from .hooks import Record, Trace, trace
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


def traced(model: nn.Module, x: torch.Tensor, feature_layer: Optional[str] = None) -> Trace:
    """The forward pass the analysis reads, with a copy of the latest feature-map candidate.

    The copy is taken when the candidate is produced: the head may change the tensor in place
    afterwards (torchvision's DenseNet applies ReLU in place).
    """

    def candidate(name: str, module: nn.Module, out: Any) -> bool:
        wanted = name == feature_layer if feature_layer else not is_pool(module)
        return wanted and is_spatial(out)

    return trace(model, x, snapshot=candidate)


def find_feature_map(model: nn.Module, run: Trace, feature_layer: Optional[str] = None) -> int:
    """Index in ``run.records`` of the feature map (see the module docs).

    Raises:
        ModelError: the model has no spatial feature map at its end (a ViT, say), or the named
            layer does not return one.
    """
    records = run.records
    if feature_layer is not None:
        pos = run.last_index(feature_layer)
        if pos is None or not is_spatial(records[pos].output):
            raise ModelError(f"module {feature_layer!r} does not return a spatial B x C x H x W feature map")
        return pos
    spatial = [i for i, r in enumerate(records) if is_spatial(r.output) and not is_pool(r.module)]
    if not spatial:
        shapes = sorted({tuple(r.output.shape[1:]) for r in records if isinstance(r.output, torch.Tensor)}, key=len)
        raise ModelError(
            f"{type(model).__name__} has no spatial feature map (no module returns B x C x H x W with H*W > 1; "
            f"output shapes seen include {shapes[-3:]}): CAM needs a convolutional feature map, "
            "so use a CNN or name a 4-D feature layer with feature_layer="
        )
    pos = spatial[-1]
    tokens = [r.name for r in records[pos + 1:] if isinstance(r.output, torch.Tensor) and r.output.ndim == 3]
    if tokens:
        raise ModelError(
            f"{type(model).__name__} has no spatial feature map at its end: its last B x C x H x W output "
            f"({records[pos].name}) is followed by token sequences ({tokens[0]}), as in a vision transformer; "
            "CAM needs a CNN, or name a 4-D feature layer with feature_layer="
        )
    return pos


def find_classifier(head: list[Record], logits: torch.Tensor, classifier: Optional[str] = None) -> Optional[Record]:
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


def match_head(feature_layer: str, feats: torch.Tensor, head: list[Record], classifier: Record) -> Optional[HeadSpec]:
    """The pooled form that turns ``feats`` into the classifier's input, or None if none does.

    Tried in order: a declared TAP pool, each of :data:`~camloc.cam.pooling.POOL_KINDS`, then
    GAP followed by a foldable LayerNorm / BatchNorm; each on ``F`` and on ``relu(F)``.
    """
    cls_in = classifier.input.flatten(1)  # its own dtype: close() allows for half precision
    name = classifier.name
    for relu in (False, True):
        fmap = heads.features_for(HeadSpec(feature_layer, name, "avg", relu), feats)
        for r in head:
            theta = tap_theta(r.module)
            if theta is not None and heads.close(cls_in, pooled(TAP, fmap, theta)):
                return HeadSpec(feature_layer, name, TAP, relu, None, theta)
    for relu in (False, True):
        fmap = heads.features_for(HeadSpec(feature_layer, name, "avg", relu), feats)
        for kind in POOL_KINDS:
            if heads.close(cls_in, pooled(kind, fmap)):
                return HeadSpec(feature_layer, name, kind, relu)
        avg = fmap.mean(dim=(2, 3))
        batch, channels = avg.shape
        for r in head:
            if (
                heads.foldable(r.module, channels)
                and isinstance(r.input, torch.Tensor) and r.input.numel() == avg.numel()
                and heads.close(r.input.reshape(batch, -1), avg)
                and heads.close(cls_in, heads.apply_norm(r.module, avg))
            ):
                return HeadSpec(feature_layer, name, "avg", relu, r.name)
    return None


def analyze(
    model: nn.Module, x: torch.Tensor, feature_layer: Optional[str] = None, classifier: Optional[str] = None,
    run: Optional[Trace] = None,
) -> HeadSpec:
    """Find the feature map and classifier of ``model`` and how the head joins them.

    Args:
        model: any classifier (left as it was: flags restored, hooks removed).
        x: a small input batch (two images are enough).
        feature_layer, classifier: module names, to override the search.
        run: a trace of ``model`` on ``x`` made by :func:`traced`, to avoid running it again.

    Returns:
        A :class:`HeadSpec`; ``spec.exact`` tells an exact CAM from a gradient map.

    Raises:
        ModelError: when the model has no spatial feature map (a ViT, say).
    """
    run = run or traced(model, x, feature_layer)
    logits = as_logits(run.output)
    pos = find_feature_map(model, run, feature_layer)
    name = run.records[pos].name
    feats = run.snapshot if run.snapshot_index == pos else run.records[pos].output
    head = run.records[pos + 1:]
    found = find_classifier(head, logits, classifier)
    spec = match_head(name, feats, head, found) if found is not None else None
    return spec or HeadSpec(name, None, "gradient")
