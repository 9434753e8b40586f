"""A split's images in batches, as ``evaluate``, ``calibrate`` and ``diagnose`` read them.

Also how an image that cannot be scored is listed.

An image that cannot be read never stops a run: :func:`sample_batches` returns it with its reason,
:func:`failure` lists it, and :func:`nothing_scored` is the error when no item could be scored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.imaging import Preprocess
from ..data.metadata import Sample
from ..data.transforms import protocol_transform
from ..models.config import at_train_size, model_config, preprocess_for
from ..utils.defaults import SIZE


class LoadedBatch(NamedTuple):
    """One batch of a split: the images that decoded (their sizes known) and those that did not.

    Attributes:
        samples: the good samples, in order (``width`` / ``height`` from the image where the
            metadata had none).
        x: their network input on the device (None when none decoded).
        labels: their labels.
        failed: ``(sample, reason)`` for each image that could not be read.
    """

    samples: list[Sample]
    x: torch.Tensor | None
    labels: torch.Tensor
    failed: list[tuple[Sample, str]]


def sample_batches(samples: Sequence[Sample], images: Path, pre: Preprocess, batch_size: int,
                   device: torch.device, workers: int = 0) -> Iterator[LoadedBatch]:
    """A :class:`LoadedBatch` per batch of a split, in order.

    The images go through camloc's one Dataset, decoded by ``workers`` DataLoader processes (0: in
    this process), on ``device``.

    An image that cannot be read is returned in ``LoadedBatch.failed`` with its reason, never raised.
    """
    data = ImageDataset([images / s.image_id for s in samples], pre, [s.label for s in samples], errors="return")
    order = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(data), batch_size, drop_last=False)
    loader = torch.utils.data.DataLoader(data, batch_sampler=order, num_workers=workers,
                                         collate_fn=ImageDataset.collate)
    for batch in loader:
        good, failed = [], []
        for item in batch.items:
            s = samples[item.index]
            if item.error is not None:
                failed.append((s, item.error))
            elif s.width is None or s.height is None:
                g = item.geometry
                good.append(replace(s, width=g.width, height=g.height))
            else:
                good.append(s)
        x = batch.images.to(device) if batch.images is not None else None
        yield LoadedBatch(good, x, batch.labels, failed)



def protocol_preprocess(protocol: str, model: nn.Module) -> Preprocess:
    """The test transform of a protocol, with the model's own mean and std, at the size camloc trained it at."""
    own = preprocess_for(model)
    return at_train_size(protocol_transform(protocol, own.mean, own.std), model)


def input_size_note(protocol: str, model: nn.Module, pre: Preprocess) -> str | None:
    """What to say when a protocol shows ``model`` its images at another size than the model's own.

    A model camloc trained is evaluated at the size it was trained at (:func:`protocol_preprocess`), which
    is said too, so that a number made at 64 px is never read as one made at 224.

    Example:
        >>> import timm
        >>> from camloc.eval.batches import input_size_note, protocol_preprocess
        >>> lite1 = timm.create_model("efficientnet_lite1")     # its own input: 240 x 240
        >>> print(input_size_note("rethinking", lite1, protocol_preprocess("rethinking", lite1)))
        the model's own input is 240x240, the rethinking protocol's 224x224: these numbers are at 224x224
    """
    (h, w), (oh, ow) = pre.input_size, preprocess_for(model).input_size
    trained = model_config(model).train_size
    if trained is not None:  # the protocol's transform already follows it: say so where it is not 224
        if (h, w) == (SIZE, SIZE):
            return None
        return (f"the model was trained at {trained[1]}x{trained[1]} (resize {trained[0]}): the {protocol} "
                f"protocol's transform is taken at that size, {h}x{w}, not at {SIZE}x{SIZE}")
    if (h, w) != (oh, ow):
        return f"the model's own input is {oh}x{ow}, the {protocol} protocol's {h}x{w}: these numbers are at {h}x{w}"
    return None

