"""Layers camloc adds to networks, one small file per family (as in ``timm/layers``).

* :mod:`~camloc.models.layers.pooling`: TAP and GAP, chosen by name with :func:`make_pool`.
"""

from .pooling import POOLS, GlobalAvgPool2d, ThresholdedAvgPool2d, make_pool

__all__ = ["POOLS", "GlobalAvgPool2d", "ThresholdedAvgPool2d", "make_pool"]
