"""What camloc remembers about a model: one documented structure, in the spirit of timm's ``pretrained_cfg``.

A model camloc builds itself (:func:`camloc.models.registry.create_model`, a retrofit, a
fine-tuned or trained checkpoint) carries a :class:`ModelConfig` as its ``camloc_cfg`` attribute.
A model a user passes in is never given attributes: :func:`model_config` derives its config from
what the model already says (timm's ``pretrained_cfg``) or falls back to ImageNet defaults.

Example:
    >>> import timm
    >>> from camloc.models.config import model_config, preprocess_for
    >>> model = timm.create_model("resnet18")
    >>> cfg = model_config(model)
    >>> cfg.preprocess.input_size, cfg.class_names
    ((224, 224), None)
    >>> preprocess_for(model, "resize").mode
    'resize'
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..data.imaging import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, Preprocess
from .hf import default_preprocess, hf_labels, is_hf_model, object_preprocess

#: The attribute of a camloc-built model that holds its :class:`ModelConfig`.
ATTRIBUTE = "camloc_cfg"


@dataclass(frozen=True)
class ModelConfig:
    """Everything camloc needs to know about a model beyond its weights.

    Attributes:
        name: the registered name it answers to (``efficientnet_lite0``, ``vgg16_tap``), if any.
        arch: the registered name of the architecture it was built from (rebuilds it by name).
        source: ``offline``, ``timm``, ``torchvision``, ``hf`` (Hugging Face transformers), ``checkpoint`` or
            ``user``.
        preprocess: its evaluation transform.
        class_names: one name per output class, when known (ImageNet's are looked up by count).
        pool: ``tap`` or ``gap`` for a retrofitted CAM head, else None.
        theta_tap: TAP's threshold of that head.
        train_size: ``(resize, crop)`` of the camloc training run that made the model, else None. Its
            ``preprocess`` is then that run's geometry (resize to ``resize x resize``, center crop ``crop``), and the
            evaluation protocols take their test transforms at that size (:func:`at_train_size`).
    """

    name: str | None = None
    arch: str | None = None
    source: str = "user"
    preprocess: Preprocess = field(default_factory=Preprocess)
    class_names: tuple[str, ...] | None = None
    pool: str | None = None
    theta_tap: float | None = None
    train_size: tuple[int, int] | None = None

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON- and ``weights_only``-safe: plain lists, strings and numbers."""
        d = dataclasses.asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        d["class_names"] = list(self.class_names) if self.class_names is not None else None
        d["train_size"] = list(self.train_size) if self.train_size is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """The inverse of :meth:`to_dict` (unknown keys are an error of the caller's file)."""
        d = dict(d)
        d["preprocess"] = preprocess_from_dict(d.get("preprocess") or {})
        if d.get("class_names") is not None:
            d["class_names"] = tuple(d["class_names"])
        if d.get("train_size") is not None:
            d["train_size"] = tuple(d["train_size"])
        return cls(**d)


def preprocess_from_dict(d: dict[str, Any]) -> Preprocess:
    """A :class:`Preprocess` from :meth:`Preprocess.to_dict` output (lists back to tuples)."""
    return Preprocess(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def attach(model: nn.Module, cfg: ModelConfig) -> nn.Module:
    """Give a model camloc built itself its config (never called on a user's model)."""
    setattr(model, ATTRIBUTE, cfg)
    return model


def _timm_preprocess(model: nn.Module) -> Preprocess | None:
    """The evaluation transform described by timm's ``pretrained_cfg``, if the model has one."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not (isinstance(cfg, dict) and "input_size" in cfg):
        return None
    _, h, w = cfg["input_size"]
    crop_pct = cfg.get("crop_pct") or 0.875
    interp = cfg.get("interpolation", "bilinear")
    return Preprocess(
        input_size=(h, w),
        mode="crop",
        resize_size=math.floor(min(h, w) / crop_pct),
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(cfg.get("std", IMAGENET_STD)),
        interpolation=interp if interp in INTERPOLATIONS else "bilinear",
    )


def model_config(model: nn.Module) -> ModelConfig:
    """A model's config: its own ``camloc_cfg``, else derived from what it says of itself, else defaults.

    A transformers model says its class names (``config.id2label``) and, where its image processor is
    on this machine, its preprocessing (:mod:`camloc.models.hf`); a timm model its ``pretrained_cfg``.
    """
    cfg = getattr(model, ATTRIBUTE, None)
    if isinstance(cfg, ModelConfig):
        return cfg
    if is_hf_model(model):
        return ModelConfig(preprocess=object_preprocess(model) or default_preprocess(model.config),
                           class_names=hf_labels(model.config))
    return ModelConfig(preprocess=_timm_preprocess(model) or Preprocess())


def preprocess_for(model: nn.Module, mode: str | None = None) -> Preprocess:
    """The evaluation preprocessing a model was trained with; ``mode`` overrides the geometry.

    Example:
        >>> import timm
        >>> from camloc.models.config import preprocess_for
        >>> preprocess_for(timm.create_model("resnet18")).resize_size     # timm's crop_pct 0.95
        235
    """
    pre = model_config(model).preprocess
    return pre.with_mode(mode) if mode else pre


def trained_preprocess(pre: Preprocess, resize: int, crop: int) -> Preprocess:
    """The evaluation transform of a model camloc trained at ``resize`` / ``crop``, with ``pre``'s mean and std.

    The training augmentation resizes to ``resize x resize`` (bilinear) and takes random ``crop x crop`` crops, so
    the model is evaluated on the center crop of the same resize.

    Example:
        >>> from camloc.data.imaging import Preprocess
        >>> from camloc.models.config import trained_preprocess
        >>> pre = trained_preprocess(Preprocess(), resize=72, crop=64)
        >>> pre.input_size, pre.mode, pre.resize_size
        ((64, 64), 'crop', (72, 72))
    """
    return Preprocess((crop, crop), "crop", (resize, resize), tuple(pre.mean), tuple(pre.std), "bilinear")


def at_train_size(pre: Preprocess, model: nn.Module) -> Preprocess:
    """A protocol's test transform (``pre``, defined at 224 px) at the size camloc trained ``model`` at.

    The rethinking protocol's resize-then-center-crop takes the run's ``resize`` and ``crop``; wsolevaluation's
    whole-image resize goes to ``crop x crop``. A model camloc did not train (no ``train_size``) keeps ``pre``.

    Example:
        >>> from camloc.data.transforms import rethinking_crop, wsol_resize
        >>> from camloc.models.config import ModelConfig, at_train_size, attach
        >>> from torch import nn
        >>> model = attach(nn.Identity(), ModelConfig(train_size=(72, 64)))
        >>> at_train_size(rethinking_crop(), model).input_size, at_train_size(rethinking_crop(), model).resize_size
        ((64, 64), (72, 72))
        >>> at_train_size(wsol_resize(), model).input_size, at_train_size(wsol_resize(), nn.Identity()).input_size
        ((64, 64), (224, 224))
    """
    size = model_config(model).train_size
    if size is None:
        return pre
    resize, crop = size
    return dataclasses.replace(pre, input_size=(crop, crop),
                               resize_size=(resize, resize) if pre.mode == "crop" else pre.resize_size)


@functools.lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1K class names in the usual (torchvision / timm) order."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(1000))


def class_names(model: nn.Module, num_classes: int) -> tuple[str, ...] | None:
    """Class names for a model: its config's, else ImageNet's for 1000 classes, else None."""
    names = model_config(model).class_names
    if names is not None and len(names) == num_classes:
        return tuple(names)
    if num_classes == 1000:
        return imagenet_labels()
    return None
