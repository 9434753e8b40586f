"""Hide-and-Seek (HaS): hide random square patches of the training image (Singh and Lee, ICCV 2017).

The image (already normalised) is cut into ``patch x patch`` pixel patches, the last row and column
of patches partial where ``patch`` does not divide the size, and each patch of each image is set to
zero independently with probability ``drop_rate``:

    ``keep[b, i, j] = (u[b, i, j] >= drop_rate)``,  ``u ~ U[0, 1)`` i.i.d. per image and patch,
    ``mask[b, 0, y, x] = keep[b, y // patch, x // patch]``,  ``out = x * mask``.

Reference: clovaai/wsolevaluation, ``wsol/method/has.py`` (the evaluation study's HaS). Differences,
on purpose:

* upstream drops a patch when ``random.random() <= drop_rate`` (Python's RNG); camloc draws with
  torch (the global RNG, or a ``generator``) and drops when ``u < drop_rate``, so seeding torch and
  resuming torch's RNG state reproduce a run, and ``drop_rate = 0`` drops nothing (the two rules
  differ only on a set of probability zero);
* upstream bounds both axes by the image height (correct for square inputs only); here rows are
  bounded by the height and columns by the width, so non-square inputs are hidden correctly;
* upstream writes into the batch in place; here a new tensor is returned.

Defaults: ``patch = 32`` (HaS-32, the setting most WSOL papers report) and ``drop_rate = 0.5``;
wsolevaluation's command-line default grid, 4 pixels (``config.py --has_grid_size 4``), is chosen by
value: ``HideAndSeek(patch=4)``.

Example:
    >>> import torch
    >>> from camloc.models.layers.has import HideAndSeek, has_mask
    >>> g = torch.Generator().manual_seed(0)
    >>> has_mask(2, 40, 72, patch=16, drop_rate=0.5, generator=g).shape   # 3 x 5 patches, partial edges
    torch.Size([2, 1, 40, 72])
    >>> layer = HideAndSeek(patch=32, drop_rate=0.5).train()
    >>> layer(torch.randn(4, 3, 224, 224)).shape
    torch.Size([4, 3, 224, 224])
"""

from __future__ import annotations

import torch
from torch import nn


def _check(patch: int, drop_rate: float) -> None:
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise ValueError(f"patch must be a positive number of pixels, not {patch!r}")
    if not 0.0 <= drop_rate <= 1.0:
        raise ValueError(f"drop_rate must be in [0, 1], not {drop_rate}")


def has_mask(
    batch: int,
    height: int,
    width: int,
    patch: int,
    drop_rate: float,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The Hide-and-Seek mask: B x 1 x H x W, 0 on hidden patches and 1 elsewhere (float32).

    One uniform number per image and patch, ``u`` of shape ``B x ceil(H / patch) x ceil(W / patch)``,
    hides the patch when ``u < drop_rate``; each grid cell is then repeated ``patch`` times along
    both axes and the result cropped to ``H x W`` (so the last row and column of patches are partial).

    Args:
        batch: number of images B.
        height: image height H in pixels.
        width: image width W in pixels.
        patch: side of a square patch in pixels (32 for HaS-32; wsolevaluation's default grid is 4).
        drop_rate: probability that a patch is hidden, in [0, 1].
        device: where the mask is returned (default: the generator's device, else the CPU).
        generator: a ``torch.Generator`` to draw from; None draws from torch's global RNG (of the
            generator's or ``device``'s kind), so ``torch.manual_seed`` reproduces the masks.

    Returns:
        A float32 tensor of zeros and ones, B x 1 x H x W.

    Example:
        >>> m = has_mask(1, 5, 7, patch=4, drop_rate=0.5, generator=torch.Generator().manual_seed(1))
        >>> m.shape   # a 2 x 2 grid of patches: 4 x 4, 4 x 3, 1 x 4 and 1 x 3 pixels
        torch.Size([1, 1, 5, 7])
    """
    _check(patch, drop_rate)
    rows, cols = -(-height // patch), -(-width // patch)
    draw_on = generator.device if generator is not None else (device if device is not None else "cpu")
    u = torch.rand(batch, rows, cols, generator=generator, device=draw_on)
    keep = (u >= drop_rate).to(torch.float32)
    mask = keep.repeat_interleave(patch, dim=1).repeat_interleave(patch, dim=2)[:, :height, :width]
    mask = mask.unsqueeze(1)
    return mask if device is None else mask.to(device)


class HideAndSeek(nn.Module):
    """Hide-and-Seek on the input batch: ``out = x * has_mask(...)`` in training, ``out = x`` in eval.

    Put it in front of the network (it acts on the normalised image, as wsolevaluation applies
    ``has`` to the batch before the forward pass); see the module docs for the formula and the
    differences from the reference implementation.

    Args:
        patch: side of a square patch in pixels (default 32, HaS-32).
        drop_rate: probability that a patch is hidden (default 0.5).

    Example:
        >>> has = HideAndSeek(patch=16, drop_rate=0.5).train()
        >>> x = torch.randn(2, 3, 40, 72)
        >>> y = has(x)                       # whole 16 x 16 patches (partial at the edges) set to 0
        >>> torch.equal(has.eval()(x), x)    # identity in eval mode
        True
    """

    def __init__(self, patch: int = 32, drop_rate: float = 0.5) -> None:
        super().__init__()
        _check(patch, drop_rate)
        self.patch = patch
        self.drop_rate = float(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with random patches hidden (set to 0) in training; ``x`` unchanged in eval mode."""
        if not self.training:
            return x
        if x.ndim != 4:
            raise ValueError(f"HideAndSeek expects a B x C x H x W batch, got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        return x * has_mask(b, h, w, self.patch, self.drop_rate, device=x.device).to(x.dtype)

    def extra_repr(self) -> str:
        """The settings shown in the module's repr."""
        return f"patch={self.patch}, drop_rate={self.drop_rate}"
