"""Localizing with an exported model, without torch: onnxruntime, Pillow, NumPy and OpenCV only.

* :mod:`~camloc.runtime.metadata`: what a camloc ONNX file says about itself (:class:`ExportInfo`);
* :mod:`~camloc.runtime.localizer`: :class:`OnnxLocalizer`, ``camloc.boxes`` on such a file.

``camloc export`` (:func:`camloc.export`) writes the file. Importing this package loads neither torch nor
timm nor any of camloc's torch modules (tests check it, also where torch is not installed), so it
deploys where torch is not: install ``camloc-runtime`` (docs/deployment.md).
"""

from .localizer import OnnxLocalizer
from .metadata import FORMAT, INPUT, OUTPUTS, ExportInfo

__all__ = ["FORMAT", "INPUT", "OUTPUTS", "ExportInfo", "OnnxLocalizer"]
