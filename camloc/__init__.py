"""camloc: turn any pretrained image classifier into an object localizer.

Implements "Rethinking Class Activation Mapping for Weakly Supervised Object Localization"
(Bae, Noh, Kim, ECCV 2020): class activation maps from any timm / torchvision CNN with negative
weight clamping (NWC) and percentile thresholds (PaS), and boxes in original image pixels.

Example:
    >>> import camloc
    >>> result = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
    >>> result.label, result.box
"""

from .api import Localization, Localizer, boxes, cams, make_standard
from .errors import CamlocError, CheckpointError, ImageError, ModelError, UsageError
from .extractor import CAMExtractor, CAMOutput, analyze, resolve_classes
from .heads import HeadSpec
from .imaging import Geometry, Preprocess, load_image, preprocess_for
from .localize import Standard, boxes_from_maps, contour_boxes
from .registry import DEFAULT_MODEL, list_models, load_checkpoint, load_model

__version__ = "0.1.0"

# Evaluation, calibration and fine-tuning pull in numba and matplotlib: imported on first use.
# (Functions named like their modules get distinct public names, so the submodule never shadows them.)
_LAZY = {
    "evaluate_split": ("evaluate", "evaluate"), "Settings": ("evaluate", "Settings"),
    "EvaluationResult": ("evaluate", "EvaluationResult"), "score_maps": ("evaluate", "score_maps"),
    "calibrate_split": ("calibrate", "calibrate"), "Calibration": ("calibrate", "Calibration"),
    "finetune_model": ("finetune", "finetune"), "FinetuneConfig": ("finetune", "FinetuneConfig"),
    "load_finetuned": ("finetune", "load_finetuned"),
    "retrofit": ("tap", "retrofit"), "ThresholdedAvgPool2d": ("tap", "ThresholdedAvgPool2d"),
    "CAMHeadModel": ("tap", "CAMHeadModel"),
    "read_dataset": ("metadata", "read_dataset"), "Sample": ("metadata", "Sample"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'camloc' has no attribute {name!r}")


__all__ = sorted(_LAZY) + [
    "CAMExtractor",
    "CAMOutput",
    "CamlocError",
    "CheckpointError",
    "DEFAULT_MODEL",
    "Geometry",
    "HeadSpec",
    "ImageError",
    "Localization",
    "Localizer",
    "ModelError",
    "Preprocess",
    "Standard",
    "UsageError",
    "analyze",
    "boxes",
    "boxes_from_maps",
    "cams",
    "contour_boxes",
    "list_models",
    "load_checkpoint",
    "load_image",
    "load_model",
    "make_standard",
    "preprocess_for",
    "resolve_classes",
]
