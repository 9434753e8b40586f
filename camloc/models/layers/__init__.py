"""Layers camloc adds to networks, one small file per family (as in ``timm/layers``).

* :mod:`~camloc.models.layers.pooling`: TAP and GAP, chosen by name with :func:`make_pool`;
* :mod:`~camloc.models.layers.has`: Hide-and-Seek (:class:`HideAndSeek`, :func:`has_mask`);
* :mod:`~camloc.models.layers.adl`: the Attention-based Dropout Layer (:class:`ADL`).
"""

from .adl import ADL, attention_maps
from .has import HideAndSeek, has_mask
from .pooling import POOLS, GlobalAvgPool2d, ThresholdedAvgPool2d, make_pool

__all__ = ["ADL", "POOLS", "GlobalAvgPool2d", "HideAndSeek", "ThresholdedAvgPool2d", "attention_maps", "has_mask",
           "make_pool"]
