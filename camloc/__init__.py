"""camloc: turn any pretrained image classifier into an object localizer.

Implements "Rethinking Class Activation Mapping for Weakly Supervised Object Localization"
(Bae, Noh, Kim, ECCV 2020): class activation maps from any timm / torchvision CNN with negative
weight clamping (NWC) and percentile thresholds (PaS), TAP heads, and boxes in original pixels.

The package is laid out by job (see "How the code is laid out" in the README): ``camloc.data``
(images, datasets), ``camloc.cam`` (hooks, head analysis, maps, boxes), ``camloc.models``
(layers, retrofit, checkpoints, names), ``camloc.eval`` (protocols, metrics, calibration),
``camloc.train`` (fine-tuning), then ``camloc.api`` / ``pipeline`` / ``render`` /
``distributed`` and ``camloc.cli`` on top. Every public name is importable from here; each is
loaded on first use, so ``import camloc`` itself loads neither torch nor OpenCV, numba or matplotlib.

Example:
    >>> import camloc
    >>> result = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
    >>> result.label, result.box
"""

from __future__ import annotations

import importlib
from typing import Any

from .defaults import DEFAULT_MODEL
from .errors import CamlocError, CheckpointError, ImageError, ModelError, UsageError

__version__ = "0.1.0"

#: public name -> (module, attribute), imported on first use.
_LAZY = {
    # the notebook API
    "boxes": ("api", "boxes"), "cams": ("api", "cams"), "Localizer": ("api", "Localizer"),
    "Localization": ("api", "Localization"), "show": ("render", "show"),
    # maps and boxes
    "CAMExtractor": ("cam.extractor", "CAMExtractor"), "CAMOutput": ("cam.extractor", "CAMOutput"),
    "ChannelOutput": ("cam.extractor", "ChannelOutput"),
    "resolve_classes": ("cam.extractor", "resolve_classes"), "analyze": ("cam.analysis", "analyze"),
    "HeadSpec": ("cam.heads", "HeadSpec"), "Standard": ("cam.boxes", "Standard"),
    "make_standard": ("cam.boxes", "make_standard"), "boxes_from_maps": ("cam.boxes", "boxes_from_maps"),
    "contour_boxes": ("cam.boxes", "contour_boxes"),
    # images and datasets
    "Geometry": ("data.imaging", "Geometry"), "Preprocess": ("data.imaging", "Preprocess"),
    "load_image": ("data.imaging", "load_image"), "read_dataset": ("data.metadata", "read_dataset"),
    "Sample": ("data.metadata", "Sample"), "ImageDataset": ("data.dataset", "ImageDataset"),
    # models
    "list_models": ("models.registry", "list_models"), "load_model": ("models.registry", "load_model"),
    "load_checkpoint": ("models.checkpoints", "load_checkpoint"), "load_finetuned": ("models.registry", "load_finetuned"), "ModelConfig": ("models.config", "ModelConfig"),
    "model_config": ("models.config", "model_config"), "preprocess_for": ("models.config", "preprocess_for"),
    "retrofit": ("models.retrofit", "retrofit"), "CAMHeadModel": ("models.retrofit", "CAMHeadModel"),
    "ThresholdedAvgPool2d": ("models.layers.pooling", "ThresholdedAvgPool2d"),
    # evaluation and training (numba, OpenCV, matplotlib)
    "evaluate_split": ("eval.evaluate", "evaluate"), "score_maps": ("eval.evaluate", "score_maps"),
    "EvaluationResult": ("eval.evaluate", "EvaluationResult"), "Settings": ("eval.protocols", "Settings"),
    "calibrate_split": ("eval.calibrate", "calibrate"), "Calibration": ("eval.calibrate", "Calibration"),
    "diagnose": ("eval.diagnose", "diagnose"), "Diagnosis": ("eval.diagnose", "Diagnosis"),
    "finetune_model": ("train.finetune", "finetune"), "FinetuneConfig": ("train.finetune", "FinetuneConfig"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'camloc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY) + ["CamlocError", "CheckpointError", "DEFAULT_MODEL", "ImageError", "ModelError", "UsageError"]
