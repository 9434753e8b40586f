"""``camloc.export``: a model's localizer written as one ONNX file that runs without torch.

The file holds :class:`~camloc.deploy.graph.LocalizerGraph` (network, maps, thresholds, masks) with a
dynamic batch size and the metadata of :class:`~camloc.runtime.metadata.ExportInfo`; the runtime
(:class:`camloc.runtime.OnnxLocalizer`) needs nothing else. Only exact heads export (docs/how-it-works.md,
the table of heads): a head whose map is the gradient of its logit (a class-token ViT, MobileNetV3's conv
head, VGG's MLP) has no map an ONNX graph of the forward pass can compute, and is refused before any tracing.

The export checks itself: before the file takes its name, onnxruntime runs it on a batch of three
random images, and its classes and maps are compared with the same graph run by torch.
"""

from __future__ import annotations

import io
import os
import re
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..cam.extractor import CAMExtractor, model_dtype
from ..cam.hooks import eval_mode
from ..cam.rules import make_standard
from ..data.imaging import Preprocess, mode_for_region
from ..models.config import class_names, model_config, preprocess_for
from ..models.registry import load_model
from ..runtime.metadata import INPUT, OUTPUTS, ExportInfo
from ..utils.atomic import atomic_write_bytes
from ..utils.defaults import REGION
from ..utils.device import device_of
from ..utils.errors import ModelError, UsageError
from .graph import LocalizerGraph, check_rule

#: The largest difference of the min-max scaled maps that the self-check accepts between onnxruntime and torch.
MAP_TOLERANCE = 1e-4
#: The ONNX opset of the TorchScript exporter, where it stands in for the ``torch.export``-based one.
TORCHSCRIPT_OPSET = 18


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export` wrote.

    Attributes:
        path: the ONNX file.
        info: its metadata.
        seconds: how long the export took (tracing, writing and the self-check).
        size: the file's size in bytes.
        map_difference: the largest difference of the min-max scaled maps between onnxruntime and torch
            in the self-check (None when it was skipped).
        exporter: which of torch's ONNX exporters made the graph: ``"dynamo"`` (``torch.export``) or
            ``"torchscript"``, taken where the first cannot convert an operation.
    """

    path: Path
    info: ExportInfo
    seconds: float
    size: int
    map_difference: float | None
    exporter: str = "dynamo"


def export(model: nn.Module | str, path: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None,
           topk: int = 1, standard: str = "percentile", theta: float | None = None, percentile: float = 90.0,
           nwc: bool = True, resize: str | None = None, preprocess: Preprocess | None = None,
           name: str | None = None, check: bool = True) -> ExportReport:
    """Write ``model``'s localizer to ``path`` as ONNX, for :class:`camloc.runtime.OnnxLocalizer`.

    The graph takes a preprocessed B x 3 x H x W batch and returns, for each image's top-``topk``
    classes, the logits, classes, scores, raw maps, maps at input resolution, thresholds and masks
    (:data:`camloc.runtime.metadata.OUTPUTS`); the settings are those of :func:`camloc.boxes`.

    Args:
        model: an ``nn.Module`` (exported as it is, not changed) or a registered name.
        path: the ``.onnx`` file to write (replaced whole, or left as it was when the export fails).
        checkpoint: local weights for a model given by name.
        topk: classes localized per image (the runtime may ask for fewer).
        standard: ``percentile`` (PaS), ``max``, ``otsu``, ``triangle`` or ``yen`` (``li`` is refused).
        theta: the factor of ``percentile`` and ``max`` (default 0.35 and 0.2).
        percentile: the percentile of PaS.
        nwc: clamp negative classifier weights to zero in the maps.
        resize: ``"full"`` (the default) or ``"crop"``, as for :func:`camloc.boxes`.
        preprocess: an explicit :class:`~camloc.data.imaging.Preprocess` instead.
        name: the source model's name in the metadata (default: the registered name, else the class's).
        check: run the file with onnxruntime against torch before it takes its name.

    Raises:
        ModelError: the head is not exact (its map needs gradients), or the exporter cannot trace the model.
        UsageError: a setting the graph cannot hold (``li``, ``topk`` out of range, ...).

    Example:
        >>> import tempfile, camloc
        >>> report = camloc.export("efficientnet_lite0", tempfile.mkdtemp() + "/lite0.onnx", topk=5)
        >>> report.info.head, report.info.topk, report.info.standard.label, report.map_difference < 1e-4
        ('avg', 5, '0.35 x p90', True)
    """
    start = time.perf_counter()
    rule = make_standard(standard, theta, percentile)
    check_rule(rule)
    _check_exporter()
    target = _target(path)
    module, source = _source(model, checkpoint, name)
    pre = preprocess.with_mode(mode_for_region(resize)) if preprocess and resize else preprocess
    pre = pre or preprocess_for(module, mode_for_region(resize or REGION))
    with eval_mode(module):
        x = _sample(module, pre, 2)
        spec, num_classes = _exact_head(module, x, source)
        if not 1 <= topk <= num_classes:
            raise UsageError(f"topk must be between 1 and {num_classes} (the model's classes), not {topk}")
        info = ExportInfo(source, version("camloc"), pre, class_names(module, num_classes), rule, nwc, int(topk),
                          num_classes, spec.form)
        graph = LocalizerGraph(module, spec, topk, nwc, rule)
        proto, exporter = _trace(graph, x, source)
        for key, value in info.to_metadata().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        data = proto.SerializeToString()
        difference = _self_check(graph, data, _sample(module, pre, 3, seed=1), source) if check else None
    _write(target, data)
    return ExportReport(target, info, time.perf_counter() - start, len(data), difference, exporter)


def _check_exporter() -> None:
    """Refuse in one line, before any work, where torch's ONNX exporter lacks its packages."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401 - the self-check
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"camloc export needs the onnx, onnxscript and onnxruntime packages ({exc.name} is "
                         "missing): pip install 'camloc[onnx]'") from exc


def _source(model: nn.Module | str, checkpoint: str | os.PathLike | None, name: str | None) -> tuple[nn.Module, str]:
    """The module to export and the name its metadata gives it."""
    if isinstance(model, str):
        module = load_model(model, checkpoint=checkpoint)
        return module, name or model_config(module).name or model
    if checkpoint is not None:
        raise UsageError("checkpoint applies to models given by name; load weights into your module yourself")
    if not isinstance(model, nn.Module):
        raise ModelError(f"expected a torch.nn.Module or a registered name, got {type(model).__name__}")
    return model, name or model_config(model).name or type(model).__name__


def _sample(module: nn.Module, pre: Preprocess, batch: int, seed: int = 0) -> torch.Tensor:
    """A seeded float32 batch at the preprocessing's input size, on the model's device (the global seed untouched).

    The graph's input is float32 whatever the model's dtype (:class:`~camloc.deploy.graph.LocalizerGraph` casts it).
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((batch, 3, *pre.input_size), generator=generator).to(device_of(module))


def _exact_head(module: nn.Module, x: torch.Tensor, source: str) -> tuple[Any, int]:
    """The head analysis and class count; one line saying why when the map is not an exact CAM."""
    extractor = CAMExtractor(module, input_size=tuple(x.shape[-2:]))
    dtype = model_dtype(module) or torch.float32
    if dtype != torch.float32:
        raise UsageError(f"{source} has {str(dtype).replace('torch.', '')} parameters; onnxruntime's kernels run "
                         "float32 models: export a float32 copy (copy.deepcopy(model).float())")
    spec = extractor.analyze(x)
    if not spec.exact:
        why = ("it reads its class token, so its map is the gradient of the logit, not an exact CAM; a ViT whose "
               "head averages the patch tokens (global_pool='avg') exports" if spec.reason == "class token" else
               f"its map is the gradient of its head ({spec.reason or 'not affine after pooling'}), which a graph "
               "of the forward pass does not compute; retrofit a GAP or TAP head (camloc.retrofit) to export it")
        raise ModelError(f"{source} cannot be exported: {why}")
    out = extractor(x, require_exact=True)
    return out.head, out.logits.shape[1]


def _trace(graph: LocalizerGraph, x: torch.Tensor, source: str) -> tuple[Any, str]:
    """The ONNX model proto of ``graph`` with a free batch size, and which of torch's exporters made it.

    torch's ``torch.export``-based exporter first; where it cannot convert an operation (Hiera's
    5-D attention, say), its TorchScript exporter. The self-check judges either's graph. One line,
    with the first exporter's reason, when neither can.
    """
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                graph, (x,), dynamo=True, input_names=[INPUT], output_names=list(OUTPUTS),
                dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}}, external_data=False, verbose=False,
            )
            return program.model_proto, "dynamo"
        except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds
            first = exc
        try:
            import onnx

            buffer = io.BytesIO()
            torch.onnx.export(graph, (x,), buffer, dynamo=False, opset_version=TORCHSCRIPT_OPSET,
                              input_names=[INPUT], output_names=list(OUTPUTS), dynamic_axes={INPUT: {0: "batch"}})
            return onnx.load_from_string(buffer.getvalue()), "torchscript"
        except Exception:  # noqa: BLE001
            pass
    raise ModelError(f"{source}: torch's ONNX exporters could not convert it ({exporter_reason(first)})") from first


def exporter_reason(exc: BaseException) -> str:
    r"""The gist of an exporter's error, on one line: the failing operation and the first exception of its summary.

    Example:
        >>> exporter_reason(RuntimeError("Failed.\n## Exception summary\n\n<class 'AssertionError'>: only 4D "
        ...                              "supported\n%sdpa = call_function[target=torch.ops.aten.sdpa.default]"))
        'aten.sdpa: only 4D supported'
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    summary = text.split("## Exception summary", 1)[-1].strip().splitlines() if "## Exception summary" in text else []
    reason = next((line for line in summary if line.strip()), "") or next(
        (line for line in text.splitlines() if line.strip()), type(exc).__name__)
    reason = re.sub(r"^<class '[^']+'>: ", "", reason.strip())
    op = re.search(r"target=torch\.ops\.(aten\.\w+)", text)
    return f"{op.group(1)}: {reason}" if op else reason


def _self_check(graph: LocalizerGraph, data: bytes, x: torch.Tensor, source: str) -> float:
    """Run the serialised graph with onnxruntime on ``x`` against torch: the largest map difference."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        got = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {INPUT: x.cpu().numpy()}), strict=True))
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{source}: onnxruntime cannot run the exported graph ({first}); nothing was written") from exc
    with torch.no_grad():
        want = dict(zip(OUTPUTS, (t.cpu().numpy() for t in graph(x)), strict=True))
    difference = float(np.abs(got["maps"] - want["maps"]).max())
    if not np.array_equal(got["classes"], want["classes"]) or difference > MAP_TOLERANCE:
        raise ModelError(f"{source}: the exported graph disagrees with torch's (maps differ by up to {difference:.2g}, "
                         f"classes {'agree' if np.array_equal(got['classes'], want['classes']) else 'differ'}); "
                         "nothing was written")
    return difference


def _write(target: Path, data: bytes) -> None:
    """The file written whole (a temporary file, then a rename), or one line saying why it cannot be."""
    try:
        atomic_write_bytes(target, data)
    except OSError as exc:
        raise UsageError(f"{target}: cannot be written ({exc.strerror or exc}); free space or write elsewhere") from exc


def _target(path: str | os.PathLike) -> Path:
    """The file to write, its folder checked before any work."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{target}: is a folder; give the .onnx file to write, e.g. {target / 'model.onnx'}")
    if not target.parent.is_dir():
        raise UsageError(f"{target}: its folder {target.parent} does not exist; create it or write elsewhere")
    return target
