"""PC1 (EigenCAM): the feature map projected on its first principal component, with its sign fixed by the class.

For an image's feature map ``A`` (C x h x w), the ``n = h w`` locations are points in channel space:
``X`` (n x C, one row per location), centred per channel, ``Xc = X - mean_rows(X)``. Its first
principal direction ``v1`` (the first right singular vector of ``Xc``) is the direction in which the
locations vary most, and the map is each location's coordinate along it, ``P = Xc v1`` (n values,
reshaped to h x w; equal to ``s1 u1`` of the SVD ``Xc = U S V^T``). This is pytorch-grad-cam's EigenCAM
(``pytorch_grad_cam/eigen_cam.py`` and ``get_2d_projection`` in ``utils/svd_on_activations.py``: the
same centring, the same first component, then ``base_cam.py``'s ReLU), and the PC1 map of "CAM Back
Again: Large Kernel CNNs from a Weakly Supervised Object Localization Perspective" (Kim et al.,
CVPR 2024), which localizes with the first principal component of the last feature map.

A singular vector's sign is arbitrary (LAPACK returns either), and the ReLU keeps only one side, so
EigenCAM as such can come out as the background. camloc fixes the sign per class: ``P`` is oriented to
correlate positively with the class's own map ``R_k`` (its CAM without NWC: ``sum_c W[k,c] A_c`` for an
exact head, the head's summed gradient weights otherwise), ``M_k = ReLU(sign(<P - mean P, R_k - mean R_k>) P)``.
The map is the same for every class of an image up to that sign: PC1 does not depend on the class
otherwise. A feature map whose locations do not vary at all gives ``P = 0``.
"""

from __future__ import annotations

import torch


def pc1_projection(acts: torch.Tensor) -> torch.Tensor:
    """Each image's locations projected on their first principal component: B x h x w, sign as the SVD gives it.

    ``P = Xc v1 = s1 u1`` with ``Xc`` the centred n x C matrix of an image's locations (float64 SVD, float32 out).

    Example:
        >>> acts = torch.tensor([[[[0.0, 1.0, 2.0]], [[0.0, 2.0, 4.0]]]])     # 2 channels on a 1 x 3 grid
        >>> p = pc1_projection(acts)                                        # locations along (1, 2): -5, 0, 5 / sqrt 5
        >>> [round(v, 4) for v in p.abs().flatten().tolist()]
        [2.2361, 0.0, 2.2361]
    """
    batch, channels, h, w = acts.shape
    x = acts.double().flatten(2).transpose(1, 2)  # B x n x C
    centred = x - x.mean(dim=1, keepdim=True)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    return (u[:, :, 0] * s[:, :1]).view(batch, h, w).float()


def oriented(projection: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The projection (B x h x w) signed per class to correlate positively with ``reference`` (B x k x h x w).

    Returns B x k x h x w; a class whose reference is uncorrelated (or constant) keeps the SVD's sign.

    Example:
        >>> p = torch.tensor([[[1.0, -1.0]]])
        >>> oriented(p, torch.tensor([[[[0.0, 3.0]], [[3.0, 0.0]]]])).tolist()
        [[[[-1.0, 1.0]], [[1.0, -1.0]]]]
    """
    p = projection.unsqueeze(1)
    dot = ((p - p.mean(dim=(2, 3), keepdim=True)) * (reference - reference.mean(dim=(2, 3), keepdim=True))).sum((2, 3))
    sign = torch.where(dot < 0, -1.0, 1.0).to(p.dtype)
    return sign[:, :, None, None] * p


def pc1_maps(acts: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The PC1 map of each class: ``ReLU`` of the oriented projection, B x k x h x w (float32).

    Args:
        acts: the feature map, B x C x h x w.
        reference: each class's own map, B x k x h x w, which fixes the sign (:func:`oriented`).

    Example:
        >>> acts = torch.tensor([[[[0.0, 1.0, 2.0]], [[0.0, 2.0, 4.0]]]])
        >>> [round(v, 4) for v in pc1_maps(acts, acts[:, :1]).flatten().tolist()]   # oriented like channel 0
        [0.0, 0.0, 2.2361]
    """
    return oriented(pc1_projection(acts), reference.float()).clamp_min(0)
