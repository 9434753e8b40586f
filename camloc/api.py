"""The notebook API: ``camloc.boxes(model, images)`` and ``camloc.cams(model, images)``.

A :class:`Localizer` holds a model, its preprocessing and the localization settings; it turns
prepared batches into :class:`Localization` results, one per image and class, with boxes in the
original image's pixels. :func:`boxes` and :func:`cams` are thin conveniences over it.

What counts as an image:

* a path, a PIL image or a numpy array: decoded, resized and normalised by the model's own
  preprocessing; boxes come back in the original pixels;
* a **uint8** tensor (``C x H x W`` or ``B x C x H x W`` with 1, 3 or 4 channels, as
  ``torchvision.io.read_image`` gives it): pixels 0..255, treated exactly like the same picture as
  a PIL image (resized, ``x / 255`` normalised with the model's mean and std), boxes in its pixels;
* a **float** tensor (``3 x H x W`` or ``B x 3 x H x W``): network input, already normalised; it is
  used as it is (cast to the model's dtype, so double and half models work) and its boxes stay in
  its pixels. It must have the model's channel count and be large enough that the model's feature
  map has more than one location (over 32 px a side for the usual stride-32 ImageNet CNNs), or it is
  refused; maps are only as good as the model is at that size, best near its preprocessing's
  ``input_size`` (224 x 224 for most).

Classes are indices or the model's label names (``"tabby"``, as results' ``label`` shows them).

Methods (``method=``): ``cam`` (the default, the paper's CAM) or a baseline by pytorch-grad-cam's
name, ``gradcam``, ``gradcam++``, ``xgradcam``, ``layercam``, ``scorecam``, computed on the same
feature layer (:mod:`camloc.cam.methods`); NWC applies where a method has signed channel weights,
PaS to every map. Every result records its method.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .cam.analysis import as_logits
from .cam.boxes import Standard, contour_boxes, foreground, make_standard
from .cam.extractor import CAMOutput, ClassSpec, first_name, input_channels, model_dtype
from .cam.hooks import eval_mode
from .cam.methods import DEFAULT_METHOD, MethodExtractor, check_method, effective_nwc
from .data.imaging import Geometry, ImageInput, Preprocess, load_image
from .models.config import class_names as _class_names
from .models.config import preprocess_for
from .models.registry import load_model
from .utils.atomic import atomic_write_text
from .utils.device import device_of
from .utils.errors import CamlocError, ImageError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Images = Union[ImageInput, torch.Tensor, Sequence[Union[ImageInput, torch.Tensor]]]
BoxF = tuple[float, float, float, float]


@dataclass(frozen=True)
class Localization:
    """Where one image's class is, by its class activation map.

    Attributes:
        image: the file path, or ``<image N>`` for in-memory inputs.
        width, height: the original image size.
        class_index: the class localized.
        label: its name (ImageNet's for 1000-class models), or ``class N``.
        score: the softmax probability of that class.
        box: ``(x0, y0, x1, y1)`` in original pixels (edges, so ``x1 - x0`` is the width).
        boxes: every region's box with ``all_regions``, else ``(box,)``.
        cam: the raw map at feature resolution (CPU float32), NWC applied if it was on.
        exact: whether ``cam`` is an exact CAM (False: a gradient map of a non-affine head, or
            another method's map).
        input_box: the box on the network input, before mapping back.
        geometry: how the network input maps to the original image (for drawing the map over it).
        method: the map's method (:mod:`camloc.cam.methods`).
        nwc: whether negative weights were clamped (False where NWC does not apply to the method).
        standard: the threshold rule that drew the box (:attr:`camloc.cam.boxes.Standard.label`:
            ``0.35 x p90``, ``0.2 x max``, ``otsu`` ...).
    """

    image: str
    width: int
    height: int
    class_index: int
    label: str
    score: float
    box: BoxF
    boxes: tuple[BoxF, ...]
    cam: torch.Tensor = field(repr=False, compare=False)
    exact: bool = True
    input_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    geometry: Optional[Geometry] = field(default=None, repr=False, compare=False)
    method: str = DEFAULT_METHOD
    nwc: bool = True
    standard: str = "0.35 x p90"

    def to_dict(self, with_map: bool = False) -> dict[str, Any]:
        """A JSON-ready dict; boxes rounded to 0.01 px."""
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
        }
        if with_map:
            d["cam"] = self.cam.tolist()
        return d

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the result (with its map) as JSON, atomically: a temporary file, then a rename."""
        atomic_write_text(path, json.dumps(self.to_dict(with_map=True)))

    def show(self, image: Any = None, ax: Optional["Axes"] = None, **kw: Any) -> "Figure":
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
            >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
            >>> fig = r.show(alpha=0.4)
            >>> fig, axes = plt.subplots(1, 2); r.show(ax=axes[0]); r2.show(ax=axes[1]);
        """
        from .viz.render import show

        return show(self, image, ax=ax, **kw)

    def _repr_png_(self) -> Optional[bytes]:
        """The picture of :meth:`show` as PNG bytes, so that a result shows itself in Jupyter.

        Drawn on a bare matplotlib Figure (pyplot is not touched: no figure is left open). None,
        so that Jupyter prints the text instead, when there is no photo to draw on: the result
        comes from an in-memory input, or its file can no longer be read.

        Example:
            >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
            >>> r   # as a cell's last line: the picture
        """
        from .viz.render import png

        try:
            return png(self)
        except CamlocError:
            return None


@dataclass(frozen=True)
class DeviceOutput:
    """The device stage of a batch, on the CPU: classes, probabilities, raw maps, foreground masks."""

    classes: torch.Tensor
    probs: torch.Tensor
    maps: torch.Tensor
    masks: torch.Tensor
    exact: bool
    num_classes: int
    method: str = DEFAULT_METHOD


class Localizer:
    """A model with its preprocessing and localization settings.

    Args:
        model: an ``nn.Module`` (used as it is, on its own device) or a registered name.
        nwc: negative weight clamping in the maps (default on).
        standard: the threshold rule (default PaS: 0.35 x 90th percentile).
        all_regions: report every region's box, not only the largest.
        preprocess: a :class:`Preprocess`; by default the model's own evaluation transform.
        resize: ``"full"`` to squash the whole image to the input size, ``"crop"`` for resize +
            center crop; default the model's own.
        device: where a model given by name runs (a module given as such is never moved).
        checkpoint: local weights for a model given by name.
        feature_layer: the feature layer's module name, when automatic discovery should be overridden.
        classifier: the classifier's module name, when automatic discovery should be overridden.
        require_exact: refuse gradient maps of non-affine heads.
        calibration: a :class:`camloc.eval.calibrate.Calibration` or its JSON file; its theta, percentile
            and NWC setting replace ``standard`` and ``nwc``, and its method is used (a different
            ``method`` is refused).
        method: ``cam`` (default: the paper's CAM) or a baseline, ``gradcam``, ``gradcam++``,
            ``xgradcam``, ``layercam``, ``scorecam`` (:mod:`camloc.cam.methods`).
        score_batch: masked images per forward pass in Score-CAM.

    Example:
        >>> loc = Localizer("efficientnet_lite0")
        >>> x, geom, name = loc.prepare("examples/images/cat.jpg")
        >>> loc.localize_batch(x[None], [geom], [name])[0][0].box
    """

    def __init__(
        self,
        model: Union[nn.Module, str],
        *,
        nwc: bool = True,
        standard: Optional[Standard] = None,
        all_regions: bool = False,
        preprocess: Optional[Preprocess] = None,
        resize: Optional[str] = None,
        device: Union[str, torch.device, None] = None,
        checkpoint: Optional[str] = None,
        feature_layer: Optional[str] = None,
        classifier: Optional[str] = None,
        require_exact: bool = False,
        calibration: Union[str, os.PathLike, Any, None] = None,
        method: Optional[str] = None,
        score_batch: Optional[int] = None,
    ) -> None:
        method = resolve_method(method, calibration)
        if calibration is not None:
            from .eval.calibrate import Calibration

            calib = calibration if isinstance(calibration, Calibration) else Calibration.load(calibration)
            standard, nwc = calib.standard(), calib.nwc
        if require_exact and method != DEFAULT_METHOD:
            raise UsageError(f"require_exact applies to method 'cam' only: {method}'s maps are never exact CAMs")
        if isinstance(model, str):
            model = load_model(model, checkpoint=checkpoint)
            if device is not None:
                model = model.to(device)
        elif checkpoint is not None:
            raise UsageError("checkpoint applies to models given by name; load weights into your module yourself")
        if resize not in (None, "full", "crop"):
            raise UsageError(f"resize must be 'full' or 'crop', not {resize!r}")
        self.model = model
        self.device = device_of(model)
        mode = {"full": "resize", "crop": "crop", None: None}[resize]
        self.preprocess = (preprocess.with_mode(mode) if mode else preprocess) if preprocess else preprocess_for(model, mode)
        self.method = method
        self.extractor = MethodExtractor(model, method, feature_layer, classifier, input_size=self.preprocess.input_size,
                                         **({"score_batch": score_batch} if score_batch else {}))
        self.nwc = nwc
        self.standard = standard or Standard.pas()
        self.all_regions = all_regions
        self.require_exact = require_exact
        self._labels: Optional[tuple[Optional[tuple[str, ...]], int]] = None

    def prepare(self, image: Union[ImageInput, torch.Tensor], name: Optional[str] = None) -> tuple[torch.Tensor, Geometry, str]:
        """Load and preprocess one image: ``(3 x H x W tensor, geometry, name)``.

        A float tensor is taken as already preprocessed network input; its boxes stay in its
        pixels. A uint8 tensor holds pixels and is preprocessed like a PIL image (see the module docs).
        """
        if name is None:
            name = source_name(image, 0)
        if isinstance(image, torch.Tensor):
            _check_tensor_dtype(image)
            if image.dtype == torch.uint8:
                x, geom = self.preprocess(load_image(image.detach().cpu().numpy()))
                return x, geom, name
            if image.ndim != 3:
                raise UsageError(f"an image tensor must be C x H x W, got shape {tuple(image.shape)}")
            return image, Geometry.identity(image.shape[2], image.shape[1]), name
        x, geom = self.preprocess(load_image(image))
        return x, geom, name

    def run(self, x: torch.Tensor, classes: ClassSpec = None, topk: Optional[int] = None) -> CAMOutput:
        """The extractor's maps for a preprocessed batch, moved to the model's device.

        Class names are looked up first (:meth:`class_indices`). A batch so small that the model's
        feature map is a single location is refused: such a map cannot localize anything.
        """
        out = self.extractor(
            x.to(self.device, non_blocking=True), classes=self.class_indices(classes), topk=topk, nwc=self.nwc,
            require_exact=self.require_exact,
        )
        if out.maps.shape[2] * out.maps.shape[3] == 1:
            height, width = x.shape[2], x.shape[3]
            ih, iw = self.preprocess.input_size
            raise ImageError(
                f"{width}x{height} px network input",
                f"too small for this model: its feature map ({out.head.feature_layer}) is 1x1 there, a single "
                f"location with nothing to localize; give tensors near the model's input size, {iw}x{ih} px, "
                "or the image itself (a path, PIL image, array or uint8 tensor), which camloc resizes",
            )
        return out

    def labels(self) -> Optional[tuple[str, ...]]:
        """The model's class names (its camloc config's, else ImageNet's for 1000 classes), None if unknown.

        The first call counts the model's classes with one forward pass on a blank input.

        Example:
            >>> Localizer("efficientnet_lite0").labels()[281]
            'tabby'
        """
        return self._label_list()[0]

    def num_classes(self) -> int:
        """How many classes the model predicts (one forward pass on a blank input, the first time).

        Example:
            >>> Localizer("efficientnet_lite0").num_classes()
            1000
        """
        return self._label_list()[1]

    def _label_list(self) -> tuple[Optional[tuple[str, ...]], int]:
        if self._labels is None:
            stem = input_channels(self.model)
            blank = torch.zeros((1, stem[1] if stem else 3, *self.preprocess.input_size), device=self.device,
                                dtype=model_dtype(self.model) or torch.float32)
            with eval_mode(self.model), torch.no_grad():
                n = as_logits(self.model(blank)).shape[1]
            self._labels = (_class_names(self.model, n), n)
        return self._labels

    def class_indices(self, classes: ClassSpec) -> ClassSpec:
        """The class request with each name (a string) replaced by its index in :meth:`labels`.

        Names match exactly, else ignoring case; a request without names comes back unchanged.

        Raises:
            UsageError: the model has no known labels, a name is unknown, or it names two classes.

        Example:
            >>> Localizer("efficientnet_lite0").class_indices(["tabby", 285])
            [281, 285]
        """
        name = first_name(classes)
        if name is None:
            return classes
        labels, n = self._label_list()
        if labels is None:
            raise UsageError(
                f"class {name!r} is a name, but camloc knows no label list for this {n}-class model (only ImageNet's "
                f"1000 and a camloc-built model's own): pass class indices 0..{n - 1}"
            )
        exact: dict[str, list[int]] = {}
        folded: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            exact.setdefault(label, []).append(i)
            folded.setdefault(label.casefold(), []).append(i)

        def index(item: Any) -> Any:
            if isinstance(item, (list, tuple)):
                return [index(v) for v in item]
            if not isinstance(item, str):
                return item
            found = exact.get(item) or folded.get(item.casefold())
            if not found:
                close = difflib.get_close_matches(item.casefold(), list(folded), n=3, cutoff=0.75)
                hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
                raise UsageError(
                    f"unknown class name {item!r}{hint}: names are the model's labels, as results' .label shows "
                    f"them; or pass the class index (0..{n - 1})"
                )
            if len(found) > 1:
                raise UsageError(
                    f"class name {item!r} fits {len(found)} classes ({', '.join(map(str, found))}): pass the index you mean"
                )
            return found[0]

        return index(classes)

    def localize_batch(
        self,
        x: torch.Tensor,
        geometries: Sequence[Geometry],
        names: Sequence[str],
        classes: ClassSpec = None,
        topk: Optional[int] = None,
    ) -> list[list[Localization]]:
        """Results for a prepared batch: one list per image, one :class:`Localization` per class."""
        return self.finish(self.device_stage(x, classes, topk), geometries, names)

    def device_stage(self, x: torch.Tensor, classes: ClassSpec = None, topk: Optional[int] = None) -> "DeviceOutput":
        """Everything that runs on the model's device: forward, maps, upsampling, thresholds, masks.

        Its output is on the CPU, ready for :meth:`finish`, which may run in another thread while
        the next batch goes through the model.
        """
        out = self.run(x, classes, topk)
        size = (x.shape[2], x.shape[3])
        _, masks = foreground(out.maps.flatten(0, 1), size, self.standard)
        probs = out.logits.softmax(dim=1).gather(1, out.classes)
        return DeviceOutput(out.classes.cpu(), probs.cpu(), out.maps.detach().cpu(), masks.cpu(), out.exact,
                            out.logits.shape[1], self.method)

    def finish(self, dev: "DeviceOutput", geometries: Sequence[Geometry], names: Sequence[str]) -> list[list[Localization]]:
        """Contours, boxes in original pixels and result objects (CPU)."""
        batch, k = dev.classes.shape
        if not (batch == len(geometries) == len(names)):
            raise UsageError(f"batch of {batch} images with {len(geometries)} geometries and {len(names)} names")
        found = [contour_boxes(mask, self.all_regions) for mask in dev.masks.to(torch.uint8).numpy()]
        labels = _class_names(self.model, dev.num_classes)
        results = []
        for i in range(batch):
            geom, per_image = geometries[i], []
            for j in range(k):
                main, regions = found[i * k + j]
                c = int(dev.classes[i, j])
                per_image.append(
                    Localization(
                        image=names[i],
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
                        nwc=effective_nwc(dev.method, self.nwc),
                        standard=self.standard.label,
                    )
                )
            results.append(per_image)
        return results

    def batches(self, images: Sequence, batch_size: int) -> Iterator[tuple[torch.Tensor, list[Geometry], list[str], slice]]:
        """Prepare images in batches: ``(x, geometries, names, index slice)``.

        A float B x 3 x H x W tensor is sliced as it is (no per-image copies); boxes stay in its
        pixels. A uint8 tensor holds pixels: each image is preprocessed like a PIL image.
        """
        if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
            images = list(images)
        if isinstance(images, torch.Tensor):
            _check_tensor_dtype(images)
            geom = Geometry.identity(images.shape[3], images.shape[2])
            for start in range(0, len(images), batch_size):
                stop = min(start + batch_size, len(images))
                yield images[start:stop], [geom] * (stop - start), [f"<tensor {i}>" for i in range(start, stop)], slice(start, stop)
            return
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            prepared = [self.prepare(im, source_name(im, start + i)) for i, im in enumerate(chunk)]
            shapes = list(dict.fromkeys(tuple(p[0].shape) for p in prepared))
            if len(shapes) > 1:
                raise UsageError(
                    f"float tensors in one call must share a shape, got {shapes[0]} and {shapes[1]}: camloc uses "
                    "network input as it is; resize them yourself, or pass the images (uint8 pixels, paths, PIL images)"
                )
            x = torch.stack([p[0] for p in prepared])
            yield x, [p[1] for p in prepared], [p[2] for p in prepared], slice(start, start + len(chunk))


def resolve_method(method: Optional[str], calibration: Union[str, os.PathLike, Any, None] = None) -> str:
    """The method a run uses: ``method``, else the calibration's, else ``cam``.

    Raises:
        UsageError: an unknown method (the names listed), or one that contradicts the calibration's.

    Example:
        >>> resolve_method(None), resolve_method("gradcam")
        ('cam', 'gradcam')
    """
    if method is not None:
        check_method(method)
    if calibration is None:
        return method or DEFAULT_METHOD
    from .eval.calibrate import Calibration

    calib = calibration if isinstance(calibration, Calibration) else Calibration.load(calibration)
    if method is not None and method != calib.method:
        raise UsageError(f"the calibration was made for method {calib.method!r}, not {method!r}: leave the method out "
                         f"to use {calib.method!r}, or calibrate again with method {method!r}")
    return calib.method


def source_name(image: Any, index: int) -> str:
    """How results name an input: its path, else ``<image N>`` / ``<tensor N>`` by position."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    return f"<tensor {index}>" if isinstance(image, torch.Tensor) else f"<image {index}>"


def _check_tensor_dtype(image: torch.Tensor) -> None:
    """Refuse tensors that are neither network input (float) nor pixels (uint8)."""
    if not (image.is_floating_point() or image.dtype == torch.uint8):
        raise ImageError(
            f"image tensor of shape {tuple(image.shape)}",
            f"is {image.dtype}: pass float network input (already normalised) or uint8 pixels 0..255 "
            "(x.to(torch.uint8) if it holds 0..255 values)",
        )


def _as_list(images: Images) -> Union[list, torch.Tensor]:
    """A float tensor as a B x C x H x W batch; anything else (a uint8 tensor too) as a list of images."""
    if isinstance(images, torch.Tensor):
        _check_tensor_dtype(images)
        if images.ndim not in (3, 4):
            raise UsageError(f"an image tensor must be C x H x W or B x C x H x W, got shape {tuple(images.shape)}")
        batch = images if images.ndim == 4 else images.unsqueeze(0)
        return list(batch) if images.dtype == torch.uint8 else batch
    if isinstance(images, (str, os.PathLike, np.ndarray)) or not isinstance(images, Iterable):
        return [images]
    return list(images)


def _split_classes(classes: ClassSpec, n: int) -> Optional[Union[int, str, list, torch.Tensor]]:
    """Validate a class request against the number of images before any work.

    Names stay as they are (a string, or a list of them) until :meth:`Localizer.class_indices`.
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


def boxes(
    model: Union[nn.Module, str],
    images: Images,
    *,
    classes: ClassSpec = None,
    topk: Optional[int] = None,
    nwc: bool = True,
    standard: str = "percentile",
    theta: Optional[float] = None,
    percentile: float = 90.0,
    all_regions: bool = False,
    resize: Optional[str] = None,
    preprocess: Optional[Preprocess] = None,
    batch_size: int = 16,
    calibration: Union[str, os.PathLike, Any, None] = None,
    method: Optional[str] = None,
    **kwargs: Any,
) -> Union[list[Localization], list[list[Localization]]]:
    """Localize the predicted (or given) class in each image.

    Defaults follow the paper: NWC on, PaS with ``theta = 0.35`` at the 90th percentile
    (``standard="max"`` gives vanilla CAM's ``0.2 x max``).

    Args:
        model: an ``nn.Module`` or a registered name (``"efficientnet_lite0"`` works offline).
        images: a path, PIL image or numpy array, a list of them, a uint8 pixel tensor (C x H x W or
            B x C x H x W, as ``torchvision.io.read_image`` gives; preprocessed like a PIL image), or a
            float tensor batch already preprocessed (used as it is; see the module docs).
        classes: one class for all, one per image, or B x k; default the top-1 prediction. Each is an
            index or one of the model's label names (``"tabby"``; ImageNet's for 1000-class models).
        topk: localize each image's top-k classes (returns a list of k results per image).
        nwc: clamp negative classifier weights to zero in the map (NWC).
        standard: the threshold rule by name: ``percentile`` (PaS), ``max``, ``otsu``, ``li``,
            ``triangle`` or ``yen`` (:func:`camloc.cam.boxes.make_standard`).
        theta: the factor of ``percentile`` and ``max`` (default 0.35 and 0.2).
        percentile: the percentile of PaS.
        all_regions: report every region's box, not only the largest.
        resize: ``"full"`` (squash to the input size) or ``"crop"`` (resize + center crop).
        preprocess: an explicit :class:`Preprocess`.
        batch_size: images per forward pass.
        calibration: a :class:`camloc.eval.calibrate.Calibration` or its JSON file; its theta, percentile
            and NWC setting replace ``standard``, ``theta``, ``percentile`` and ``nwc``; its method is used.
        method: ``cam`` (default) or ``gradcam``, ``gradcam++``, ``xgradcam``, ``layercam``,
            ``scorecam`` (:mod:`camloc.cam.methods`); NWC applies where the method has signed
            channel weights.
        **kwargs: passed to :class:`Localizer` (``device``, ``checkpoint``, ``feature_layer``, ``score_batch``, ...).

    Returns:
        One :class:`Localization` per image, or with ``topk`` / 2-D ``classes`` a list per image.

    Example:
        >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
        >>> r.label, r.box
        >>> camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg", method="gradcam++")[0].method
        'gradcam++'
    """
    items = _as_list(images)
    cls = _split_classes(classes, len(items))
    resolve_method(method)  # an unknown name before any model is loaded
    loc = Localizer(model, nwc=nwc, standard=make_standard(standard, theta, percentile), all_regions=all_regions,
                    resize=resize, preprocess=preprocess, calibration=calibration, method=method, **kwargs)
    cls = _split_classes(loc.class_indices(cls), len(items))
    nested = topk is not None or (isinstance(cls, torch.Tensor) and cls.ndim == 2)
    results: list = []
    for x, geoms, names, sl in loc.batches(items, batch_size):
        batch_cls = cls[sl] if isinstance(cls, torch.Tensor) else cls
        for per_image in loc.localize_batch(x, geoms, names, batch_cls, topk):
            results.append(per_image if nested else per_image[0])
    return results


def cams(
    model: Union[nn.Module, str],
    images: Images,
    *,
    classes: ClassSpec = None,
    topk: Optional[int] = None,
    nwc: bool = True,
    resize: Optional[str] = None,
    preprocess: Optional[Preprocess] = None,
    batch_size: int = 16,
    method: Optional[str] = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Raw class activation maps alone: N x h x w (N x k x h x w with ``topk`` or 2-D classes).

    Takes the same images and classes as :func:`boxes` (paths, PIL images, arrays, uint8 pixel
    tensors, preprocessed float tensors; class indices or label names), and the same ``method``
    (default ``cam``; the others' maps are ReLU'd, at feature resolution, not normalised).

    Example:
        >>> maps = camloc.cams("efficientnet_lite0", ["a.jpg", "b.jpg"])   # 2 x 7 x 7
        >>> grad = camloc.cams("efficientnet_lite0", ["a.jpg", "b.jpg"], method="gradcam")
    """
    items = _as_list(images)
    cls = _split_classes(classes, len(items))
    resolve_method(method)
    loc = Localizer(model, nwc=nwc, resize=resize, preprocess=preprocess, method=method, **kwargs)
    cls = _split_classes(loc.class_indices(cls), len(items))
    nested = topk is not None or (isinstance(cls, torch.Tensor) and cls.ndim == 2)
    chunks = []
    for x, _, _, sl in loc.batches(items, batch_size):
        out = loc.run(x, cls[sl] if isinstance(cls, torch.Tensor) else cls, topk)
        chunks.append(out.maps.detach().cpu())
    maps = torch.cat(chunks)
    return maps if nested else maps[:, 0]
