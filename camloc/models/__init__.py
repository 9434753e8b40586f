"""Networks: the layers camloc adds, retrofitted CAM heads, checkpoints, configs and names.

* :mod:`~camloc.models.layers`: TAP and GAP (the training methods' layers join here);
* :mod:`~camloc.models.config`: :class:`ModelConfig`, what camloc remembers about a model
  (preprocessing, class names, name, pool), and :func:`preprocess_for` / :func:`class_names`;
* :mod:`~camloc.models.checkpoints`: safe loading (``weights_only=True``), camloc's self-describing
  checkpoints and the registered-model folder;
* :mod:`~camloc.models.retrofitting`: :func:`retrofit`, a CAM-compatible TAP/GAP head on any model;
* :mod:`~camloc.models.registry`: models by name (timm, torchvision, the offline default).

Built on :mod:`camloc.cam` (the head analysis) and :mod:`camloc.data` (preprocessing).
"""

from .checkpoints import load_checkpoint, read_checkpoint, registered_path
from .config import ModelConfig, class_names, model_config, preprocess_for
from .layers import GlobalAvgPool2d, ThresholdedAvgPool2d, make_pool
from .registry import DEFAULT_MODEL, create_model, list_models, load_model, resolve_name
from .retrofitting import CAMHeadModel, retrofit

__all__ = [
    "CAMHeadModel", "DEFAULT_MODEL", "GlobalAvgPool2d", "ModelConfig", "ThresholdedAvgPool2d", "class_names",
    "create_model", "list_models", "load_checkpoint", "load_model", "make_pool", "model_config", "preprocess_for",
    "read_checkpoint", "registered_path", "resolve_name", "retrofit",
]
