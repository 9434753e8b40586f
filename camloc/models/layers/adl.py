"""Attention-based Dropout Layer (ADL; Choe and Shim, CVPR 2019): hide the most discriminative part.

For a feature map ``F`` (B x C x H x W), in training:

    ``A = mean_c F``                                   (self-attention, B x 1 x H x W)
    ``D = [A < gamma * max_hw A]``                     (drop mask, per sample: 0 on the most active part)
    ``I = sigmoid(A)``                                 (importance map)
    ``u ~ U[0, 1)``, one draw per forward pass for the whole batch
    ``out = F * D`` if ``u + drop_rate >= 1`` (probability ``drop_rate``), else ``out = F * I``.

In eval mode ADL is the identity. Following the reference, the branch rule is
``floor(u + drop_rate) == 1`` with ``u`` drawn as a float32 scalar on the CPU from torch's global RNG,
so a seeded run takes the same branches as the reference code.

References: clovaai/wsolevaluation ``wsol/method/adl.py`` (the evaluation study's ADL, where it is
inserted in each backbone) and junsukchoe/ADL (the authors' code). Defaults: ``drop_rate = 0.75``
and ``gamma = 0.9``, wsolevaluation's ``config.py`` (``--adl_threshold 0.9``) and the authors'
ResNet50-SE command; ``0.8``, the default of wsolevaluation's ``ADL`` class, is chosen by value.

Example:
    >>> import torch
    >>> from camloc.models.layers.adl import ADL
    >>> adl = ADL(drop_rate=0.75, gamma=0.9).train()
    >>> adl(torch.rand(2, 64, 14, 14)).shape
    torch.Size([2, 64, 14, 14])
"""

from __future__ import annotations

import torch
from torch import nn


def attention_maps(x: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ADL's maps of a feature batch: attention ``A``, drop mask ``D`` and importance map ``I``.

    Args:
        x: B x C x H x W features.
        gamma: the drop threshold factor: ``D = [A < gamma * max_hw A]`` (strict), per sample.

    Returns:
        ``(A, D, I)``, each B x 1 x H x W in ``x``'s dtype; ``D`` holds 0 and 1, ``I = sigmoid(A)``.
    """
    attention = x.mean(dim=1, keepdim=True)
    peak = attention.amax(dim=(2, 3), keepdim=True)
    drop = (attention < gamma * peak).to(x.dtype)
    return attention, drop, torch.sigmoid(attention)


class ADL(nn.Module):
    """Attention-based Dropout Layer: ``F * D`` with probability ``drop_rate``, else ``F * sigmoid(A)``.

    See the module docs for the formulas. One random number decides the branch for the whole batch.

    Args:
        drop_rate: probability of the drop-mask branch, in [0, 1] (default 0.75).
        gamma: drop threshold as a fraction of each sample's attention maximum, in [0, 1]
            (default 0.9; wsolevaluation's ``ADL`` class default 0.8 is accepted by value).

    Example:
        >>> adl = ADL(0.75, 0.9)
        >>> x = torch.rand(2, 8, 7, 9)
        >>> torch.equal(adl.eval()(x), x)   # identity in eval mode
        True
    """

    def __init__(self, drop_rate: float = 0.75, gamma: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"ADL drop_rate must be in [0, 1], not {drop_rate}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"ADL gamma (drop threshold) must be in [0, 1], not {gamma}")
        self.drop_rate = float(drop_rate)
        self.gamma = float(gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x * D`` or ``x * sigmoid(A)`` in training (one draw for the batch, :meth:`draws_drop`); ``x`` in eval."""
        if not self.training:
            return x
        _, drop, importance = attention_maps(x, self.gamma)
        return x * (drop if self.draws_drop() else importance)

    def draws_drop(self) -> bool:
        """One draw of the branch: True (drop mask) with probability ``drop_rate``.

        ``u`` is a float32 scalar from torch's global CPU RNG; the drop branch is taken when
        ``u + drop_rate >= 1`` (the reference's ``floor(u + drop_rate)``), with no device sync.
        """
        u = torch.rand((), dtype=torch.float32)
        return bool(u + self.drop_rate >= 1.0)

    def extra_repr(self) -> str:
        """The settings shown in the module's repr."""
        return f"drop_rate={self.drop_rate}, gamma={self.gamma}"
