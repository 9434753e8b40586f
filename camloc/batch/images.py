"""The notebook API's images, in memory or on disk, as network-input batches (:class:`camloc.api.Localizer`).

An image is a path, a PIL image, a numpy array or a tensor. Everything but a float tensor goes
through the model's preprocessing (:class:`~camloc.data.imaging.Preprocess`): a **uint8** tensor
holds pixels 0..255 and is treated like the same picture as a PIL image. A **float** tensor is
network input, already normalised: it is used as it is and its boxes stay in its pixels
(:meth:`Geometry.identity <camloc.data.imaging.Geometry.identity>`). A class request is checked
against the number of images before any work, and sliced with them batch by batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..cam.extractor import ClassSpec, first_name
from ..data.imaging import Geometry, ImageInput, Preprocess, image_list, load_image
from ..data.imaging import source_name as source_name
from ..utils.errors import ImageError, UsageError

#: What the notebook API takes as images: one image (a tensor may hold a batch) or a sequence of them.
Images = ImageInput | torch.Tensor | Sequence[ImageInput | torch.Tensor]
#: A class request checked against the images (:func:`split_classes`).
Classes = int | str | list | torch.Tensor | None
#: One prepared image: ``(3 x H x W tensor, geometry, name)``.
PreparedImage = tuple[torch.Tensor, Geometry, str]
#: How an image is prepared: ``prepare(image, name) -> (x, geometry, name)``.
Preparer = Callable[[Any, str], PreparedImage]
#: One prepared batch: ``(x, geometries, names, index slice)``.
PreparedBatch = tuple[torch.Tensor, list[Geometry], list[str], slice]


def check_tensor_dtype(image: torch.Tensor) -> None:
    """Refuse tensors that are neither network input (float) nor pixels (uint8).

    Raises:
        ImageError: any other dtype (an integer or bool tensor), with the fix.
    """
    if not (image.is_floating_point() or image.dtype == torch.uint8):
        raise ImageError(
            f"image tensor of shape {tuple(image.shape)}",
            f"is {image.dtype}: pass float network input (already normalised) or uint8 pixels 0..255 "
            "(x.to(torch.uint8) if it holds 0..255 values)",
        )


def as_list(images: Images) -> list | torch.Tensor:
    """A float tensor as a B x C x H x W batch; anything else (a uint8 tensor too) as a list of images.

    Example:
        >>> as_list("examples/images/cat.jpg"), as_list(torch.zeros(3, 8, 8)).shape
        (['examples/images/cat.jpg'], torch.Size([1, 3, 8, 8]))
    """
    if isinstance(images, torch.Tensor):
        check_tensor_dtype(images)
        if images.ndim not in (3, 4):
            raise UsageError(f"an image tensor must be C x H x W or B x C x H x W, got shape {tuple(images.shape)}")
        batch = images if images.ndim == 4 else images.unsqueeze(0)
        return list(batch) if images.dtype == torch.uint8 else batch
    return image_list(images)


def split_classes(classes: ClassSpec, n: int) -> Classes:
    """Validate a class request against the number of images ``n`` before any work.

    Names stay as they are (a string, or a list of them) until :meth:`camloc.api.Localizer.class_indices`;
    one class per image (or one row of classes per image) becomes a tensor, which :func:`classes_for`
    slices batch by batch.

    Raises:
        UsageError: not one class (or row) per image, or classes that are neither ints nor names.

    Example:
        >>> split_classes([281, 285], 2)
        tensor([281, 285])
    """
    if isinstance(classes, np.ndarray) and classes.dtype.kind in "US":
        classes = classes.tolist()
    if classes is None or isinstance(classes, (int, str)) and not isinstance(classes, bool):
        return classes
    if first_name(classes) is not None:
        if len(classes) != n:
            raise UsageError(f"got {len(classes)} classes for {n} images: give one class (or one row) per image")
        return list(classes)
    try:
        idx = torch.as_tensor(classes)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UsageError(f"classes must be ints, label names or a tensor of ints, not {classes!r} ({exc})") from exc
    if idx.ndim == 0:
        return int(idx)
    if idx.shape[0] != n:
        raise UsageError(f"got {idx.shape[0]} classes for {n} images: give one class (or one row) per image")
    return idx


def classes_for(classes: Classes, rows: slice) -> Classes:
    """The class request for the images ``rows`` of one batch: a tensor's rows, anything else as it is."""
    return classes[rows] if isinstance(classes, torch.Tensor) else classes


def prepare_image(image: ImageInput | torch.Tensor, preprocess: Preprocess, name: str) -> PreparedImage:
    """One image as ``(3 x H x W tensor, geometry, name)``.

    A float tensor is taken as already preprocessed network input, with the identity geometry; a
    uint8 tensor holds pixels and is preprocessed like a PIL image, as is every other image.

    Raises:
        UsageError: a float tensor that is not C x H x W.
        ImageError: a tensor of another dtype, or an image that cannot be read.
    """
    if isinstance(image, torch.Tensor):
        check_tensor_dtype(image)
        if image.dtype == torch.uint8:
            x, geom = preprocess(load_image(image.detach().cpu().numpy()))
            return x, geom, name
        if image.ndim != 3:
            raise UsageError(f"an image tensor must be C x H x W, got shape {tuple(image.shape)}")
        return image, Geometry.identity(image.shape[2], image.shape[1]), name
    x, geom = preprocess(load_image(image))
    return x, geom, name


def prepared_batches(images: Sequence | torch.Tensor, batch_size: int, prepare: Preparer) -> Iterator[PreparedBatch]:
    """Prepare images in batches of ``batch_size``: ``(x, geometries, names, index slice)``.

    A float B x 3 x H x W tensor is sliced as it is (no per-image copies); boxes stay in its
    pixels. Any other image goes through ``prepare(image, name)`` (:func:`prepare_image` with the
    model's preprocessing), named by :func:`source_name`; a uint8 tensor holds pixels, so each of its
    images is preprocessed like a PIL image.

    Raises:
        UsageError: float tensors of different shapes in one batch.
    """
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        images = list(images)
    if isinstance(images, torch.Tensor):
        check_tensor_dtype(images)
        geom = Geometry.identity(images.shape[3], images.shape[2])
        for start in range(0, len(images), batch_size):
            stop = min(start + batch_size, len(images))
            names = [f"<tensor {i}>" for i in range(start, stop)]
            yield images[start:stop], [geom] * (stop - start), names, slice(start, stop)
        return
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        prepared = [prepare(im, source_name(im, start + i)) for i, im in enumerate(chunk)]
        shapes = list(dict.fromkeys(tuple(p[0].shape) for p in prepared))
        if len(shapes) > 1:
            raise UsageError(
                f"float tensors in one call must share a shape, got {shapes[0]} and {shapes[1]}: camloc uses "
                "network input as it is; resize them yourself, or pass the images (uint8 pixels, paths, PIL images)"
            )
        x = torch.stack([p[0] for p in prepared])
        yield x, [p[1] for p in prepared], [p[2] for p in prepared], slice(start, start + len(chunk))
