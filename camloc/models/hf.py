"""Hugging Face transformers classifiers: loaded by ``hf:ORG/NAME`` or a saved folder, labelled by ``id2label``.

A transformers image classifier (``AutoModelForImageClassification``) needs nothing from this module
to be localized: camloc's hooks find its feature map and head as for any module (which map each
architecture gets: docs/architectures.md). This module adds what a transformers model says about
itself:

* **labels**: ``config.id2label``, one name per class, unless they are transformers' placeholders
  (``LABEL_0``, ``LABEL_1``, ...);
* **preprocessing**: the model's ``AutoImageProcessor`` (:func:`processor_preprocess` states the
  translation), for a model loaded here by name or folder, and for a model object whose
  ``config.name_or_path`` is a folder or a hub id already in the local cache;
* **loading**: :func:`load_hf` takes ``ORG/NAME`` (the hub) or a folder written by
  ``save_pretrained``; :func:`camloc.models.registry.create_model` gives it the names ``hf:ORG/NAME``
  and a folder's path, and fails at once when the hub is out of reach and the files are not cached.

transformers is imported only when a model needs it (``pip install "camloc[hf]"``).

Example:
    >>> import os, tempfile, transformers
    >>> from camloc.models.hf import load_hf
    >>> cfg = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 8, 16, 16], depths=[1, 1, 1, 1],
    ...                                 num_labels=2, id2label={0: "cat", 1: "dog"})
    >>> folder = os.path.join(tempfile.mkdtemp(), "tiny-resnet")
    >>> transformers.ResNetForImageClassification(cfg).save_pretrained(folder)
    >>> _ = transformers.ConvNextImageProcessor(size={"shortest_edge": 224}).save_pretrained(folder)
    >>> model, pre = load_hf(folder)
    >>> hf_labels(model.config), pre.input_size, pre.mode, pre.resize_size
    (('cat', 'dog'), (224, 224), 'crop', 256)
"""

from __future__ import annotations

import os
import re
import weakref
from typing import Any

from torch import nn

from ..data.imaging import Preprocess
from ..utils.errors import ModelError

#: The prefix that names a Hugging Face hub model: ``hf:ORG/NAME``.
PREFIX = "hf:"
#: PIL's resampling codes (``PIL.Image.Resampling``), as transformers' processors store them, to camloc's names;
#: BOX (4) and HAMMING (5), which camloc's preprocessing does not offer, are read as bilinear.
RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "bilinear", 5: "bilinear"}
#: ConvNeXt's processors crop (``shortest_edge / crop_pct``, then the centre) below this side, and squash above.
CROP_PCT_BELOW = 384
_PLACEHOLDER = re.compile(r"LABEL_\d+")
_INSTALL = 'pip install "camloc[hf]"'


def is_hf_model(model: nn.Module) -> bool:
    """Whether ``model`` is a transformers model (judged by its class's module; transformers is not imported)."""
    return type(model).__module__.startswith("transformers.") and hasattr(model, "config")


def is_hf_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder ``save_pretrained`` wrote: it holds a ``config.json``."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))


def hf_labels(config: Any) -> tuple[str, ...] | None:
    """The class names of a transformers config's ``id2label``, in class order; None for placeholders.

    ``id2label`` must name every class ``0..K-1`` once; names all of the form ``LABEL_i`` (what
    transformers writes when no labels were given) count as none.

    Example:
        >>> from types import SimpleNamespace
        >>> hf_labels(SimpleNamespace(id2label={"1": "dog", "0": "cat"}))
        ('cat', 'dog')
        >>> hf_labels(SimpleNamespace(id2label={0: "LABEL_0", 1: "LABEL_1"})) is None
        True
    """
    id2label = getattr(config, "id2label", None)
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        table = {int(k): str(v) for k, v in id2label.items()}
    except (TypeError, ValueError):
        return None
    if sorted(table) != list(range(len(table))) or all(_PLACEHOLDER.fullmatch(v) for v in table.values()):
        return None
    return tuple(table[i] for i in range(len(table)))


def _pair(size: dict[str, Any], what: str) -> tuple[int, int]:
    if "height" in size and "width" in size:
        return int(size["height"]), int(size["width"])
    if "shortest_edge" in size:
        return int(size["shortest_edge"]), int(size["shortest_edge"])
    raise ModelError(f"the image processor's {what} {size} is not one camloc can follow (height and width, or "
                     "shortest_edge): pass preprocess=camloc.Preprocess(...) with the model's input size")


def _geometry(d: dict[str, Any]) -> tuple[tuple[int, int], str, int | tuple[int, int]]:
    """``(input_size, mode, resize_size)`` of a processor's settings (see :func:`processor_preprocess`)."""
    size = d.get("size") or {}
    if isinstance(size, int):
        size = {"shortest_edge": size}
    crop = d.get("crop_size") if d.get("do_center_crop") else None
    if "height" in size and "width" in size:
        h, w = int(size["height"]), int(size["width"])
        if crop:
            return _pair(crop, "crop_size"), "crop", (h, w)
        return (h, w), "resize", min(h, w)
    if "shortest_edge" not in size:
        _pair(size, "size")  # raises
    edge = int(size["shortest_edge"])
    crop_pct = d.get("crop_pct")
    if crop_pct and "ConvNext" in str(d.get("image_processor_type", "")):
        if edge < CROP_PCT_BELOW:
            return (edge, edge), "crop", int(edge / crop_pct)
        return (edge, edge), "resize", edge
    if crop:
        return _pair(crop, "crop_size"), "crop", edge
    return (edge, edge), "crop", edge


def processor_preprocess(processor: Any) -> Preprocess:
    """The :class:`~camloc.data.imaging.Preprocess` that does what a transformers image processor does.

    * geometry: ``size`` ``{height, width}`` squashes the image to that size, then ``crop_size`` is cut
      from its centre where ``do_center_crop`` (mode ``crop`` with a pair ``resize_size``), else it is the
      input (mode ``resize``); ``{shortest_edge: s}`` resizes the shorter side to ``s`` and cuts the
      centre ``crop_size`` (or ``s x s``: camloc's batches need one input size where transformers
      would keep the aspect ratio). ConvNeXt's processors resize the shorter side to
      ``int(s / crop_pct)`` and cut ``s x s`` below 384 px, and squash to ``s x s`` from 384 up.
    * values: transformers computes ``x = (p r - m) / s`` from pixel values ``p`` in 0..255 (``r =
      rescale_factor`` where ``do_rescale``, else 1; ``m = image_mean``, ``s = image_std`` where
      ``do_normalize``, else 0 and 1). camloc computes ``(p / 255 - m') / s'``, so
      ``m' = m / (255 r)`` and ``s' = s / (255 r)``. EfficientNet's ``rescale_offset`` (``p r - 1``)
      adds 1 to ``m``; its ``include_top`` divides by ``s`` once more (``s`` squared).
    * ``resample``: PIL's code, as :data:`RESAMPLE` names it.

    The images differ from the processor's only by the resize's arithmetic (transformers resizes in
    torch, camloc with Pillow) and, for an odd margin, a one-pixel shift of the centre crop.

    Example:
        >>> import transformers
        >>> pre = processor_preprocess(transformers.ViTImageProcessor())
        >>> pre.input_size, pre.mode, pre.mean, pre.std, pre.interpolation
        ((224, 224), 'resize', (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 'bilinear')
    """
    d = processor.to_dict() if hasattr(processor, "to_dict") else dict(processor)
    d.setdefault("image_processor_type", type(processor).__name__)
    input_size, mode, resize_size = _geometry(d)
    scale = 255.0 * (float(d.get("rescale_factor", 1 / 255)) if d.get("do_rescale", True) else 1.0)
    normalize = d.get("do_normalize", True)
    mean = [float(v) for v in _three(d.get("image_mean") if normalize else 0.0)]
    std = [float(v) for v in _three(d.get("image_std") if normalize else 1.0)]
    if d.get("rescale_offset"):
        mean = [m + 1.0 for m in mean]
    if d.get("include_top") and "EfficientNet" in str(d["image_processor_type"]):
        std = [s * s for s in std]
    resample = d.get("resample", 2)
    return Preprocess(
        input_size=input_size,
        mode=mode,
        resize_size=resize_size,
        mean=tuple(m / scale for m in mean),
        std=tuple(s / scale for s in std),
        interpolation=RESAMPLE.get(int(resample if resample is not None else 2), "bilinear"),
    )


def _three(value: Any) -> list[float]:
    if value is None:
        raise ModelError("the image processor normalises without image_mean / image_std: pass "
                         "preprocess=camloc.Preprocess(...)")
    values = [value] * 3 if isinstance(value, (int, float)) else list(value)
    return values * 3 if len(values) == 1 else values


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise ModelError(f"Hugging Face models need the transformers package: {_INSTALL}") from exc
    return transformers


#: Preprocessing found for a user's transformers model object, kept while the model lives.
_FOUND: weakref.WeakKeyDictionary[nn.Module, Preprocess | None] = weakref.WeakKeyDictionary()


def object_preprocess(model: nn.Module) -> Preprocess | None:
    """The processor's preprocessing for a transformers model object, where it is on this machine, else None.

    Read from ``config.name_or_path``: a folder with a ``preprocessor_config.json``, or a hub id whose
    processor is in the local cache (never the network). The model is not changed.
    """
    if model in _FOUND:
        return _FOUND[model]
    source = getattr(model.config, "name_or_path", None) or getattr(model.config, "_name_or_path", None)
    found = None
    if isinstance(source, str) and source:
        try:
            processor = _transformers().AutoImageProcessor.from_pretrained(source, local_files_only=True)
            found = processor_preprocess(processor)
        except (OSError, ValueError, KeyError, TypeError, ModelError):
            found = None
    _FOUND[model] = found
    return found


def load_hf(source: str | os.PathLike, pretrained: bool = True,
            num_classes: int | None = None) -> tuple[nn.Module, Preprocess]:
    """A transformers image classifier from a saved folder or the hub (``ORG/NAME``), and its preprocessing.

    The preprocessing is the image processor's (:func:`processor_preprocess`), :func:`default_preprocess`
    where a folder has none. ``pretrained=False`` builds the architecture from its config alone
    (random weights, for a checkpoint to load into). The model is in eval mode.

    Raises:
        ModelError: transformers is missing, or the folder or hub id holds no image classifier.
    """
    transformers = _transformers()
    name = str(source) if is_hf_folder(source) else f"{PREFIX}{source}"
    auto = transformers.AutoModelForImageClassification
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_labels": num_classes}
    try:
        if pretrained:
            model = auto.from_pretrained(source, **kwargs)
        else:
            model = auto.from_config(transformers.AutoConfig.from_pretrained(source, **kwargs))
    except (OSError, ValueError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"could not load {name} as an image classifier ({reason[:200]})") from exc
    return model.eval(), _saved_preprocess(transformers, source) or default_preprocess(model.config)


def default_preprocess(config: Any) -> Preprocess:
    """ImageNet's mean and std at the config's ``image_size`` (224 without one): resize to 1/0.875 of it, crop.

    Example:
        >>> from types import SimpleNamespace
        >>> pre = default_preprocess(SimpleNamespace(image_size=384))
        >>> pre.input_size, pre.resize_size
        ((384, 384), 438)
    """
    side = getattr(config, "image_size", None)
    if isinstance(side, int):
        h = w = side
    elif isinstance(side, (list, tuple)) and len(side) == 2:
        h, w = int(side[0]), int(side[1])
    else:
        h = w = 224
    return Preprocess(input_size=(h, w), mode="crop", resize_size=int(min(h, w) / 0.875))


def _saved_preprocess(transformers: Any, source: str | os.PathLike) -> Preprocess | None:
    """The preprocessing of the image processor saved beside a model, or None where there is none."""
    if is_hf_folder(source) and not os.path.isfile(os.path.join(source, "preprocessor_config.json")):
        return None
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError, KeyError) as exc:
        if is_hf_folder(source):
            raise ModelError(f"{source}/preprocessor_config.json cannot be read ({exc})") from exc
        return None
    return processor_preprocess(processor)
