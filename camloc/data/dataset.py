"""The one image Dataset of camloc: paths in, decoded and transformed images out, failures as values.

Every consumer (batch localization, evaluation, calibration, training) reads images through
:class:`ImageDataset`, so every image is decoded by the same robust reader
(:func:`camloc.data.imaging.load_image`) and a bad file is reported the same way everywhere.

Example:
    >>> from camloc.data.dataset import ImageDataset
    >>> from camloc.data.imaging import Preprocess
    >>> ds = ImageDataset(["examples/images/cat.jpg"], Preprocess(), labels=[281])
    >>> item = ds[0]
    >>> item.image.shape, item.label, item.error
    (torch.Size([3, 224, 224]), 281, None)
    >>> batch = ImageDataset.collate([item])       # what a DataLoader(collate_fn=...) yields
    >>> batch.images.shape, batch.labels
    (torch.Size([1, 3, 224, 224]), tensor([281]))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from ..utils.errors import ImageError
from .imaging import Geometry, load_image


class Item(NamedTuple):
    """One image of a dataset: its position, the transformed image or the reason it failed."""

    index: int
    image: torch.Tensor | None
    label: int
    geometry: Geometry | None
    error: str | None


@dataclass(frozen=True)
class Batch:
    """Items of one batch in order, with the good ones' images stacked.

    Attributes:
        items: every item, failed ones included, in dataset order.
        images: B x ... stack of the good items' images (None when all failed).
        labels: their labels (int64).
        good: the good items, in the order of ``images``.
    """

    items: list[Item]
    images: torch.Tensor | None
    labels: torch.Tensor
    good: list[Item]


class ImageDataset(torch.utils.data.Dataset):
    """Images by path, decoded robustly and transformed.

    Args:
        paths: image files.
        transform: applied to the RGB PIL image; a transform that returns ``(tensor, Geometry)``
            (a :class:`~camloc.data.imaging.Preprocess`) fills ``Item.geometry``.
        labels: one class label per path (default -1).
        errors: ``"raise"`` lets an unreadable image raise :class:`~camloc.utils.errors.ImageError`;
            ``"return"`` returns it as ``Item.error`` (the reason), so a DataLoader worker never
            dies on one file.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        transform: Callable[[Any], Any],
        labels: Sequence[int] | None = None,
        errors: str = "raise",
    ) -> None:
        if errors not in ("raise", "return"):
            raise ValueError(f"errors must be 'raise' or 'return', not {errors!r}")
        if labels is not None and len(labels) != len(paths):
            raise ValueError(f"{len(labels)} labels for {len(paths)} images: give one label per image")
        self.paths = [os.fspath(p) for p in paths]
        self.labels = list(labels) if labels is not None else None
        self.transform = transform
        self.errors = errors

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Item:
        label = self.labels[index] if self.labels is not None else -1
        try:
            out = self.transform(load_image(self.paths[index]))
        except ImageError as exc:
            if self.errors == "raise":
                raise
            return Item(index, None, label, None, exc.reason)
        except Exception as exc:  # noqa: BLE001 - a worker must never die on one file
            if self.errors == "raise":
                raise ImageError(self.paths[index], f"{type(exc).__name__}: {exc}") from exc
            return Item(index, None, label, None, f"{type(exc).__name__}: {exc}")
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Geometry):
            return Item(index, out[0], label, out[1], None)
        return Item(index, out, label, None, None)

    @staticmethod
    def collate(items: list[Item]) -> Batch:
        """A DataLoader ``collate_fn``: keeps every item, stacks the good images."""
        good = [it for it in items if it.error is None]
        images = torch.stack([it.image for it in good]) if good else None
        labels = torch.tensor([it.label for it in good], dtype=torch.long)
        return Batch(list(items), images, labels, good)
