"""The notebook API's result, :class:`Localization`, and a batch's results from its maps and masks.

A :class:`Localization` says where one image's class is: its box in the original image's pixels,
every region's box with ``all_regions``, the raw map, the class's label and score, and the settings
that drew the box. :func:`localizations` makes them for a batch, the last step of the CPU stage
(after :func:`camloc.cam.stages.input_boxes` found the boxes on the network input), each box
mapped back to the original image's pixels by the image's :class:`~camloc.data.imaging.Geometry`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cam.names import DEFAULT_METHOD, effective_nwc
from ..cam.rules import Box
from ..cam.stages import input_boxes
from ..data.imaging import Geometry
from ..utils.atomic import atomic_write_text
from ..utils.errors import CamlocError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..cam.stages import BatchMaps

#: A box in original pixels, ``(x0, y0, x1, y1)``.
BoxF = tuple[float, float, float, float]


@dataclass(frozen=True)
class Localization:
    """Where one image's class is, by its class activation map.

    Attributes:
        image: the file path, or ``<image N>`` for in-memory inputs.
        width, height: the original image size.
        class_index: the class localized.
        label: its name (ImageNet's for 1000-class models), or ``class N``.
        score: the softmax probability of that class (its sigmoid with ``multilabel``).
        box: ``(x0, y0, x1, y1)`` in original pixels (edges, so ``x1 - x0`` is the width).
        boxes: every region's box with ``all_regions``, else ``(box,)``.
        cam: the raw map at feature resolution (a CPU float32 tensor; a NumPy array from
            :mod:`camloc.runtime`), NWC applied if it was on.
        exact: whether ``cam`` is an exact CAM (False: a gradient map of a non-affine head, or
            another method's map).
        input_box: the box on the network input, before mapping back.
        geometry: how the network input maps to the original image (for drawing the map over it).
        method: the map's method (:mod:`camloc.cam.methods`).
        nwc: whether negative weights were clamped (False where NWC does not apply to the method).
        standard: the threshold rule that drew the box (:attr:`camloc.cam.boxes.ThresholdRule.label`:
            ``0.35 x p90``, ``0.2 x max``, ``otsu`` ...).

    :attr:`region` and :attr:`region_mode` say which part of the image the model saw (from ``geometry``):
    a box can only lie inside that region.
    """

    image: str
    width: int
    height: int
    class_index: int
    label: str
    score: float
    box: BoxF
    boxes: tuple[BoxF, ...]
    cam: torch.Tensor | np.ndarray = field(repr=False, compare=False)
    exact: bool = True
    input_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    geometry: Geometry | None = field(default=None, repr=False, compare=False)
    method: str = DEFAULT_METHOD
    nwc: bool = True
    standard: str = "0.35 x p90"

    @property
    def region(self) -> BoxF:
        """The region of the original image the model saw, ``(x0, y0, x1, y1)`` in original pixels.

        The whole image with ``resize="full"`` (and for network input given as a float tensor), the
        center-crop window with ``resize="crop"``: :meth:`camloc.data.imaging.Geometry.region`.

        Example:
            >>> import camloc
            >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]   # 451 x 300, the default
            >>> r.region_mode, [round(v, 2) for v in r.region]
            ('full', [0.0, 0.0, 451.0, 300.0])
            >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg", resize="crop")[0]   # crop_pct 0.875
            >>> r.region_mode, [round(v, 2) for v in r.region]
            ('crop', [93.96, 18.75, 357.04, 281.25])
        """
        if self.geometry is None:
            return (0.0, 0.0, float(self.width), float(self.height))
        return self.geometry.region()

    @property
    def region_mode(self) -> str:
        """``"full"`` when the model saw the whole image, ``"crop"`` when it saw the center crop :attr:`region`."""
        return self.geometry.mode if self.geometry is not None else "full"

    def to_dict(self, with_map: bool = False) -> dict[str, Any]:
        """A JSON-ready dict; boxes and the region seen rounded to 0.01 px."""
        d: dict[str, Any] = {
            "image": self.image,
            "class": self.class_index,
            "label": self.label,
            "score": round(self.score, 6),
            "box": [round(v, 2) for v in self.box],
            "boxes": [[round(v, 2) for v in b] for b in self.boxes],
            "exact": self.exact,
            "method": self.method,
            "nwc": self.nwc,
            "standard": self.standard,
            "width": self.width,
            "height": self.height,
            "region": [round(v, 2) for v in self.region],
            "region_mode": self.region_mode,
        }
        if with_map:
            d["cam"] = np.asarray(self.cam).tolist()
        return d

    def save(self, path: str | os.PathLike) -> None:
        """Write the result (with its map) as JSON, atomically: a temporary file, then a rename."""
        atomic_write_text(path, json.dumps(self.to_dict(with_map=True)))

    def show(self, image: Any = None, ax: Axes | None = None, **kw: Any) -> Figure:
        """Draw this result with matplotlib: the photo, the heat map, every box with label, score and class.

        The same picture as :func:`camloc.show` (see it for the keywords: ``alpha``, ``figsize``,
        ``title``). In Jupyter the figure shows once below the cell; a result that is a cell's
        value shows itself without this call (:meth:`_repr_png_`). Several results (a list) are
        drawn as a grid by ``camloc.show(results)``.

        Args:
            image: the picture, needed when the result comes from an in-memory input (its
                ``image`` is ``<image N>``): a PIL image, ``H x W x 3`` uint8 array or path.
            ax: draw into these axes of your own figure (returned) instead of a new figure.
            **kw: passed to :func:`camloc.show`.

        Returns:
            The matplotlib Figure.

        Example:
            >>> import camloc
            >>> import matplotlib.pyplot as plt
            >>> r, r2 = camloc.boxes("efficientnet_lite0", ["examples/images/cat.jpg", "examples/images/coffee.jpg"])
            >>> fig = r.show(alpha=0.4)
            >>> fig, axes = plt.subplots(1, 2)               # two results side by side, in your own figure
            >>> r.show(ax=axes[0]) is fig, r2.show(ax=axes[1]) is fig
            (True, True)
        """
        from ..viz.render import show

        return show(self, image, ax=ax, **kw)

    def _repr_png_(self) -> bytes | None:
        r"""The picture of :meth:`show` as PNG bytes, so that a result shows itself in Jupyter.

        Drawn on a bare matplotlib Figure (pyplot is not touched: no figure is left open). None,
        so that Jupyter prints the text instead, when there is no photo to draw on: the result
        comes from an in-memory input, or its file can no longer be read.

        Example:
            >>> import camloc
            >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
            >>> r._repr_png_()[:4]     # what Jupyter draws when ``r`` is a cell's last line
            b'\x89PNG'
        """
        from ..viz.render import png

        try:
            return png(self)
        except CamlocError:
            return None


def no_class_row(image: str, geometry: Geometry, score_threshold: float | None) -> dict[str, Any]:
    """The record of an image in which no class scored above a multi-label ``score_threshold``.

    It has the image's size and the region the model saw, like a result's :meth:`Localization.to_dict`, with
    ``class`` None, no box (``boxes`` empty) and the threshold no class exceeded; so resumed and merged runs
    count the image as done, and a COCO instances file lists it as an image without objects.

    Example:
        >>> row = no_class_row("a.jpg", Geometry.identity(64, 48), 0.5)
        >>> row["class"], row["boxes"], row["width"], row["region"], row["score_threshold"]
        (None, [], 64, [0.0, 0.0, 64.0, 48.0], 0.5)
    """
    return {"image": image, "class": None, "boxes": [], "width": geometry.width, "height": geometry.height,
            "region": [round(v, 2) for v in geometry.region()], "region_mode": geometry.mode,
            "score_threshold": score_threshold}


def is_no_class(record: dict[str, Any]) -> bool:
    """Whether a record is a :func:`no_class_row` (not a result, not an error)."""
    return "error" not in record and record.get("class", 0) is None


def batch_results(dev: BatchMaps, geometries: Sequence[Geometry], names: Sequence[str], labels: tuple[str, ...] | None,
                  all_regions: bool, nwc: bool, standard: str) -> list[list[Localization]]:
    """The CPU stage of a batch: each mask's contours (:func:`~camloc.cam.stages.input_boxes`), then its results.

    The arguments are those of :func:`localizations`, with ``all_regions`` for the contours.

    Raises:
        UsageError: the batch does not have one geometry and one name per image.
    """
    batch = len(dev.classes)
    if not (batch == len(geometries) == len(names)):
        raise UsageError(f"batch of {batch} images with {len(geometries)} geometries and {len(names)} names")
    return localizations(dev, input_boxes(dev, all_regions), geometries, names, labels, nwc, standard)


def localizations(dev: BatchMaps, found: Sequence[tuple[Box, list[Box]]], geometries: Sequence[Geometry],
                  names: Sequence[str], labels: tuple[str, ...] | None, nwc: bool,
                  standard: str) -> list[list[Localization]]:
    """A batch's results: one list per image, one :class:`Localization` per class, boxes in original pixels.

    Args:
        dev: the batch's maps and masks (the device stage's output).
        found: each mask's box and regions' boxes on the network input
            (:func:`camloc.cam.stages.input_boxes`), in the order of ``dev.masks``.
        geometries: each image's geometry, which maps its boxes back to its original pixels.
        names: each image's name.
        labels: the model's class names, None if unknown (results then say ``class N``).
        nwc: whether NWC was asked for (results record it where it applies to the method).
        standard: the threshold rule's label (:attr:`camloc.cam.boxes.ThresholdRule.label`).
    """
    batch, k = dev.classes.shape
    return [[_localization(dev, i, j, found[i * k + j], geometries[i], names[i], labels, nwc, standard)
             for j in range(k)] for i in range(batch)]


def _localization(dev: BatchMaps, i: int, j: int, found: tuple[Box, list[Box]], geom: Geometry, name: str,
                  labels: tuple[str, ...] | None, nwc: bool, standard: str) -> Localization:
    """The result of image ``i``'s ``j``-th class, ``found`` its box and regions' boxes on the network input."""
    main, regions = found
    c = int(dev.classes[i, j])
    return Localization(
        image=name,
        width=geom.width,
        height=geom.height,
        class_index=c,
        label=labels[c] if labels else f"class {c}",
        score=float(dev.probs[i, j]),
        box=geom.box_to_original(main),
        boxes=tuple(geom.box_to_original(b) for b in regions),
        cam=dev.maps[i, j],
        exact=dev.exact,
        input_box=main,
        geometry=geom,
        method=dev.method,
        nwc=effective_nwc(dev.method, nwc),
        standard=standard,
    )
