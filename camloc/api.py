"""The notebook API: ``camloc.boxes(model, images)`` and ``camloc.cams(model, images)``.

A :class:`Localizer` holds a model, its preprocessing and the localization settings; it turns
prepared batches into :class:`Localization` results, one per image and class, with boxes in the
original image's pixels. :func:`boxes` and :func:`cams` are thin conveniences over it.

What counts as an image:

* a path, a PIL image or a numpy array: decoded, resized (by default the whole image, squashed to the
  model's input size) and normalised by the model's own preprocessing; boxes come back in the
  original pixels;
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
PaS to every map. Every result records its method, and the region of the image the model saw
(``region``, in original pixels, and ``region_mode``: ``"full"`` or ``"crop"``): with the center crop
the model never sees the image's edges, so no box reaches them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from .batch.images import (
    Classes,
    Images,
    PreparedBatch,
    as_list,
    classes_for,
    prepare_image,
    prepared_batches,
    source_name,
    split_classes,
)
from .batch.results import BoxF as BoxF
from .batch.results import Localization, batch_results
from .cam.cache import PROCESS_HEADS, HeadCache
from .cam.extractor import AboveScore, CAMOutput, ClassSpec, first_name
from .cam.methods import MethodExtractor
from .cam.names import DEFAULT_METHOD, check_method
from .cam.rules import ThresholdRule, make_standard
from .cam.stages import BatchMaps, batch_maps
from .data.imaging import Geometry, ImageInput, Preprocess, mode_for_region
from .models.config import class_names as _class_names
from .models.config import preprocess_for
from .models.labels import Labels, label_indices, model_labels
from .models.registry import load_model
from .utils.defaults import REGION
from .utils.device import device_of
from .utils.errors import ImageError, UsageError


class Localizer:
    """A model with its preprocessing and localization settings.

    Args:
        model: an ``nn.Module`` (used as it is, on its own device) or a registered name.
        nwc: negative weight clamping in the maps (default on).
        standard: the threshold rule (default PaS: 0.35 x 90th percentile).
        all_regions: report every region's box, not only the largest.
        preprocess: a :class:`Preprocess`; by default the model's own evaluation transform.
        resize: ``"full"`` to squash the whole image to the input size (the default, unless ``preprocess`` is
            given: :data:`camloc.utils.defaults.REGION`), ``"crop"`` for the model's own resize + center crop.
        device: where a model given by name runs (a module given as such is never moved).
        checkpoint: local weights for a model given by name.
        feature_layer: the feature layer's module name, when automatic discovery should be overridden.
        classifier: the classifier's module name, when automatic discovery should be overridden.
        require_exact: refuse gradient maps of non-affine heads.
        calibration: a :class:`camloc.eval.calibration.Calibration` or its JSON file; its theta, percentile
            and NWC setting replace ``standard`` and ``nwc``, and its method is used (a different
            ``method`` is refused).
        method: ``cam`` (default: the paper's CAM) or a baseline, ``gradcam``, ``gradcam++``,
            ``xgradcam``, ``layercam``, ``scorecam`` (:mod:`camloc.cam.methods`).
        score_batch: masked images per forward pass in Score-CAM.
        multilabel: score by sigmoid; localize every class above ``score_threshold`` where none are asked for.
        score_threshold: the sigmoid score to exceed (:class:`~camloc.cam.extractor.AboveScore`).
        max_classes: the most classes an image gets with ``multilabel``, the highest scores first.

    Example:
        >>> from camloc.api import Localizer
        >>> loc = Localizer("efficientnet_lite0")
        >>> x, geom, name = loc.prepare("examples/images/cat.jpg")    # the network input and the original's geometry
        >>> tuple(x.shape), (geom.width, geom.height)
        ((3, 224, 224), (451, 300))
        >>> r = loc.localize_batch(x[None], [geom], [name])[0][0]    # image 0's first (here only) class
        >>> r.label, [round(v) for v in r.box]                       # the box in the original's pixels
        ('Egyptian cat', [81, 68, 411, 300])
        >>> r.region_mode, [round(v) for v in r.region]              # the part of the photo the model saw
        ('full', [0, 0, 451, 300])
    """

    #: The head analyses of every Localizer's extractor (:class:`~camloc.cam.cache.HeadCache`), so
    #: that a model's head is analysed once however many Localizers (and :func:`boxes` / :func:`cams`
    #: calls) use it. It lives as long as the process; a model's analyses, until the model is garbage
    #: collected (the cache never keeps a model alive).
    heads: ClassVar[HeadCache] = PROCESS_HEADS

    def __init__(
        self,
        model: nn.Module | str,
        *,
        nwc: bool = True,
        standard: ThresholdRule | None = None,
        all_regions: bool = False,
        preprocess: Preprocess | None = None,
        resize: str | None = None,
        device: str | torch.device | None = None,
        checkpoint: str | None = None,
        feature_layer: str | None = None,
        classifier: str | None = None,
        require_exact: bool = False,
        calibration: str | os.PathLike | Any | None = None,
        method: str | None = None,
        score_batch: int | None = None,
        multilabel: bool = False,
        score_threshold: float = 0.5,
        max_classes: int = 100,
    ) -> None:
        method, standard, nwc = _settings(method, calibration, standard, nwc, require_exact)
        self.score_threshold, self.max_classes = _above(multilabel, score_threshold, max_classes)
        model = _model(model, checkpoint, device)
        mode = mode_for_region(resize if resize is not None or preprocess is not None else REGION)
        self.model = model
        self.device = device_of(model)
        self.preprocess = ((preprocess.with_mode(mode) if mode else preprocess) if preprocess
                           else preprocess_for(model, mode))
        self.method = method
        self.extractor = MethodExtractor(model, method, feature_layer, classifier,
                                         input_size=self.preprocess.input_size,
                                         cache=self.heads, **({"score_batch": score_batch} if score_batch else {}))
        self.nwc = nwc
        self.standard = standard or ThresholdRule.pas()
        self.all_regions = all_regions
        self.require_exact = require_exact
        self._labels: Labels | None = None

    def prepare(self, image: ImageInput | torch.Tensor, name: str | None = None) -> tuple[torch.Tensor, Geometry, str]:
        """Load and preprocess one image: ``(3 x H x W tensor, geometry, name)``.

        A float tensor is taken as already preprocessed network input; its boxes stay in its
        pixels. A uint8 tensor holds pixels and is preprocessed like a PIL image (see the module docs).
        """
        return prepare_image(image, self.preprocess, source_name(image, 0) if name is None else name)

    def run(self, x: torch.Tensor, classes: ClassSpec = None, topk: int | None = None) -> CAMOutput:
        """The extractor's maps for a preprocessed batch, moved to the model's device.

        Class names are looked up first (:meth:`class_indices`). A batch so small that the model's
        feature map is a single location is refused: such a map cannot localize anything.
        """
        if self.score_threshold is not None and classes is None and topk is None:
            classes = AboveScore(self.score_threshold, self.max_classes)
        out = self.extractor(x.to(self.device, non_blocking=True), classes=self.class_indices(classes), topk=topk,
                             nwc=self.nwc, require_exact=self.require_exact)
        if out.maps.shape[2] * out.maps.shape[3] == 1:
            raise _single_location(x, out, self.preprocess.input_size)
        return out

    def labels(self) -> tuple[str, ...] | None:
        """The model's class names (its camloc config's, else ImageNet's for 1000 classes), None if unknown.

        The first call counts the model's classes with one forward pass on a blank input.

        Example:
            >>> from camloc.api import Localizer
            >>> Localizer("efficientnet_lite0").labels()[281]
            'tabby'
        """
        return self._label_list()[0]

    def num_classes(self) -> int:
        """How many classes the model predicts (one forward pass on a blank input, the first time).

        Example:
            >>> from camloc.api import Localizer
            >>> Localizer("efficientnet_lite0").num_classes()
            1000
        """
        return self._label_list()[1]

    def _label_list(self) -> Labels:
        if self._labels is None:
            self._labels = model_labels(self.model, self.preprocess.input_size, self.device)
        return self._labels

    def class_indices(self, classes: ClassSpec) -> ClassSpec:
        """The class request with each name (a string) replaced by its index in :meth:`labels`.

        Names match exactly, else ignoring case; a request without names comes back unchanged.

        Raises:
            UsageError: the model has no known labels, a name is unknown, or it names two classes.

        Example:
            >>> from camloc.api import Localizer
            >>> Localizer("efficientnet_lite0").class_indices(["tabby", 285])
            [281, 285]
        """
        if first_name(classes) is None:
            return classes
        return label_indices(classes, *self._label_list())

    def boxes(self, images: Images, *, classes: ClassSpec = None, topk: int | None = None,
              batch_size: int = 16) -> list[Localization] | list[list[Localization]]:
        """Localize each image with this model and these settings: :func:`boxes` without rebuilding them.

        Example:
            >>> from camloc.api import Localizer
            >>> loc = Localizer("efficientnet_lite0")
            >>> [r.label for r in loc.boxes(["examples/images/cat.jpg", "examples/images/coffee.jpg"])]
            ['Egyptian cat', 'espresso']
        """
        items = as_list(images)
        cls, nested = _indexed(self, split_classes(classes, len(items)), len(items), topk)
        results = [per_image for x, geoms, names, rows in self.batches(items, batch_size)
                   for per_image in self.localize_batch(x, geoms, names, classes_for(cls, rows), topk)]
        return results if nested else [per_image[0] for per_image in results]

    def localize_batch(
        self,
        x: torch.Tensor,
        geometries: Sequence[Geometry],
        names: Sequence[str],
        classes: ClassSpec = None,
        topk: int | None = None,
    ) -> list[list[Localization]]:
        """Results for a prepared batch: one list per image, one :class:`Localization` per class."""
        return self.finish(self.device_stage(x, classes, topk), geometries, names)

    def device_stage(self, x: torch.Tensor, classes: ClassSpec = None, topk: int | None = None) -> BatchMaps:
        """Everything that runs on the model's device: forward, maps, upsampling, thresholds, masks.

        Its output is on the CPU, ready for :meth:`finish`, which may run in another thread while
        the next batch goes through the model.
        """
        return batch_maps(self.run(x, classes, topk), (x.shape[2], x.shape[3]), self.standard, self.method,
                          sigmoid=self.score_threshold is not None)

    def finish(self, dev: BatchMaps, geometries: Sequence[Geometry], names: Sequence[str]) -> list[list[Localization]]:
        """Contours, boxes in original pixels and result objects (CPU)."""
        labels = _class_names(self.model, dev.num_classes)
        return _above_threshold(batch_results(dev, geometries, names, labels, self.all_regions, self.nwc,
                                              self.standard.label), self.score_threshold)

    def batches(self, images: Sequence | torch.Tensor, batch_size: int) -> Iterator[PreparedBatch]:
        """Prepare images in batches: ``(x, geometries, names, index slice)``.

        A float B x 3 x H x W tensor is sliced as it is (no per-image copies); boxes stay in its
        pixels. A uint8 tensor holds pixels: each image is preprocessed like a PIL image.
        """
        return prepared_batches(images, batch_size, self.prepare)


def resolve_method(method: str | None, calibration: str | os.PathLike | Any | None = None) -> str:
    """The method a run uses: ``method``, else the calibration's, else ``cam``.

    Raises:
        UsageError: an unknown method (the names listed), or one that contradicts the calibration's.

    Example:
        >>> from camloc.api import resolve_method
        >>> resolve_method(None), resolve_method("gradcam"), resolve_method("eigencam")
        ('cam', 'gradcam', 'pc1')
    """
    if method is not None:
        method = check_method(method)  # an alias becomes its method: eigencam is pc1
    if calibration is None:
        return method or DEFAULT_METHOD
    from .eval.calibration import Calibration

    calib = calibration if isinstance(calibration, Calibration) else Calibration.load(calibration)
    if method is not None and method != calib.method:
        raise UsageError(f"the calibration was made for method {calib.method!r}, not {method!r}: leave the method out "
                         f"to use {calib.method!r}, or calibrate again with method {method!r}")
    return calib.method


def _settings(method: str | None, calibration: str | os.PathLike | Any | None, standard: ThresholdRule | None,
              nwc: bool, require_exact: bool) -> tuple[str, ThresholdRule | None, bool]:
    """``(method, standard, nwc)`` as a Localizer uses them: a calibration's replace those given.

    Raises:
        UsageError: an unknown method, one the calibration contradicts, or ``require_exact`` with a
            method other than ``cam``.
    """
    method = resolve_method(method, calibration)
    if calibration is not None:
        from .eval.calibration import Calibration

        calib = calibration if isinstance(calibration, Calibration) else Calibration.load(calibration)
        standard, nwc = calib.standard(), calib.nwc
    if require_exact and method != DEFAULT_METHOD:
        raise UsageError(f"require_exact applies to method 'cam' only: {method}'s maps are never exact CAMs")
    return method, standard, nwc


def _model(model: nn.Module | str, checkpoint: str | None, device: str | torch.device | None) -> nn.Module:
    """A model given by name, loaded (with ``checkpoint``) and moved to ``device``; a module as it is."""
    if isinstance(model, str):
        model = load_model(model, checkpoint=checkpoint)
        if device is not None:
            model = model.to(device)
    elif checkpoint is not None:
        raise UsageError("checkpoint applies to models given by name; load weights into your module yourself")
    return model


def _single_location(x: torch.Tensor, out: CAMOutput, input_size: tuple[int, int]) -> ImageError:
    """The error for a batch whose feature map is 1 x 1: a single location, with nothing to localize."""
    height, width = x.shape[2], x.shape[3]
    ih, iw = input_size
    return ImageError(
        f"{width}x{height} px network input",
        f"too small for this model: its feature map ({out.head.feature_layer}) is 1x1 there, a single "
        f"location with nothing to localize; give tensors near the model's input size, {iw}x{ih} px, "
        "or the image itself (a path, PIL image, array or uint8 tensor), which camloc resizes",
    )


def _request(images: Images, classes: ClassSpec, method: str | None) -> tuple[list | torch.Tensor, Classes]:
    """The images as a list (a float tensor as one batch) and the class request checked against them.

    Both, and the method's name, are checked before any model is loaded.
    """
    items = as_list(images)
    cls = split_classes(classes, len(items))
    resolve_method(method)  # an unknown name before any model is loaded
    return items, cls


def _indexed(loc: Localizer, cls: Classes, n: int, topk: int | None) -> tuple[Classes, bool]:
    """The class request with names replaced by indices, checked again against the ``n`` images.

    Returns:
        ``(classes, nested)``: ``nested`` is whether results come as a list per image (``topk``, a
        B x k class tensor, or ``multilabel``).
    """
    if loc.score_threshold is not None:
        if cls is not None or topk is not None:
            raise UsageError("multilabel localizes every class above the score threshold: leave classes and topk out")
        return None, True
    cls = split_classes(loc.class_indices(cls), n)
    return cls, topk is not None or (isinstance(cls, torch.Tensor) and cls.ndim == 2)


def _above_threshold(results: list[list[Localization]], threshold: float | None) -> list[list[Localization]]:
    """Each image's results whose score exceeds ``threshold`` (all of them when it is None)."""
    return results if threshold is None else [[r for r in per_image if r.score > threshold] for per_image in results]


def _above(multilabel: bool, score_threshold: float, max_classes: int) -> tuple[float | None, int]:
    """The multi-label score threshold (None for single-label) and most classes an image, checked."""
    if isinstance(max_classes, bool) or not isinstance(max_classes, int) or max_classes < 1:
        raise UsageError(f"max_classes must be a whole number 1 or more, not {max_classes!r}")
    if not multilabel:
        return None, max_classes
    try:
        threshold = float(score_threshold)
    except (TypeError, ValueError):
        threshold = math.nan
    if not 0.0 <= threshold < 1.0:
        raise UsageError(f"score_threshold must be a number in [0, 1), not {score_threshold!r}: a sigmoid score it "
                         "must exceed")
    return threshold, max_classes


def boxes(
    model: nn.Module | str, images: Images, *, classes: ClassSpec = None, topk: int | None = None, nwc: bool = True,
    standard: str = "percentile", theta: float | None = None, percentile: float = 90.0, all_regions: bool = False,
    resize: str | None = None, preprocess: Preprocess | None = None, batch_size: int = 16,
    calibration: str | os.PathLike | Any | None = None, method: str | None = None, multilabel: bool = False,
    score_threshold: float = 0.5, **kwargs: Any,
) -> list[Localization] | list[list[Localization]]:
    """Localize the predicted (or given) class in each image, or with ``multilabel`` every class above a score.

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
        resize: ``"full"`` (squash the whole image to the input size; the default) or ``"crop"`` (the
            model's own resize + center crop). Each result's ``region`` is the part of the image the model saw.
        preprocess: an explicit :class:`Preprocess`.
        batch_size: images per forward pass.
        calibration: a :class:`camloc.eval.calibration.Calibration` or its JSON file; its theta, percentile
            and NWC setting replace ``standard``, ``theta``, ``percentile`` and ``nwc``; its method is used.
        method: ``cam`` (default) or ``gradcam``, ``gradcam++``, ``xgradcam``, ``layercam``,
            ``scorecam`` (:mod:`camloc.cam.methods`); NWC applies where the method has signed
            channel weights.
        multilabel: score by sigmoid (a multi-label head) and localize each image's classes whose score exceeds
            ``score_threshold``, each with its own map and box: a list per image, best first, empty where none is.
        score_threshold: the sigmoid score a class must exceed with ``multilabel``.
        **kwargs: passed to :class:`Localizer` (``device``, ``checkpoint``, ``feature_layer``, ``score_batch``,
            ``max_classes`` of ``multilabel``, ...).

    Returns:
        One :class:`Localization` per image, or with ``topk`` / 2-D ``classes`` / ``multilabel`` a list per image.

    Example:
        >>> import camloc
        >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
        >>> r.label, [round(v) for v in r.box]
        ('Egyptian cat', [81, 68, 411, 300])
        >>> camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg", method="gradcam++")[0].method
        'gradcam++'
    """
    items, _ = _request(images, classes, method)  # checked before the model is loaded
    loc = Localizer(model, nwc=nwc, standard=make_standard(standard, theta, percentile), all_regions=all_regions,
                    resize=resize, preprocess=preprocess, calibration=calibration, method=method,
                    multilabel=multilabel, score_threshold=score_threshold, **kwargs)
    return loc.boxes(items, classes=classes, topk=topk, batch_size=batch_size)


def cams(
    model: nn.Module | str,
    images: Images,
    *,
    classes: ClassSpec = None,
    topk: int | None = None,
    nwc: bool = True,
    resize: str | None = None,
    preprocess: Preprocess | None = None,
    batch_size: int = 16,
    method: str | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Raw class activation maps alone: N x h x w (N x k x h x w with ``topk`` or 2-D classes).

    Takes the same images and classes as :func:`boxes` (paths, PIL images, arrays, uint8 pixel
    tensors, preprocessed float tensors; class indices or label names), and the same ``method``
    (default ``cam``; the others' maps are ReLU'd, at feature resolution, not normalised).

    Example:
        >>> import camloc
        >>> images = ["examples/images/cat.jpg", "examples/images/coffee.jpg"]
        >>> camloc.cams("efficientnet_lite0", images).shape
        torch.Size([2, 7, 7])
        >>> camloc.cams("efficientnet_lite0", images, method="gradcam").shape
        torch.Size([2, 7, 7])
    """
    items, cls = _request(images, classes, method)
    loc = Localizer(model, nwc=nwc, resize=resize, preprocess=preprocess, method=method, **kwargs)
    cls, nested = _indexed(loc, cls, len(items), topk)
    maps = torch.cat([loc.run(x, classes_for(cls, rows), topk).maps.detach().cpu()
                      for x, _, _, rows in loc.batches(items, batch_size)])
    return maps if nested else maps[:, 0]
