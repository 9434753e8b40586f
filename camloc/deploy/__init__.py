"""Deployment: a model's localizer exported to ONNX, to run without torch (docs/deployment.md).

* :mod:`~camloc.deploy.graph`: :class:`LocalizerGraph`, the device stage of ``camloc.boxes`` as a traceable module;
* :mod:`~camloc.deploy.exporter`: :func:`export` (``camloc export``), the file with its metadata, checked.

The file runs with :mod:`camloc.runtime`, which needs no torch.
"""

from ..utils.lazy import lazy_namespace

_NAMES = {
    "export": ("exporter", "export"), "ExportReport": ("exporter", "ExportReport"),
    "LocalizerGraph": ("graph", "LocalizerGraph"), "GRAPH_RULES": ("graph", "GRAPH_RULES"),
}
__getattr__, __dir__ = lazy_namespace(__name__, _NAMES)
__all__ = sorted(_NAMES)
