"""BagCAMs: the bagged maps of regional localizers derived from the classifier by its gradient.

Zhu et al., "Bagging Regional Classification Activation Maps for Weakly Supervised Object
Localization" (ECCV 2022), as the authors' code computes it: repository ``zh460045050/BagCAMs``
(commit 0fab958), file ``libs/cams/bagcams.py``, class ``BagCAMs``, methods ``backward`` (line 60)
and ``generate`` (lines 71-74).

For an image's feature map ``A`` (C x h x w, ``N = h w`` locations ``u``) and a class ``k`` with
logit ``z_k``, the authors back-propagate the *logarithm* of the raw logit, so the gradient they use
is ``g = d log(z_k) / d A = G / z_k``, with ``G = d z_k / d A`` the gradient of the logit itself (what
:func:`camloc.cam.gradients.head_gradients` returns). The forward value ``log(z_k)`` is NaN for a
negative logit, but its gradient ``G / z_k`` is finite and flips the sign of ``G``: camloc keeps that
sign. With the per-channel, per-location products ``P_c(u) = g_c(u) A_c(u)``:

    ``a_c = 1 + mean_u P_c(u)``
    ``M_k(u) = sum_c ReLU(a_c P_c(u))``

The ReLU acts on each channel's term at each location before the sum over channels, so a channel
with a negative ``a_c`` still adds to the map where its ``P_c`` is negative. A class whose logit is
exactly 0 has no log-gradient (the authors' gradient is infinite or NaN there, and their score-map
normaliser, ``normalize_scoremap`` in ``libs/inference.py``, lines 112-126, turns a map with a NaN
into zeros): its map is all zeros here. BagCAMs has no hyperparameter.

In the degenerate case of a GAP-linear head on one channel, with a positive weight ``W[k]``, a
non-negative feature map and a positive logit, ``G = W[k] / N`` everywhere, ``a > 0`` and the map is
a positive multiple of the CAM ``W[k] A``: the same map once min-max normalised.

What differs from the authors' code (same repository):

* The feature layer. camloc uses the CAM's feature layer (the output the head pools). Their scripts
  read ``layer3`` of a ResNet-50 by default (``--target_layer``, ``libs/config.py`` line 278, and
  ``run_test.sh``; ``demo.py`` uses ``layer4``), whose gradient flows back through ``layer4``.
* The backward pass. ``BagCAMs.__init__`` (``libs/cams/bagcams.py`` lines 20-38) hooks every
  ``nn.ReLU`` module of the feature extractor so that the gradient leaving it is clamped at 0
  (guided back-propagation). On the layer the head pools, the gradient reaches the feature map
  without passing through any of those ReLUs, so the hook changes nothing there; camloc
  differentiates through the head only, unguided, which is what their code gives on that layer.
  (Their classifier module carries no hooks.)
* The output. ``generate`` (lines 77-86) upsamples the map to the input (bilinear, corners not
  aligned) and min-max normalises it, ``(M - min) / max(M - min)``; camloc keeps the map at feature
  resolution and unnormalised (the box rule and the evaluator normalise).

The paper presents the method as integrating (bagging) the maps of regional localizers, one per
location, derived from the classifier; the formulas above are those of the code.

Example:
    >>> acts = torch.tensor([[[[2.0, 0.0]], [[0.0, 8.0]]]])      # A_0 = (2, 0), A_1 = (0, 8) on a 1 x 2 grid
    >>> grads = torch.tensor([0.5, -0.5]).view(1, 1, 2, 1, 1).expand(1, 1, 2, 1, 2)  # GAP head W = (1, -1)
    >>> bagcams_map(acts, grads, torch.tensor([[1.0]]))          # z = 1 - 4 + 4 (bias 4)
    tensor([[[[1.5000, 4.0000]]]])
"""

from __future__ import annotations

import torch

from ..utils.errors import UsageError

__all__ = ["bagcams_map", "bagcams_terms"]


def _checked(acts: torch.Tensor, grads: torch.Tensor, scores: torch.Tensor) -> None:
    """Raise a one-line :class:`UsageError` unless the shapes are B x C x h x w, B x k x C x h x w and B x k."""
    if acts.ndim != 4 or grads.ndim != 5:
        raise UsageError(f"bagcams needs activations B x C x h x w and gradients B x k x C x h x w, got shapes "
                         f"{tuple(acts.shape)} and {tuple(grads.shape)}")
    if grads.shape[:1] + grads.shape[2:] != acts.shape:
        raise UsageError(f"bagcams: gradients of shape {tuple(grads.shape)} do not match activations of shape "
                         f"{tuple(acts.shape)}: give one gradient per class of the same feature map")
    if tuple(scores.shape) != tuple(grads.shape[:2]):
        raise UsageError(f"bagcams needs the logit of each class whose gradient is given, B x k = "
                         f"{tuple(grads.shape[:2])}, got shape {tuple(scores.shape)}")


def bagcams_terms(acts: torch.Tensor, grads: torch.Tensor, scores: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The products ``P = (G / z) A`` (B x k x C x h x w) and channel factors ``a = 1 + mean_u P`` (B x k x C).

    Where a logit ``z`` is 0, ``P`` and ``a - 1`` are 0 (the log-gradient does not exist there).

    Args:
        acts: the feature map ``A``, B x C x h x w.
        grads: ``G = d z / d A`` for each requested class, B x k x C x h x w.
        scores: each requested class's logit ``z``, B x k.

    Example:
        >>> p, a = bagcams_terms(torch.ones(1, 1, 1, 2), torch.full((1, 1, 1, 1, 2), 3.0), torch.tensor([[-2.0]]))
        >>> p.flatten().tolist(), a.flatten().tolist()       # P = 3 / -2 at both locations, a = 1 - 1.5
        ([-1.5, -1.5], [-0.5])
    """
    _checked(acts, grads, scores)
    z = scores.to(grads.dtype)
    inverse = torch.where(z == 0, torch.zeros_like(z), 1 / torch.where(z == 0, torch.ones_like(z), z))
    products = grads * acts[:, None].to(grads.dtype)
    products.mul_(inverse[:, :, None, None, None])
    return products, 1 + products.mean(dim=(3, 4))


def bagcams_map(acts: torch.Tensor, grads: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """The BagCAMs map of each requested class, ``M(u) = sum_c ReLU(a_c P_c(u))``: B x k x h x w.

    ``P_c(u) = G_c(u) A_c(u) / z`` and ``a_c = 1 + mean_u P_c(u)`` (:func:`bagcams_terms`), ``G`` the
    gradient of the class's logit ``z`` with respect to the feature map. Never negative; all zeros
    for a class whose logit is 0.

    Args:
        acts: the feature map, B x C x h x w (what :func:`~camloc.cam.gradients.head_gradients` gives
            as ``acts``).
        grads: the gradient of each requested class's logit with respect to it, B x k x C x h x w
            (``grads`` there).
        scores: those classes' logits, B x k (``logits.gather(1, classes)`` there).

    Returns:
        B x k x h x w maps in the gradients' dtype.

    Raises:
        UsageError: the shapes do not fit together.

    Example:
        >>> acts = torch.tensor([[[[1.0, 3.0]]]])                 # one channel, 1 x 2 grid
        >>> bagcams_map(acts, torch.full((1, 1, 1, 1, 2), 0.5), torch.tensor([[2.0]]))  # P = (.25, .75), a = 1.5
        tensor([[[[0.3750, 1.1250]]]])
    """
    products, factors = bagcams_terms(acts, grads, scores)
    return products.mul_(factors[:, :, :, None, None]).clamp_min_(0).sum(dim=2)
