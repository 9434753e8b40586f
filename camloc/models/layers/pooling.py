"""Global pooling layers chosen by name, as timm's ``SelectAdaptivePool2d`` is: ``tap`` or ``gap``.

The formulas live in :mod:`camloc.cam.pooling` (written once, shared with the head analysis);
each layer declares its ``pool_type`` so the analysis recognises it by what it does, not by its
class.

Example:
    >>> import torch
    >>> from camloc.models.layers.pooling import make_pool
    >>> pool = make_pool("tap", theta=0.1)
    >>> pool(torch.rand(2, 8, 7, 7)).shape
    torch.Size([2, 8])
"""

from __future__ import annotations

import torch
from torch import nn

from ...cam.pooling import TAP, pooled, tap


class ThresholdedAvgPool2d(nn.Module):
    """TAP: average over the pixels above ``theta x`` the channel's maximum (docs/protocols.md, "TAP").

    ``thr = theta max_hw F``, ``kept = F > thr`` (strict), ``p_c = sum(kept F) / max(count(kept), 1)``,
    so an all-zero channel pools to 0 and ``theta = 0`` averages the strictly positive pixels (not GAP).

    Args:
        theta: the threshold factor (0.1 in the authors' VGG16 config, 0.0 for ResNet50-SE).
        flatten: return B x C instead of B x C x 1 x 1.

    Example:
        >>> ThresholdedAvgPool2d(0.4)(torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]]))   # kept: 2 and 4
        tensor([[3.]])
    """

    pool_type = TAP

    def __init__(self, theta: float = 0.1, flatten: bool = True) -> None:
        super().__init__()
        if not 0.0 <= theta <= 1.0:
            raise ValueError(f"theta_tap must be in [0, 1], not {theta}")
        self.theta = float(theta)
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """TAP of a B x C x H x W feature map: B x C (or B x C x 1 x 1 without ``flatten``)."""
        out = tap(x, self.theta)
        return out if self.flatten else out[:, :, None, None]

    def extra_repr(self) -> str:
        """``theta=...`` in the module's ``repr``."""
        return f"theta={self.theta}"


class GlobalAvgPool2d(nn.Module):
    """Global average pooling to B x C: ``p_c = mean_hw F`` (the ``gap`` pool of a retrofitted head)."""

    pool_type = "avg"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial mean of a B x C x H x W feature map: B x C."""
        return pooled("avg", x)


#: Pool names a retrofit or a training recipe may ask for.
POOLS = ("tap", "gap")


def make_pool(pool: str, theta: float = 0.1) -> nn.Module:
    """A pool by name: ``tap`` (with ``theta``) or ``gap``."""
    if pool == "tap":
        return ThresholdedAvgPool2d(theta)
    if pool == "gap":
        return GlobalAvgPool2d()
    raise ValueError(f"pool must be one of {', '.join(POOLS)}, not {pool!r}")
