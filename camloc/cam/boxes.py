"""From class activation maps to boxes, exactly as the authors' code does (docs/protocols.md, "The box rule").

1. bicubic upsample of the raw map to the network input size (``align_corners=False``, the same
   kernel as OpenCV's ``INTER_CUBIC``);
2. min-max scale to 0..255 and truncate to uint8 (a constant map becomes all zeros, never NaN);
3. ``t = int(theta * percentile_i(U))`` with linear interpolation (numpy's default); ``i = 100`` is
   the max standard of vanilla CAM, ``theta = 0.35, i = 90`` is PaS. Beside this percentile rule,
   the automatic rules ``otsu``, ``li``, ``triangle`` and ``yen`` set ``t`` from each map's
   histogram exactly as scikit-image's ``threshold_*`` functions do on ``U``
   (:func:`adaptive_thresholds`);
4. foreground ``U > t`` (strict);
5. OpenCV contours (``RETR_TREE``, ``CHAIN_APPROX_SIMPLE``); the largest by ``contourArea`` gives
   the box ``[x, y, x + w, y + h]`` of its bounding rectangle;
6. no contour: the whole input ``[0, 0, W, H]``.

Steps 1-4 run batched on the maps' device; only the contour search runs on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..utils.defaults import ADAPTIVE_RULES
from .rules import Box, ThresholdRule, contour_boxes, make_standard, quoted_names

__all__ = ["ThresholdRule", "boxes_from_maps", "contour_boxes", "foreground", "make_standard"]


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic upsample of N x h x w maps to N x H x W (float32)."""
    return F.interpolate(maps.float().unsqueeze(1), size=size, mode="bicubic", align_corners=False).squeeze(1)


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each N x H x W map to [0, 1] in float64; a constant map becomes zeros."""
    maps = maps.double()
    flat = maps.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1)
    span = (flat.amax(dim=1).view(-1, 1, 1) - lo)
    return torch.where(span > 0, (maps - lo) / torch.where(span > 0, span, torch.ones_like(span)),
                       torch.zeros_like(maps))


def to_uint8(maps: torch.Tensor) -> torch.Tensor:
    """``uint8(255 * minmax(map))`` with truncation, per map."""
    return (minmax(maps) * 255.0).to(torch.uint8)


def histograms_u8(u8: torch.Tensor) -> torch.Tensor:
    """The 256-bin histogram of each N x H x W uint8 map: an N x 256 int64 tensor, on the maps' device.

    On a GPU, one ``bincount`` for the whole batch: map ``k``'s levels are offset by ``256 k``. On
    the CPU, one ``bincount`` per map on the uint8 values themselves: about 10x faster there than
    the batched one, which must first widen every pixel to int64 (``benchmarks/thresholds.py``).

    Example:
        >>> histograms_u8(torch.tensor([[[0, 0, 255]]], dtype=torch.uint8))[0, [0, 255]].tolist()
        [2, 1]
    """
    n_maps = u8.shape[0]
    if u8.device.type == "cpu" and n_maps:
        return torch.stack([torch.bincount(m, minlength=256) for m in u8.reshape(n_maps, -1)])
    flat = u8.reshape(n_maps, -1).long()
    offsets = torch.arange(n_maps, device=u8.device).view(-1, 1) * 256
    return torch.bincount((flat + offsets).view(-1), minlength=256 * n_maps).view(n_maps, 256)


def percentile_u8(u8: torch.Tensor, percentile: float) -> torch.Tensor:
    """Numpy's default (linear) percentile of each N x H x W uint8 map, in float64, without sorting.

    A uint8 map has 256 levels, so a histogram per map and its cumulative sum give any order
    statistic: the value of rank ``r`` is the first level whose cumulative count exceeds ``r``.
    numpy's rule is then followed to the bit: virtual index ``(n - 1) * q / 100``, and the same
    two-sided ``lerp`` between the neighbouring order statistics.
    """
    n_maps = u8.shape[0]
    n = u8[0].numel() if n_maps else 0
    cdf = histograms_u8(u8).cumsum(1)
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


_EXACT_F32 = 1 << 24  # float32 holds every integer up to 2^24: counts below it sum exactly in any order
_LI_MAX_ITER = 260  # Li's update depends only on which bins lie above t: > 257 steps means a cycle


def _scan_f32(x: torch.Tensor) -> torch.Tensor:
    """Numpy's ``np.cumsum`` of float32 rows, to the bit: a left-to-right float32 scan.

    ``torch.cumsum`` accumulates float32 in double on the CPU and in a parallel order on CUDA, so
    it can round differently from numpy; this is one vectorised add per column (255 for 256 bins),
    each over all rows at once.
    """
    cols = x.t().contiguous()
    out = torch.empty_like(cols)
    out[0] = cols[0]
    for k in range(1, cols.shape[0]):
        torch.add(out[k - 1], cols[k], out=out[k])
    return out.t()


def _cumsum_counts_f32(hist: torch.Tensor, n: int) -> torch.Tensor:
    """``np.cumsum(counts.astype(float32))`` of N x 256 int64 histograms of ``n``-pixel maps."""
    if n < _EXACT_F32:
        return hist.cumsum(1).float()  # exact integers, as numpy's float32 sums are
    return _scan_f32(hist.float())


def _first_max(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Index of the first maximum of each row over its ``valid`` entries (``np.argmax``'s tie rule)."""
    fill = torch.tensor(float("-inf"), dtype=values.dtype, device=values.device)
    return torch.where(valid, values, fill).argmax(1)


def _otsu(hist: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
    """Otsu (1979): the level ``k`` maximising ``w0(k) w1(k+1) (mu0(k) - mu1(k+1))^2``.

    ``w0(k)`` counts the pixels ``<= k`` and ``mu0(k)`` is their mean, ``w1``/``mu1`` those ``>= k``;
    scikit-image's arithmetic (``threshold_otsu``): float32 class weights and their product, float64
    class means and variance, first maximum over ``lo <= k < hi``.
    """
    levels = torch.arange(256, device=hist.device)
    w1 = _cumsum_counts_f32(hist, n)
    w2 = _cumsum_counts_f32(hist.flip(1), n).flip(1)
    moments = hist * levels  # exact integers; numpy's float64 cumsum of them is exact too
    mean1 = moments.cumsum(1).double() / w1.double()
    mean2 = moments.flip(1).cumsum(1).flip(1).double() / w2.double()
    variance = (w1[:, :-1] * w2[:, 1:]).double() * (mean1[:, :-1] - mean2[:, 1:]) ** 2
    k = levels[:-1].view(1, -1)
    return _first_max(variance, (k >= lo.view(-1, 1)) & (k < hi.view(-1, 1))).double()


def _yen(hist: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
    """Yen, Chang & Chang (1995): the level ``k`` maximising the correlation criterion.

    The criterion is ``ln[(P(k) (1 - P(k)))^2 / (sum_{j<=k} p_j^2 * sum_{j>k} p_j^2)]``, with
    ``p = counts / n`` and ``P`` its cumulative sum, all in float32 as ``threshold_yen`` computes
    them (numpy's left-to-right float32 cumsums, reciprocal, square); first maximum over
    ``lo <= k < hi``.
    """
    counts = hist.float()
    total = counts.sum(1, keepdim=True) if n < _EXACT_F32 else torch.full_like(counts[:, :1], float(n))
    pmf = counts / total
    sq = pmf * pmf
    m = hist.shape[0]
    scans = _scan_f32(torch.cat([pmf, sq, sq.flip(1)]))
    p1, p1_sq, p2_sq = scans[:m], scans[m:2 * m], scans[2 * m:].flip(1)
    below = p1[:, :-1]
    inner = below * (1.0 - below)
    crit = torch.log((1.0 / (p1_sq[:, :-1] * p2_sq[:, 1:])) * (inner * inner))
    k = torch.arange(255, device=hist.device).view(1, -1)
    return _first_max(crit, (k >= lo.view(-1, 1)) & (k < hi.view(-1, 1))).double()


def _triangle(hist: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
    """Zack, Rogers & Latt (1977): the level farthest below the line from the histogram's peak to its longer tail's end.

    With the peak ``(p, h_p)`` at distance ``w`` from that end, the level maximises
    ``(h_p x - w h(x)) / sqrt(h_p^2 + w^2)`` over the ``w`` levels from the end towards the peak
    (``x = 0`` at the end). As ``threshold_triangle``: integer counts, float64 distances, the peak is
    the first maximum, the histogram is flipped when the left tail is the shorter one.
    """
    del n
    peak = hist.argmax(1)
    height = hist.gather(1, peak.view(-1, 1)).squeeze(1)
    flip = (peak - lo) < (hi - peak)
    width = torch.where(flip, hi - peak, peak - lo)
    x = torch.arange(256, device=hist.device).view(1, -1)
    idx = torch.where(flip.view(-1, 1), hi.view(-1, 1) - x, lo.view(-1, 1) + x).clamp(0, 255)
    y = hist.gather(1, idx)
    norm = torch.sqrt((height * height + width * width).double())
    length = (height.double() / norm).view(-1, 1) * x.double() - (width.double() / norm).view(-1, 1) * y.double()
    a = _first_max(length, x < width.view(-1, 1))
    return torch.where(flip, hi - a, lo + a).double()


def _li(hist: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
    """Li & Lee (1993) minimum cross entropy by Li & Tam's (1998) iteration, as ``threshold_li``.

    On the levels shifted to start at 0 (``v = U - min U``), from ``t = mean(v)``:
    ``t <- (mu_b - mu_f) / (ln mu_b - ln mu_f)`` with ``mu_f``/``mu_b`` the mean of the levels
    ``> t`` / ``<= t``, until ``|change| <= 0.5`` (half the smallest difference of integer levels) or
    ``mu_b == 0``; the threshold is ``t + min U`` (a float). Every map iterates at once; a map
    stops changing when it has converged.
    """
    levels = torch.arange(256, device=hist.device).view(1, -1) - lo.view(-1, 1)  # shifted bin centres
    weighted = hist * levels
    t_next = weighted.sum(1).double() / n  # np.mean of the shifted image: an exact sum / n
    t_curr = torch.full_like(t_next, -1.0)  # -2 * tolerance
    active = (t_next - t_curr).abs() > 0.5
    for _ in range(_LI_MAX_ITER):
        if not bool(active.any()):
            break
        t_curr = torch.where(active, t_next, t_curr)
        fore = levels.double() > t_curr.view(-1, 1)
        mean_fore = (weighted * fore).sum(1).double() / (hist * fore).sum(1).double()
        mean_back = (weighted * ~fore).sum(1).double() / (hist * ~fore).sum(1).double()
        step = (mean_back - mean_fore) / (torch.log(mean_back) - torch.log(mean_fore))
        go = active & (mean_back != 0)
        t_next = torch.where(go, step, t_next)
        active = go & ((t_next - t_curr).abs() > 0.5)
    return t_next + lo.double()


_RULES = {"otsu": _otsu, "li": _li, "triangle": _triangle, "yen": _yen}


def adaptive_thresholds(u8: torch.Tensor, rule: str) -> torch.Tensor:
    """scikit-image's ``threshold_<rule>`` of each N x H x W uint8 map, batched: an N-vector of float64.

    The value equals ``skimage.filters.threshold_<rule>(U)`` called on the map itself
    (scikit-image 0.26, ``skimage/filters/thresholding.py``), computed from one 256-bin histogram
    per map (:func:`histograms_u8`) with whole-batch tensor operations on the maps' device. As
    there, each map's histogram covers only its own ``[min U, max U]``: the thresholds of ``otsu``,
    ``yen`` and ``triangle`` are levels in it (integers), ``li``'s is a float. A constant map
    (all zeros after :func:`to_uint8`) gives its own value, so ``U > t`` is empty and the box is
    the whole image, as with the percentile rule.

    Rules and references (formulas in each helper's docstring):

    * ``otsu``: N. Otsu (1979), "A threshold selection method from gray-level histograms",
      IEEE Trans. SMC 9(1): maximum between-class variance.
    * ``li``: C. H. Li and C. K. Lee (1993), "Minimum cross entropy thresholding", Pattern
      Recognition 26(4); C. H. Li and P. K. S. Tam (1998), "An iterative algorithm for minimum
      cross entropy thresholding", Pattern Recognition Letters 18(8).
    * ``triangle``: G. W. Zack, W. E. Rogers and S. A. Latt (1977), J. Histochem. Cytochem. 25(7).
    * ``yen``: J. C. Yen, F. J. Chang and S. Chang (1995), "A new criterion for automatic
      multilevel thresholding", IEEE Trans. Image Processing 4(3): maximum correlation.

    Exactness: scikit-image's float32/float64 operations are followed one by one (numpy's
    left-to-right float32 cumsums included), so the values are the same bits, with two
    exceptions that only matter at a near-tie: ``yen`` takes a float32 logarithm and ``li`` float64
    ones, and numpy's SIMD ``log`` may differ from torch's in the last bit; two candidate levels of
    ``yen`` within about 1e-7 of each other, or a ``li`` step landing within an ulp of an integer,
    could then resolve differently. Maps above 2^24 pixels sum float32 counts inexactly in numpy
    and may differ too. ``li`` stops after 260 steps, by which scikit-image's loop has either
    stopped or entered a cycle it never leaves.

    Args:
        u8: N x H x W uint8 maps.
        rule: ``otsu``, ``li``, ``triangle`` or ``yen``.

    Returns:
        N float64 thresholds, on the maps' device.

    Example:
        >>> u = torch.tensor([[[0, 0, 10, 200, 210, 220]]], dtype=torch.uint8)
        >>> adaptive_thresholds(u, "otsu").tolist()   # = skimage.filters.threshold_otsu(u[0].numpy())
        [10.0]
    """
    if rule not in _RULES:
        raise ValueError(f"an adaptive rule must be one of {quoted_names(ADAPTIVE_RULES)}, not {rule!r}")
    if u8.dtype != torch.uint8:
        raise ValueError(f"adaptive thresholds need uint8 maps (to_uint8), not {u8.dtype}")
    n_maps = u8.shape[0]
    if n_maps == 0:
        return torch.empty(0, dtype=torch.float64, device=u8.device)
    return histogram_thresholds(histograms_u8(u8), rule, u8[0].numel())


def histogram_thresholds(hist: torch.Tensor, rule: str, n: int) -> torch.Tensor:
    """:func:`adaptive_thresholds` from the maps' N x 256 int64 histograms of ``n`` pixels each.

    Tensor operations only, without data-dependent Python branches for ``otsu``, ``triangle`` and
    ``yen``, so an exported graph (:mod:`camloc.deploy`) computes them with this same code.

    Example:
        >>> hist = torch.zeros(1, 256, dtype=torch.long)
        >>> hist[0, [0, 10, 200, 210, 220]] = torch.tensor([2, 1, 1, 1, 1])
        >>> histogram_thresholds(hist, "otsu", 6).tolist()
        [10.0]
    """
    present = hist > 0
    lo = present.int().argmax(1)
    hi = 255 - present.flip(1).int().argmax(1)
    t = _RULES[rule](hist, lo, hi, n)
    return torch.where(lo == hi, lo.double(), t)


def thresholds(u8: torch.Tensor, standard: ThresholdRule) -> torch.Tensor:
    """The integer threshold ``t`` of ``U > t`` for each N x H x W uint8 map, as an N-vector of int64.

    The percentile rule gives ``int(theta * percentile_i(U))``; an automatic rule gives
    ``floor(T)`` of scikit-image's threshold ``T`` (:func:`adaptive_thresholds`), which selects the
    same pixels as ``U > T`` since ``U`` is an integer (``T`` is already one except for ``li``).

    Example:
        >>> u = torch.tensor([[[0, 0, 10, 200, 210, 220]]], dtype=torch.uint8)
        >>> thresholds(u, ThresholdRule.pas()).tolist(), thresholds(u, ThresholdRule.adaptive("otsu")).tolist()
        ([75], [10])
    """
    if standard.rule == "percentile":
        return torch.floor(standard.theta * standard_values(u8, standard.percentile)).long()
    t = adaptive_thresholds(u8, standard.rule)
    return torch.nan_to_num(torch.floor(t), nan=255.0).long()  # NaN: skimage's U > nan is empty, as U > 255


def above(u8: torch.Tensor, standard: ThresholdRule) -> torch.Tensor:
    """Step 4 for N x H x W uint8 maps: the mask ``U > t``, ``t`` each map's threshold under ``standard``.

    Example:
        >>> above(torch.tensor([[[0, 100, 200]]], dtype=torch.uint8), ThresholdRule.max(0.2)).tolist()
        [[[False, True, True]]]
    """
    return u8 > thresholds(u8, standard).view(-1, 1, 1).to(torch.uint8)


def foreground(maps: torch.Tensor, size: tuple[int, int], standard: ThresholdRule) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-4 for a batch of raw maps: returns ``(U, mask)``, the uint8 maps and ``U > t``."""
    u8 = to_uint8(upsample(maps, size))
    return u8, above(u8, standard)


def boxes_from_maps(
    maps: torch.Tensor, size: tuple[int, int], standard: ThresholdRule, all_regions: bool = False
) -> list[tuple[Box, list[Box]]]:
    """Boxes (on the H x W network input) for a batch of raw N x h x w maps.

    Args:
        maps: raw class activation maps at feature resolution.
        size: ``(H, W)`` of the network input.
        standard: threshold rule (max, PaS, or an automatic rule: otsu, li, triangle, yen).
        all_regions: also return every region's box.
    """
    _, masks = foreground(maps, size, standard)
    return [contour_boxes(mk, all_regions) for mk in masks.to("cpu", torch.uint8).numpy()]
