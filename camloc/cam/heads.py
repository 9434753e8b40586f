"""What a classifier head does with the feature map, and the class activation maps that follow.

A head is *exact* when, for the sample at hand, its logits are an affine function of per-location
features, so that a map ``M_k`` exists with ``mean_hw(M_k) + b_k = logit_k`` exactly. camloc
recognises these pooled forms between the feature map ``F`` (B x C x H x W) and the classifier
``W`` (K x C'), ``b``:

======================  ====================================================================
``avg``                 ``logit = W mean(F) + b`` (GAP; dropout and flatten are identities)
``max``                 ``logit = W max(F) + b``
``avgmax``              ``logit = W (mean(F) + max(F)) / 2 + b`` (timm ``avgmax``)
``catavgmax``           ``logit = W [mean(F); max(F)] + b`` (timm ``catavgmax``: weights split)
``tap``                 ``logit = W tap_theta(F) + b`` (camloc's TAP layer; the map is ``W F``)
``relu`` prefix         the same on ``relu(F)`` (torchvision DenseNet's functional ReLU)
``norm``                a LayerNorm or eval BatchNorm on the pooled vector, folded into per-sample
                        weights (ConvNeXt)
======================  ====================================================================

The CAM is ``M_k(x) = sum_c Wavg[k,c] F_c(x) + H W sum_c Wmax[k,c] F_c(x) [x = argmax F_c]``: the max
part sits at each channel's arg-max, so its spatial mean is exactly the max-pooled term.
NWC (negative weight clamping) replaces the effective weights by ``max(W, 0)`` in the map only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..utils.errors import ModelError
from .pooling import POOL_KINDS, TAP, pooled

__all__ = ["LAYOUTS", "POOL_KINDS", "TAP", "WEIGHTED_SUM_POOLS", "HeadSpec", "as_grid", "token_grid", "pooled",
           "class_weights", "exact_maps", "gradient_maps"]

#: How a feature layer lays out its output: ``nchw`` (B x C x H x W, CNNs), ``nhwc`` (B x H x W x C,
#: timm's Swin and other channels-last models), ``tokens`` (B x N x C, prefix tokens first, then the
#: patch grid row by row: vision transformers).
LAYOUTS = ("nchw", "nhwc", "tokens")


@dataclass(frozen=True)
class HeadSpec:
    """How logits follow from the feature map, found by :func:`camloc.cam.analysis.analyze`.

    Attributes:
        feature_layer: qualified name of the module whose output is the feature map.
        classifier: name of the final Linear / 1x1 Conv, or None when the head is not exact.
        pool: one of :data:`POOL_KINDS`, or ``"gradient"`` for heads that are not affine.
        relu: whether the head applies ReLU to the feature map before pooling.
        norm: name of a LayerNorm / BatchNorm between pooling and classifier, folded into weights.
        theta_tap: TAP's threshold factor when ``pool == "tap"``.
        layout: how the feature layer's output is laid out, one of :data:`LAYOUTS`; :func:`as_grid`
            turns it into B x C x H x W.
        prefix_tokens: for ``tokens``: how many non-patch tokens (class, distillation, register)
            come before the patch grid.
        grid: for ``tokens``: the patch grid ``(h, w)`` of the input the analysis ran on.
        stride: for ``tokens`` whose grid follows the input size (timm ``dynamic_img_size``): the
            input pixels per token ``(sh, sw)``; None when the grid is fixed.
        reason: for gradient heads, why the map is a gradient and not an exact CAM (e.g.
            ``"class token"``: the head reads the class token, not pooled patch features).
    """

    feature_layer: str
    classifier: str | None
    pool: str
    relu: bool = False
    norm: str | None = None
    theta_tap: float = 0.0
    layout: str = "nchw"
    prefix_tokens: int = 0
    grid: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    reason: str = ""

    @property
    def exact(self) -> bool:
        """Whether the head gives exact CAMs (an affine pool and classifier), not gradient maps."""
        return self.pool != "gradient"

    @property
    def kind(self) -> str:
        """``"exact"``, or ``"gradient"`` with the reason where known: ``"gradient (class token)"``."""
        if self.exact:
            return "exact"
        return f"gradient ({self.reason})" if self.reason else "gradient"

    @property
    def form(self) -> str:
        """The head in words: the pooled form of an exact head, the reason of a gradient head.

        Pooled forms read like ``"avg, LayerNorm fc_norm folded"`` or ``"avg of relu(F)"``.
        """
        if not self.exact:
            return self.reason
        form = f"{self.pool} of relu(F)" if self.relu else self.pool
        if self.pool == TAP:
            form += f" (theta {self.theta_tap:g})"
        return f"{form}, {self.norm} folded" if self.norm else form


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> bool:
    """Equality up to float round-off, relative to the scale of ``a``.

    ``rtol`` is widened to 4 ulps of the coarser floating dtype of the two, so that a half or
    bfloat16 model's head is recognised as what it is (float16: 3.9e-3, bfloat16: 3.1e-2).
    """
    if a.shape != b.shape:
        return False
    eps = max((torch.finfo(t.dtype).eps for t in (a, b) if t.is_floating_point()), default=0.0)
    rtol = max(rtol, 4 * eps)
    a, b = a.detach().double(), b.detach().double()
    scale = a.abs().max().item() if a.numel() else 0.0
    return bool((a - b).abs().max().item() <= rtol * max(scale, 1e-3)) if a.numel() else True


def linear_params(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``(W, b)`` of a Linear or 1x1 Conv2d as a K x C' matrix, else None."""
    if isinstance(module, nn.Linear):
        return module.weight, module.bias
    if isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1:
        return module.weight.flatten(1), module.bias
    return None


def token_grid(spec: HeadSpec, tokens: int, input_size: Sequence[int] | None = None) -> tuple[int, int]:
    """The patch grid ``(h, w)`` of a token output with ``tokens`` tokens (prefix included).

    With ``spec.stride`` (a dynamic image size) and the network input's ``(H, W)``, the grid is
    ``(H / sh, W / sw)`` rounded down, or up where the model pads; otherwise the analysed
    ``spec.grid``. Either way ``h w = tokens - spec.prefix_tokens`` must hold.

    Example:
        >>> spec = HeadSpec("blocks.11", None, "gradient", layout="tokens", prefix_tokens=1, stride=(16, 16))
        >>> token_grid(spec, 141, (160, 224))
        (10, 14)

    Raises:
        ModelError: the token count fits neither grid.
    """
    patches = tokens - spec.prefix_tokens
    candidates = []
    if spec.stride is not None and input_size is not None:
        (height, width), (sh, sw) = input_size[-2:], spec.stride
        candidates += [(height // sh, width // sw), (-(-height // sh), -(-width // sw))]
    if spec.grid is not None:
        candidates.append(tuple(spec.grid))
    for h, w in candidates:
        if h * w == patches and h > 0:
            return int(h), int(w)
    raise ModelError(
        f"the feature layer {spec.feature_layer!r} returned {tokens} tokens, which is not {spec.prefix_tokens} "
        f"prefix tokens plus the patch grid {spec.grid}"
        + ("" if input_size is not None or spec.stride is None else "; pass input_size=(H, W) of the network input")
    )


def as_grid(spec: HeadSpec, t: torch.Tensor, input_size: Sequence[int] | None = None) -> torch.Tensor:
    """The feature layer's output (or a gradient of it, same shape) as a B x C x H x W grid.

    Reshape and permute only: no ReLU, no dtype change, differentiable, a view where possible.

    * ``nchw``: ``t`` itself;
    * ``nhwc``: ``t.permute(0, 3, 1, 2)``;
    * ``tokens``: ``G[b, c, i, j] = t[b, p + i w + j, c]`` with ``p = spec.prefix_tokens`` and the
      grid ``(h, w)`` of :func:`token_grid` (pass ``input_size``, the network input's ``(H, W)``,
      for models with dynamic image sizes).

    Example:
        >>> spec = HeadSpec("norm", "head", "avg", layout="tokens", prefix_tokens=1, grid=(14, 14))
        >>> as_grid(spec, torch.randn(2, 197, 192)).shape
        torch.Size([2, 192, 14, 14])
    """
    if spec.layout == "nchw":
        return t
    if spec.layout == "nhwc":
        if t.ndim != 4:
            raise ModelError(f"expected a B x H x W x C output from {spec.feature_layer!r}, got shape {tuple(t.shape)}")
        return t.permute(0, 3, 1, 2)
    if spec.layout == "tokens":
        if t.ndim != 3:
            raise ModelError(f"expected a B x N x C token output from {spec.feature_layer!r}, "
                             f"got shape {tuple(t.shape)}")
        h, w = token_grid(spec, t.shape[1], input_size)
        return t[:, spec.prefix_tokens:].transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)
    raise ValueError(f"unknown layout {spec.layout!r}")


def features_for(spec: HeadSpec, feats: torch.Tensor, input_size: Sequence[int] | None = None) -> torch.Tensor:
    """The feature map the head actually pools, B x C x H x W float.

    That is ``as_grid``, then ``relu(F)`` where the head applies ReLU first.
    """
    feats = as_grid(spec, feats, input_size).float()
    return feats.clamp_min(0) if spec.relu else feats


def split_weights(pool: str, weight: torch.Tensor, channels: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Split classifier weights (K x C') into the parts applied to mean(F) and to max(F)."""
    if pool in ("avg", TAP):
        return weight, None
    if pool == "max":
        return None, weight
    if pool == "avgmax":
        return 0.5 * weight, 0.5 * weight
    if pool == "catavgmax":
        return weight[:, :channels], weight[:, channels:]
    raise ValueError(f"unknown pool kind {pool!r}")


def fold_norm(
    norm: nn.Module, weight: torch.Tensor, bias: torch.Tensor, avg: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold a normalisation of the pooled vector into per-sample classifier weights.

    LayerNorm: ``y = gamma (p - mu) / s + beta`` with ``s = sqrt(var(p) + eps)`` per sample, so
    ``W y + b = W' p + b'`` with ``W' = A - rowmean(A)``, ``A = W diag(gamma) / s`` and
    ``b' = W beta + b``. Eval BatchNorm: ``W' = W diag(gamma / sqrt(rv + eps))`` and
    ``b' = W (beta - rm gamma / sqrt(rv + eps)) + b``.

    Returns:
        ``(W', b')`` with shapes B x K x C and B x K.
    """
    batch, channels = avg.shape
    if isinstance(norm, nn.LayerNorm):
        gamma = norm.weight if norm.weight is not None else torch.ones(channels, device=avg.device)
        beta = norm.bias if norm.bias is not None else torch.zeros(channels, device=avg.device)
        s = torch.sqrt(avg.var(dim=1, unbiased=False) + norm.eps)  # B
        a = weight.unsqueeze(0) * gamma.float().view(1, 1, -1) / s.view(-1, 1, 1)
        w_eff = a - a.mean(dim=2, keepdim=True)
        b_eff = weight @ beta.float() + bias
        return w_eff, b_eff.unsqueeze(0).expand(batch, -1)
    if isinstance(norm, nn.modules.batchnorm._BatchNorm):
        scale = norm.weight.float() / torch.sqrt(norm.running_var.float() + norm.eps)
        shift = norm.bias.float() - norm.running_mean.float() * scale
        w_eff = (weight * scale.view(1, -1)).unsqueeze(0).expand(batch, -1, -1)
        b_eff = weight @ shift + bias
        return w_eff, b_eff.unsqueeze(0).expand(batch, -1)
    raise TypeError(f"cannot fold {type(norm).__name__}")


def apply_norm(norm: nn.Module, avg: torch.Tensor) -> torch.Tensor:
    """The normalisation module applied to a pooled B x C vector (for verification)."""
    if isinstance(norm, nn.LayerNorm):
        return torch.nn.functional.layer_norm(avg, (avg.shape[1],), norm.weight, norm.bias, norm.eps)
    return torch.nn.functional.batch_norm(
        avg, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps
    )


def foldable(norm: nn.Module, channels: int) -> bool:
    if isinstance(norm, nn.LayerNorm):
        return tuple(norm.normalized_shape) == (channels,)
    if isinstance(norm, nn.modules.batchnorm._BatchNorm):
        return norm.num_features == channels and norm.track_running_stats and norm.affine
    return False


def exact_maps(
    spec: HeadSpec,
    feats: torch.Tensor,
    classifier: nn.Module,
    norm: nn.Module | None,
    classes: torch.Tensor,
    nwc: bool,
    input_size: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class activation maps of an exact head for the given classes.

    Args:
        spec: the head analysis.
        feats: the feature layer's output as it returned it (any of :data:`LAYOUTS`).
        classifier: the final Linear / 1x1 Conv.
        norm: the folded normalisation module, if any.
        classes: B x k class indices.
        nwc: clamp the effective weights at zero (NWC) in the map.
        input_size: the network input's ``(H, W)``, for token grids that follow the input size.

    Returns:
        ``(maps, bias)``: B x k x H x W maps and the B x k effective bias, so that without NWC
        ``maps.mean((2, 3)) + bias`` equals the selected logits (not for TAP heads, whose map is
        the paper's CAM over the raw, unthresholded features).
    """
    fmap = features_for(spec, feats, input_size)
    batch, channels, h, w = fmap.shape
    if norm is not None or spec.pool in WEIGHTED_SUM_POOLS:
        w_sel, b_sel = class_weights(spec, fmap, classifier, norm, classes)
        return _weighted_sum(w_sel.clamp_min(0) if nwc else w_sel, fmap), b_sel
    weight, bias = _classifier_params(classifier)
    w_avg, w_max = split_weights(spec.pool, weight, channels)
    maps = fmap.new_zeros(batch, classes.shape[1], h, w)
    if w_avg is not None:
        sel = w_avg[classes]  # B x k x C
        maps = maps + _weighted_sum(sel.clamp_min(0) if nwc else sel, fmap)
    if w_max is not None:
        sel = w_max[classes]
        flat = fmap.flatten(2)
        peak = torch.zeros_like(flat).scatter_(2, flat.argmax(dim=2, keepdim=True), flat.amax(dim=2, keepdim=True))
        maps = maps + (h * w) * _weighted_sum(sel.clamp_min(0) if nwc else sel, peak.view_as(fmap))
    return maps, bias[classes]


#: Pooled forms whose CAM is a weighted sum of the feature channels, ``M_k = sum_c w[k,c] F_c``.
WEIGHTED_SUM_POOLS = ("avg", TAP)


def _classifier_params(classifier: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, b)`` of the classifier as detached float32, ``b = 0`` where it has no bias."""
    weight, bias = linear_params(classifier)
    weight = weight.detach().float()
    bias = bias.detach().float() if bias is not None else torch.zeros(weight.shape[0], device=weight.device)
    return weight, bias


def class_weights(
    spec: HeadSpec, fmap: torch.Tensor, classifier: nn.Module, norm: nn.Module | None, classes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each selected class's weight on each feature channel, for heads whose map is a weighted sum.

    For GAP (``avg``) and TAP heads ``w[b,k,c] = W[classes[b,k], c]``; a folded normalisation gives
    per-sample weights (:func:`fold_norm`). The class map is then ``M_k = sum_c w[b,k,c] F_c``, and for
    GAP ``mean_hw(M_k) + bias[b,k]`` is the logit.

    Args:
        spec: the head analysis (``spec.pool`` in :data:`WEIGHTED_SUM_POOLS`, or a folded norm).
        fmap: the pooled feature map, B x C x H x W (:func:`features_for`).
        classifier: the final Linear / 1x1 Conv.
        norm: the folded normalisation module, if any.
        classes: B x k class indices.

    Returns:
        ``(weights, bias)``: B x k x C and B x k, float32.

    Raises:
        ModelError: a head whose map is not a weighted sum of channels (max, avgmax, catavgmax pools).

    Example:
        >>> spec = HeadSpec("features", "fc", "avg")
        >>> fc = nn.Linear(2, 3)
        >>> class_weights(spec, torch.ones(1, 2, 4, 4), fc, None, torch.tensor([[1]]))[0].shape
        torch.Size([1, 1, 2])
    """
    batch, channels = fmap.shape[:2]
    weight, bias = _classifier_params(classifier)
    if norm is not None:
        w_eff, b_eff = fold_norm(norm, weight, bias, fmap.mean(dim=(2, 3)))
        return torch.gather(w_eff, 1, classes.unsqueeze(-1).expand(-1, -1, channels)), torch.gather(b_eff, 1, classes)
    if spec.pool not in WEIGHTED_SUM_POOLS:
        raise ModelError(f"the head pools by {spec.pool}, so its map is not a weighted sum of feature channels "
                         "with one weight each; only GAP and TAP heads have per-channel class weights")
    return weight[classes], bias[classes]


def _weighted_sum(weights: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
    """``M[b,k] = sum_c weights[b,k,c] F[b,c]`` as one batched matrix product."""
    batch, channels, h, w = fmap.shape
    return torch.bmm(weights, fmap.reshape(batch, channels, h * w)).view(batch, -1, h, w)


def gradient_maps(weights: torch.Tensor, feats: torch.Tensor, nwc: bool) -> torch.Tensor:
    """Maps of a non-affine head from its gradient: ``w[b,k,c] = sum_x d logit_k / d F_c(x)``.

    For a GAP-linear head this ``w`` equals ``W[k]`` and the map equals the exact CAM.
    """
    weights = weights.float()
    return _weighted_sum(weights.clamp_min(0) if nwc else weights, feats.float())
