"""From class activation maps to boxes, exactly as the authors' code does (PROTOCOLS.md section 1).

1. bicubic upsample of the raw map to the network input size (``align_corners=False``, the same
   kernel as OpenCV's ``INTER_CUBIC``);
2. min-max scale to 0..255 and truncate to uint8 (a constant map becomes all zeros, never NaN);
3. ``t = int(theta * percentile_i(U))`` with linear interpolation (numpy's default); ``i = 100`` is
   the max standard of vanilla CAM, ``theta = 0.35, i = 90`` is PaS;
4. foreground ``U > t`` (strict);
5. OpenCV contours (``RETR_TREE``, ``CHAIN_APPROX_SIMPLE``); the largest by ``contourArea`` gives
   the box ``[x, y, x + w, y + h]`` of its bounding rectangle;
6. no contour: the whole input ``[0, 0, W, H]``.

Steps 1-4 run batched on the maps' device; only the contour search runs on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Standard:
    """The localization threshold: ``theta * percentile_i(map)``.

    Attributes:
        theta: the multiplier (theta_loc).
        percentile: ``i``; 100 is the max (vanilla CAM), 90 is the paper's PaS.

    Example:
        >>> Standard.pas()            # the paper's default: 0.35 x 90th percentile
        Standard(theta=0.35, percentile=90.0)
        >>> Standard.max(0.2)         # vanilla CAM
        Standard(theta=0.2, percentile=100.0)
    """

    theta: float = 0.35
    percentile: float = 90.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.theta <= 1.0:
            raise ValueError(f"theta must be in [0, 1], not {self.theta}")
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], not {self.percentile}")

    @classmethod
    def pas(cls, theta: float = 0.35, percentile: float = 90.0) -> "Standard":
        return cls(theta, percentile)

    @classmethod
    def max(cls, theta: float = 0.2) -> "Standard":
        return cls(theta, 100.0)


def make_standard(standard: str = "percentile", theta: Optional[float] = None, percentile: float = 90.0) -> Standard:
    """The threshold rule by name: ``percentile`` (PaS, theta 0.35 by default) or ``max`` (theta 0.2).

    Example:
        >>> make_standard("max")
        Standard(theta=0.2, percentile=100.0)
    """
    if standard == "percentile":
        return Standard(0.35 if theta is None else theta, percentile)
    if standard == "max":
        return Standard(0.2 if theta is None else theta, 100.0)
    raise UsageError(f"standard must be 'percentile' or 'max', not {standard!r}")


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic upsample of N x h x w maps to N x H x W (float32)."""
    return F.interpolate(maps.float().unsqueeze(1), size=size, mode="bicubic", align_corners=False).squeeze(1)


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each N x H x W map to [0, 1] in float64; a constant map becomes zeros."""
    maps = maps.double()
    flat = maps.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1)
    span = (flat.amax(dim=1).view(-1, 1, 1) - lo)
    return torch.where(span > 0, (maps - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(maps))


def to_uint8(maps: torch.Tensor) -> torch.Tensor:
    """``uint8(255 * minmax(map))`` with truncation, per map."""
    return (minmax(maps) * 255.0).to(torch.uint8)


def percentile_u8(u8: torch.Tensor, percentile: float) -> torch.Tensor:
    """numpy's default (linear) percentile of each N x H x W uint8 map, in float64, without sorting.

    A uint8 map has 256 levels, so a histogram per map and its cumulative sum give any order
    statistic: the value of rank ``r`` is the first level whose cumulative count exceeds ``r``.
    numpy's rule is then followed to the bit: virtual index ``(n - 1) * q / 100``, and the same
    two-sided ``lerp`` between the neighbouring order statistics.
    """
    n_maps = u8.shape[0]
    flat = u8.reshape(n_maps, -1).long()
    n = flat.shape[1]
    offsets = torch.arange(n_maps, device=u8.device).view(-1, 1) * 256
    cdf = torch.bincount((flat + offsets).view(-1), minlength=256 * n_maps).view(n_maps, 256).cumsum(1)
    pos = (n - 1) * (percentile / 100.0)
    lo = int(pos // 1)
    hi = min(lo + 1, n - 1)
    ranks = torch.tensor([lo, hi], device=u8.device).expand(n_maps, 2).contiguous()
    levels = torch.searchsorted(cdf, ranks, right=True).double()
    return torch.lerp(levels[:, 0], levels[:, 1], pos - lo)


def standard_values(u8: torch.Tensor, percentile: float) -> torch.Tensor:
    """``percentile_i(U)`` of each N x H x W uint8 map in float64; ``i >= 100`` is the max."""
    if percentile >= 100.0:
        return u8.flatten(1).amax(dim=1).double()
    return percentile_u8(u8, percentile)


def thresholds(u8: torch.Tensor, standard: Standard) -> torch.Tensor:
    """``int(theta * percentile_i(U))`` for each N x H x W uint8 map, as an N-vector of int64."""
    return torch.floor(standard.theta * standard_values(u8, standard.percentile)).long()


def foreground(maps: torch.Tensor, size: tuple[int, int], standard: Standard) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-4 for a batch of raw maps: returns ``(U, mask)``, the uint8 maps and ``U > t``."""
    u8 = to_uint8(upsample(maps, size))
    t = thresholds(u8, standard)
    return u8, u8 > t.view(-1, 1, 1).to(torch.uint8)


def contour_boxes(mask: np.ndarray, all_regions: bool = False) -> tuple[Box, list[Box]]:
    """Boxes of a binary H x W mask: the largest contour's, and (optionally) every region's.

    The main box follows the authors' code (``RETR_TREE``, largest ``contourArea``, whole image when
    there is no contour). With ``all_regions`` the second value lists the bounding box of every
    outer contour (``RETR_EXTERNAL``: one per connected region), largest area first; otherwise it
    holds the main box alone.
    """
    h, w = mask.shape
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        whole: Box = (0, 0, w, h)
        return whole, [whole]
    areas = [cv2.contourArea(c) for c in contours]
    main = _rect(contours[int(np.argmax(areas))])
    if not all_regions:
        return main, [main]
    outer, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    order = sorted(range(len(outer)), key=lambda i: -cv2.contourArea(outer[i]))
    return main, [_rect(outer[i]) for i in order]


def _rect(contour: np.ndarray) -> Box:
    x, y, w, h = cv2.boundingRect(contour)
    return (int(x), int(y), int(x + w), int(y + h))


def boxes_from_maps(
    maps: torch.Tensor, size: tuple[int, int], standard: Standard, all_regions: bool = False
) -> list[tuple[Box, list[Box]]]:
    """Boxes (on the H x W network input) for a batch of raw N x h x w maps.

    Args:
        maps: raw class activation maps at feature resolution.
        size: ``(H, W)`` of the network input.
        standard: threshold rule (max or PaS).
        all_regions: also return every region's box.
    """
    _, masks = foreground(maps, size, standard)
    return [contour_boxes(mk, all_regions) for mk in masks.to("cpu", torch.uint8).numpy()]
