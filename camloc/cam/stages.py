"""A batch's two stages between maps and boxes: foreground masks on the model's device, contours on the CPU.

The device stage (:func:`batch_maps`) takes an extractor's output to :class:`BatchMaps`: steps 1-4
of the box rule (:func:`camloc.cam.boxes.foreground`: upsample, min-max, threshold) run batched where
the maps are, then everything moves to the CPU. The CPU stage (:func:`input_boxes`) finds the
contours (step 5), one mask at a time. Split this way, a folder run finds the boxes of one batch in
a thread while the next batch goes through the model.

Importing this module loads no torch (the device stage imports it when it runs): the runtime of an
exported model (:mod:`camloc.runtime`) fills a :class:`BatchMaps` with NumPy arrays from its graph and
finds the boxes with the same :func:`input_boxes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .names import DEFAULT_METHOD
from .rules import Box, ThresholdRule, contour_boxes

if TYPE_CHECKING:  # pragma: no cover
    from .extractor import CAMOutput


@dataclass(frozen=True)
class BatchMaps:
    """A batch's maps with their classes, scores and foreground masks, on the CPU: all that boxes need.

    The fields are CPU tensors from :func:`batch_maps`, NumPy arrays from an exported model's runtime.

    Attributes:
        classes: B x k class indices.
        probs: B x k probabilities of those classes, ``softmax(logits)[b, classes[b, j]]`` (``sigmoid`` for
            multi-label heads).
        maps: B x k x h x w raw maps at feature resolution.
        masks: (B * k) x H x W foreground masks ``U > t`` at the network input's size, image-major
            (the mask of image ``i``, class ``j`` is ``masks[i * k + j]``).
        exact: whether the maps are exact CAMs.
        num_classes: how many classes the model predicts (the width of its logits).
        method: the maps' method (:mod:`camloc.cam.methods`).
    """

    classes: Any
    probs: Any
    maps: Any
    masks: Any
    exact: bool
    num_classes: int
    method: str = DEFAULT_METHOD


def batch_maps(out: CAMOutput, size: tuple[int, int], standard: ThresholdRule, method: str,
               sigmoid: bool = False) -> BatchMaps:
    """The device stage after the extractor: foreground masks at ``size`` and class probabilities, moved to the CPU.

    Args:
        out: the extractor's maps for a batch.
        size: ``(H, W)`` of the network input, which the masks take.
        standard: the threshold rule.
        method: the method the maps were made by.
        sigmoid: score each class by ``sigmoid(logit)`` (multi-label heads) instead of the softmax.
    """
    from .boxes import foreground

    _, masks = foreground(out.maps.flatten(0, 1), size, standard)
    probs = (out.logits.sigmoid() if sigmoid else out.logits.softmax(dim=1)).gather(1, out.classes)
    return BatchMaps(out.classes.cpu(), probs.cpu(), out.maps.detach().cpu(), masks.cpu(), out.exact,
                     out.logits.shape[1], method)


def input_boxes(maps: BatchMaps, all_regions: bool = False) -> list[tuple[Box, list[Box]]]:
    """The CPU stage: each mask's box and its regions' boxes on the network input.

    One ``(box, regions)`` per mask (:func:`~camloc.cam.boxes.contour_boxes`), in the order of
    :attr:`BatchMaps.masks`.
    """
    return [contour_boxes(np.asarray(mask, dtype=np.uint8), all_regions) for mask in maps.masks]
