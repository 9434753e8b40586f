"""camloc: turn any pretrained image classifier into an object localizer.

Implements "Rethinking Class Activation Mapping for Weakly Supervised Object Localization"
(Bae, Noh, Kim, ECCV 2020): class activation maps from any timm / torchvision CNN with negative
weight clamping (NWC) and percentile thresholds (PaS), TAP heads, and boxes in original pixels.

The package is laid out by job (docs/layout.md), bottom to top: ``camloc.utils`` (errors, atomic
writes, defaults, device choice), ``camloc.data`` (images, datasets), ``camloc.cam`` (hooks, head
analysis, maps, boxes), ``camloc.viz`` (overlays, gallery, figures), ``camloc.batch`` (folder runs,
torchrun), ``camloc.models`` (layers, retrofit, checkpoints, names), ``camloc.eval`` (protocols,
metrics, calibration, diagnosis), ``camloc.train`` (training, fine-tuning), then ``camloc.api`` and
``camloc.cli`` on top. Every public name is importable from here; each is
loaded on first use, so ``import camloc`` itself loads neither torch nor OpenCV, numba or matplotlib.

Example:
    >>> import camloc
    >>> result = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
    >>> result.label, [round(v) for v in result.box]
    ('Egyptian cat', [81, 68, 411, 300])
"""

from __future__ import annotations

from .utils.defaults import DEFAULT_MODEL
from .utils.errors import CamlocError, CheckpointError, ImageError, ModelError, UsageError
from .utils.lazy import lazy_namespace

__version__ = "0.1.0"

#: public name -> (module, attribute), imported on first use.
_LAZY = {
    # the notebook API
    "boxes": ("api", "boxes"), "cams": ("api", "cams"), "Localizer": ("api", "Localizer"),
    "Localization": ("api", "Localization"), "show": ("viz.render", "show"),
    # maps and boxes
    "CAMExtractor": ("cam.extractor", "CAMExtractor"), "CAMOutput": ("cam.extractor", "CAMOutput"),
    "ChannelOutput": ("cam.extractor", "ChannelOutput"),
    "resolve_classes": ("cam.extractor", "resolve_classes"), "analyze": ("cam.analysis", "analyze"),
    "HeadSpec": ("cam.heads", "HeadSpec"), "ThresholdRule": ("cam.rules", "ThresholdRule"),
    "Standard": ("cam.rules", "ThresholdRule"),  # the rule's former name
    "make_standard": ("cam.rules", "make_standard"), "boxes_from_maps": ("cam.boxes", "boxes_from_maps"),
    "contour_boxes": ("cam.rules", "contour_boxes"),
    # images and datasets
    "Geometry": ("data.imaging", "Geometry"), "Preprocess": ("data.imaging", "Preprocess"),
    "load_image": ("data.imaging", "load_image"), "read_dataset": ("data.metadata", "read_dataset"),
    "Sample": ("data.metadata", "Sample"), "ImageDataset": ("data.dataset", "ImageDataset"),
    # models
    "list_models": ("models.registry", "list_models"), "load_model": ("models.registry", "load_model"),
    "load_checkpoint": ("models.checkpoints", "load_checkpoint"),
    "load_finetuned": ("models.registry", "load_finetuned"), "ModelConfig": ("models.config", "ModelConfig"),
    "model_config": ("models.config", "model_config"), "preprocess_for": ("models.config", "preprocess_for"),
    "retrofit": ("models.retrofitting", "retrofit"), "CAMHeadModel": ("models.retrofitting", "CAMHeadModel"),
    "ThresholdedAvgPool2d": ("models.layers.pooling", "ThresholdedAvgPool2d"),
    # evaluation and training (numba, OpenCV, matplotlib)
    "evaluate": ("eval.evaluation", "evaluate"), "score_maps": ("eval.scoring", "score_maps"),
    "EvaluationResult": ("eval.result", "EvaluationResult"), "Settings": ("eval.protocols", "Settings"),
    "calibrate": ("eval.calibration", "calibrate"), "Calibration": ("eval.calibration", "Calibration"),
    "diagnose": ("eval.diagnosis", "diagnose"), "Diagnosis": ("eval.diagnosis", "Diagnosis"),
    "faithfulness": ("eval.faithfulness_metrics", "faithfulness"),
    "FaithfulnessResult": ("eval.faithfulness_metrics", "FaithfulnessResult"),
    "finetune": ("train.finetuning", "finetune"), "FinetuneConfig": ("train.finetuning", "FinetuneConfig"),
    # deployment: an ONNX file that localizes without torch, and its runtime (onnxruntime, Pillow, NumPy, OpenCV)
    "export": ("deploy.exporter", "export"), "ExportReport": ("deploy.exporter", "ExportReport"),
    "OnnxLocalizer": ("runtime.localizer", "OnnxLocalizer"), "ExportInfo": ("runtime.metadata", "ExportInfo"),
    # the former names of evaluate, calibrate and finetune, kept importable
    "evaluate_split": ("eval.evaluation", "evaluate"), "calibrate_split": ("eval.calibration", "calibrate"),
    "finetune_model": ("train.finetuning", "finetune"),
}


__getattr__ = lazy_namespace(__name__, _LAZY)[0]


def __dir__() -> list[str]:
    """The public API only (what ``__all__`` lists, and ``__version__``), for ``dir(camloc)`` and completion."""
    return sorted(__all__) + ["__version__"]


__all__ = sorted(_LAZY) + ["CamlocError", "CheckpointError", "DEFAULT_MODEL", "ImageError", "ModelError", "UsageError"]
