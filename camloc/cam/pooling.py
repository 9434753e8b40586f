"""The pooling formulas a CAM head may apply to the feature map, each written once.

``F`` is the feature map (B x C x H x W); each formula gives the B x C' vector the classifier sees.

==============  =========================================================================
``avg``         ``mean_hw F`` (GAP)
``max``         ``max_hw F``
``avgmax``      ``(mean_hw F + max_hw F) / 2`` (timm ``avgmax``)
``catavgmax``   ``[mean_hw F ; max_hw F]`` (timm ``catavgmax``)
``tap``         thresholded average pooling (docs/protocols.md, "TAP"), per sample and channel:
                ``thr = theta max_hw F``, ``kept = F > thr`` (strict),
                ``p = sum(kept F) / max(count(kept), 1)``; ``theta = 0`` is *not* GAP (it
                averages the strictly positive pixels only)
==============  =========================================================================

Pooling modules declare their kind as ``pool_type`` (timm's ``SelectAdaptivePool2d`` convention;
camloc's TAP layer declares ``"tap"`` and its ``theta``), which is how the head analysis tells a
TAP head from GAP without knowing the module's class.

Example:
    >>> import torch
    >>> from camloc.cam.pooling import pooled
    >>> pooled("tap", torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]]), theta=0.4)   # kept: 2 and 4
    tensor([[3.]])
"""

from __future__ import annotations

import torch
from torch import nn

#: Pool kinds whose CAM is affine in the feature map (matched by the head analysis).
POOL_KINDS = ("avg", "max", "avgmax", "catavgmax")
#: Thresholded average pooling.
TAP = "tap"

#: torch's pools; the 1-D ones pool token sequences (Hugging Face's Swin averages its B x C x N tokens with one).
_TORCH_POOLS: tuple[type, ...] = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d,
                                  nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d, nn.AvgPool1d, nn.MaxPool1d)


def tap(feats: torch.Tensor, theta: float) -> torch.Tensor:
    """Thresholded average pooling of B x C x H x W features to B x C (the formula above)."""
    kept = (feats > theta * feats.amax(dim=(2, 3), keepdim=True)).to(feats.dtype)
    return (feats * kept).sum(dim=(2, 3)) / kept.sum(dim=(2, 3)).clamp_min(1.0)


def pooled(kind: str, feats: torch.Tensor, theta: float = 0.0) -> torch.Tensor:
    """The vector a pool kind feeds the classifier, B x C' (``theta`` applies to ``tap`` only)."""
    if kind == TAP:
        return tap(feats, theta)
    avg = feats.mean(dim=(2, 3))
    if kind == "avg":
        return avg
    mx = feats.amax(dim=(2, 3))
    if kind == "max":
        return mx
    if kind == "avgmax":
        return 0.5 * (avg + mx)
    if kind == "catavgmax":
        return torch.cat([avg, mx], dim=1)
    raise ValueError(f"unknown pool kind {kind!r}")


def is_pool(module: nn.Module) -> bool:
    """A pooling layer: torch's 1-D and 2-D pools, or any module that declares a ``pool_type``."""
    return isinstance(module, _TORCH_POOLS) or isinstance(getattr(module, "pool_type", None), str)


def tap_theta(module: nn.Module) -> float | None:
    """The threshold of a module that declares itself a TAP pool (``pool_type == "tap"``), else None."""
    if getattr(module, "pool_type", None) == TAP:
        return float(module.theta)
    return None
