"""The gradient of class logits with respect to the feature map: one routine for every map that needs it.

A head that is not affine after pooling (an MLP, a class token, attention pooling) has no exact CAM;
its map is built from ``G[b, j] = d logit[b, c_j] / d F[b]``, the gradient of each chosen class's
logit with respect to the feature layer's output ``F``. The CAM of such a head
(:class:`~camloc.cam.extractor.CAMExtractor`) weighs each channel by ``sum_x G``; the Grad-CAM family
(:mod:`camloc.cam.methods`) weighs it in its own ways. Both get ``F`` and ``G`` from
:func:`head_gradients`.

The backbone runs without a graph: a forward hook on the feature layer swaps its output for a leaf
that requires grad, so only the head records one; the hook is removed in ``finally`` and the grad
mode restored, so the model and torch's state are as they were.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from ..utils.errors import ModelError
from . import heads
from .analysis import as_logits
from .heads import HeadSpec
from .hooks import forward_hooks


class HeadGradients(NamedTuple):
    """What one forward and one backward pass through the head give.

    Attributes:
        logits: B x K float32 logits (detached).
        classes: B x k indices of the classes whose gradients were taken.
        acts: B x C x h x w float32 activations of the feature layer.
        grads: B x k x C x h x w float32 gradients ``d logit[b, classes[b, j]] / d acts[b]``.
    """

    logits: torch.Tensor
    classes: torch.Tensor
    acts: torch.Tensor
    grads: torch.Tensor


def feature_grid(spec: HeadSpec, t: object, input_size: Sequence[int] | None = None, what: str = "output"
                 ) -> torch.Tensor:
    """A captured activation or gradient of the feature layer as a float32 B x C x H x W grid.

    :func:`camloc.cam.heads.as_grid` (token grids, NHWC), checked: every activation and gradient a
    gradient or score map uses passes through here.

    Raises:
        ModelError: the layer's output is not a tensor, or not a B x C x H x W grid.

    Example:
        >>> feature_grid(HeadSpec("features", "fc", "avg"), torch.ones(1, 8, 7, 7)).shape
        torch.Size([1, 8, 7, 7])
    """
    if not isinstance(t, torch.Tensor):
        raise ModelError(f"the feature layer {spec.feature_layer!r} returned {type(t).__name__}, not a tensor")
    t = heads.as_grid(spec, t, None if input_size is None else tuple(input_size))
    if t.ndim != 4:
        raise ModelError(
            f"the {what} of the feature layer {spec.feature_layer!r} has shape {tuple(t.shape)}, not B x C x H x W: "
            "this camloc cannot read it as a spatial map"
        )
    return t.float()


def head_gradients(model: nn.Module, layer: nn.Module, spec: HeadSpec, x: torch.Tensor,
                   pick: Callable[[torch.Tensor], torch.Tensor], refusal: str) -> HeadGradients:
    """One forward pass (the backbone without a graph) and one backward pass through the head.

    Args:
        model: the classifier (in eval mode; its state is left as it was).
        layer: its feature layer (``spec.feature_layer``).
        spec: the head analysis (layout of the feature layer's output).
        x: the B x 3 x H x W input batch.
        pick: the classes to differentiate, from the detached logits: B x K -> B x k indices.
        refusal: the one-line message under ``torch.inference_mode()``, which forbids the backward pass.

    Returns:
        :class:`HeadGradients`: logits, classes, activations and the gradient of each class's logit.

    Raises:
        ModelError: inside ``torch.inference_mode()``; the feature layer did not run or returned no
            tensor; the logits do not depend on it.
    """
    if torch.is_inference_mode_enabled():
        raise ModelError(refusal)
    captured: dict[str, torch.Tensor] = {}

    def substitute(_m, _args, out):
        if not isinstance(out, torch.Tensor):
            return None
        torch.set_grad_enabled(True)  # the backbone ran without a graph; the head records one, from this leaf
        leaf = out.detach().requires_grad_(True)
        captured["leaf"] = leaf
        return leaf.clone()  # not a leaf, so in-place ops of the head are allowed

    grad_mode = torch.is_grad_enabled()
    try:
        torch.set_grad_enabled(False)
        with forward_hooks([(layer, substitute)]):
            logits = as_logits(model(x))
        if "leaf" not in captured:
            raise ModelError(f"the feature layer {spec.feature_layer!r} did not return a tensor in the forward pass")
        leaf = captured["leaf"]
        if not logits.requires_grad:
            raise ModelError(f"the logits do not depend on the feature layer {spec.feature_layer!r}")
        idx = pick(logits.detach())
        grads = class_gradients(logits, leaf, idx)
    finally:
        torch.set_grad_enabled(grad_mode)
    size = x.shape[2:]
    acts = feature_grid(spec, leaf.detach(), size, "output")
    g = torch.stack([feature_grid(spec, grads[j], size, "gradient") for j in range(idx.shape[1])], dim=1)
    return HeadGradients(logits.detach().float(), idx, acts, g)


def class_gradients(logits: torch.Tensor, leaf: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``d logit[b, idx[b, j]] / d leaf[b]`` for every class column j: k x (leaf's shape).

    One backward pass for all k columns (``is_grads_batched``); a head whose operations cannot be
    batched that way falls back to one backward pass per column.

    Example:
        >>> leaf = torch.ones(1, 2, requires_grad=True)
        >>> class_gradients(leaf * torch.tensor([2.0, 3.0]), leaf, torch.tensor([[1]]))
        tensor([[[0., 3.]]])
    """
    k = idx.shape[1]
    onehot = torch.zeros((k, *logits.shape), dtype=logits.dtype, device=logits.device)
    onehot.scatter_(2, idx.t().unsqueeze(2), 1.0)
    if k == 1:
        (g,) = torch.autograd.grad(logits, leaf, grad_outputs=onehot[0])
        return g.unsqueeze(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # vmap's notes on operations without a batching rule
            (g,) = torch.autograd.grad(logits, leaf, grad_outputs=onehot, retain_graph=True, is_grads_batched=True)
        return g
    except (RuntimeError, NotImplementedError):
        return torch.stack([torch.autograd.grad(logits, leaf, grad_outputs=onehot[j], retain_graph=j < k - 1)[0]
                            for j in range(k)])
