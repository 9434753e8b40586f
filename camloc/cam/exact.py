"""The exact-head path of :class:`~camloc.cam.extractor.CAMExtractor`: one forward pass, two hooks, checked.

A head that is affine after pooling gives exact CAMs from the feature map ``F`` alone
(:func:`camloc.cam.heads.exact_maps`). :func:`capture` runs the model once with a hook on the feature
layer (its output) and one on the classifier (its input), then checks the analysis still holds: the
classifier's input must equal the analysed pooling of ``F`` (and the analysed norm after it),
``cls_in == norm(pool(F))``. A model changed since its analysis fails the check, and the extractor
analyses it again rather than mapping it wrongly. Heads that are not affine take the gradient path
instead (:mod:`camloc.cam.gradients`).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import nn

from ..utils.errors import ModelError
from . import heads
from .analysis import as_logits
from .heads import HeadSpec
from .hooks import forward_hooks


class Capture(NamedTuple):
    """One forward pass of an exact head.

    Attributes:
        logits: B x K logits (not detached).
        feats: the feature layer's output, as the layer gave it (see :func:`camloc.cam.heads.as_grid`).
        modules: the modules the analysis names, by name.
    """

    logits: torch.Tensor
    feats: torch.Tensor
    modules: dict[str, nn.Module]


def head_modules(model: nn.Module, spec: HeadSpec) -> dict[str, nn.Module]:
    """The modules a head analysis names, looked up by name (each call: the model may have changed).

    Raises:
        ModelError: the model no longer has one of them.
    """
    wanted = {spec.feature_layer, spec.classifier, spec.norm} - {None}
    found = {n: m for n, m in model.named_modules() if n in wanted}
    if len(found) != len(wanted):
        raise ModelError(f"the model no longer has the modules {sorted(wanted - set(found))}")
    return found


def capture(model: nn.Module, x: torch.Tensor, spec: HeadSpec) -> Capture | None:
    """One forward pass of an exact head, checked against its analysis.

    Runs under ``no_grad`` (or the caller's ``inference_mode``); the model must already be in eval mode.

    Returns:
        The logits, the feature layer's output and the modules; None when the model no longer
        pools as analysed (a hook did not fire, the output no longer fits the analysed grid, or the
        classifier's input is not the analysed pooling of the feature map).
    """
    modules = head_modules(model, spec)
    captured: dict[str, torch.Tensor] = {}

    def keep_output(_m, _args, out):
        captured["feats"] = out

    def keep_input(_m, args, _out):
        captured["cls_in"] = args[0]

    no_grad = contextlib.nullcontext() if torch.is_inference_mode_enabled() else torch.no_grad()
    with no_grad, forward_hooks([(modules[spec.feature_layer], keep_output), (modules[spec.classifier], keep_input)]):
        logits = as_logits(model(x))
    if "feats" not in captured or "cls_in" not in captured:
        return None
    feats, cls_in = captured["feats"], captured["cls_in"].flatten(1)
    norm = modules[spec.norm] if spec.norm else None
    size = tuple(x.shape[-2:])
    try:
        fmap = heads.features_for(spec, feats, size)
    except ModelError:  # the output no longer fits the analysed grid
        return None
    expected = heads.pooled(spec.pool, fmap, spec.theta_tap)
    if norm is not None:
        expected = heads.apply_norm(norm, expected)
    if not heads.close(cls_in, expected):
        return None
    return Capture(logits, feats, modules)
