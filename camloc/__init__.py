"""camloc: turn any pretrained image classifier into an object localizer.

Implements "Rethinking Class Activation Mapping for Weakly Supervised Object Localization"
(Bae, Noh, Kim, ECCV 2020): class activation maps from any timm / torchvision CNN with negative
weight clamping (NWC) and percentile thresholds (PaS), and boxes in original image pixels.

Example:
    >>> import camloc
    >>> result = camloc.boxes("efficientnet_lite0", "examples/images/bird.jpg")[0]
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

__all__ = [
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
