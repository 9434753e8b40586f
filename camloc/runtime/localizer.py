"""``OnnxLocalizer``: boxes from an exported localizer with onnxruntime, Pillow, NumPy and OpenCV, without torch.

The ONNX file written by ``camloc export`` holds the whole device stage: the network, the class maps
(with NWC where it was on), their upsampling and min-max scaling, each map's threshold and the
foreground mask (docs/protocols.md, "The box rule"); its metadata says how images are preprocessed
and what the classes are called (:mod:`camloc.runtime.metadata`). What is left runs here, with the
code ``camloc.boxes`` itself uses: images are decoded and preprocessed by
:class:`~camloc.data.imaging.Preprocess`, the masks' contours found by
:func:`~camloc.cam.stages.input_boxes`, and the results are the same :class:`~camloc.batch.results.Localization`
objects, their boxes in the original image's pixels (``cam`` is a NumPy array here).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch.results import Localization, batch_results
from ..cam.stages import BatchMaps
from ..data.imaging import Geometry, ImageInput, image_list, load_image, source_name
from ..utils.errors import ModelError, UsageError
from .metadata import INPUT, OUTPUTS, ExportInfo

#: ``device=`` names and the onnxruntime execution providers they ask for, best first (the CPU always last: the
#: operations a provider lacks run there).
PROVIDERS = {"cpu": ("CPUExecutionProvider",), "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider")}


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError("an exported localizer runs with onnxruntime, which is not installed: "
                         "pip install onnxruntime (or camloc-runtime)") from exc
    return onnxruntime


def _session(path: str, device: str, threads: int | None) -> Any:
    """The onnxruntime session of ``path`` on ``device``; one line naming the file when it cannot be loaded."""
    ort = _onnxruntime()
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such file; give the .onnx file camloc export wrote")
    if device not in PROVIDERS:
        raise UsageError(f"device must be one of {', '.join(PROVIDERS)}, not {device!r}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    available = set(ort.get_available_providers())
    if PROVIDERS[device][0] not in available:
        raise UsageError(f"device {device!r} needs onnxruntime's {PROVIDERS[device][0]}, which this onnxruntime lacks "
                         f"(it has {', '.join(sorted(available))}); install onnxruntime-gpu, or use device 'cpu'")
    providers = list(PROVIDERS[device])
    try:
        return ort.InferenceSession(path, options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: onnxruntime cannot load it ({first}); export it again with camloc export") from exc


class OnnxLocalizer:
    """A localizer exported by ``camloc export``, run by onnxruntime: ``camloc.boxes`` without torch.

    Args:
        path: the ``.onnx`` file.
        all_regions: report every region's box, not only the largest.
        device: ``"cpu"`` (the default) or ``"cuda"`` (onnxruntime's CUDA provider, from the ``onnxruntime-gpu``
            package; refused in one line where it is missing).
        threads: onnxruntime's intra-op threads (None: its default, every core).

    Raises:
        ModelError: the file is missing, not ONNX, or not a camloc export (one line each).

    Example:
        >>> import tempfile, camloc
        >>> from camloc.runtime import OnnxLocalizer
        >>> path = tempfile.mkdtemp() + "/lite0.onnx"
        >>> _ = camloc.export("efficientnet_lite0", path)
        >>> r = OnnxLocalizer(path).boxes("examples/images/cat.jpg")[0]
        >>> r.label, [round(v) for v in r.box], r.region_mode
        ('Egyptian cat', [81, 68, 411, 300], 'full')
    """

    def __init__(self, path: str | os.PathLike, *, all_regions: bool = False, device: str = "cpu",
                 threads: int | None = None) -> None:
        self.path = os.fspath(path)
        self.session = _session(self.path, device, threads)
        self.info = ExportInfo.from_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        names = [o.name for o in self.session.get_outputs()]
        if names != list(OUTPUTS):
            raise ModelError(f"{self.path}: its outputs are {names}, not camloc's {list(OUTPUTS)}; export it again")
        self.preprocess = self.info.preprocess
        self.standard = self.info.standard
        self.nwc = self.info.nwc
        self.all_regions = all_regions
        self.method = "cam"

    def labels(self) -> tuple[str, ...] | None:
        """The class names the file carries, None when the model had none."""
        return self.info.labels

    def num_classes(self) -> int:
        """How many classes the model predicts."""
        return self.info.num_classes

    def prepare(self, image: ImageInput, name: str | None = None) -> tuple[np.ndarray, Geometry, str]:
        """Load and preprocess one image: ``(3 x H x W float32 array, geometry, name)``."""
        resized, geom = self.preprocess.resize_crop(load_image(image))
        return self.preprocess.array(resized), geom, source_name(image, 0) if name is None else name

    def run(self, x: Any) -> dict[str, np.ndarray]:
        """The graph's outputs for a preprocessed B x 3 x H x W batch (an array, or anything NumPy reads), by name.

        Raises:
            UsageError: the batch is not B x 3 x H x W at the file's input size.
        """
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        h, w = self.preprocess.input_size
        if x.ndim != 4 or x.shape[1:] != (3, h, w):
            raise UsageError(f"an exported localizer takes B x 3 x {h} x {w} batches (its input size), "
                             f"not {tuple(x.shape)}; give images, which it preprocesses")
        return dict(zip(OUTPUTS, self.session.run(list(OUTPUTS), {INPUT: x}), strict=True))

    def check_topk(self, topk: int | None) -> int:
        """How many classes ``topk`` asks for (None: 1), refused in one line when the file holds fewer."""
        k = 1 if topk is None else int(topk)
        if not 1 <= k <= self.info.topk:
            raise UsageError(f"topk must be between 1 and {self.info.topk}, the top-k this file was exported with, "
                             f"not {topk}; export again with --topk {max(k, 1)} for more")
        return k

    def device_stage(self, x: Any, classes: Any = None, topk: int | None = None) -> BatchMaps:
        """The graph's run on a batch, as the :class:`~camloc.cam.stages.BatchMaps` that :meth:`finish` takes.

        Raises:
            UsageError: ``classes`` given (the graph maps its top-k predictions only), or ``topk`` over the file's.
        """
        if classes is not None:
            raise UsageError("an exported localizer maps its top-k predicted classes only, not given classes; "
                             "use camloc.boxes on the model for those")
        k = self.check_topk(topk)
        out = self.run(x)
        masks = out["masks"][:, :k]
        return BatchMaps(out["classes"][:, :k], out["scores"][:, :k], out["cams"][:, :k],
                         masks.reshape(-1, *masks.shape[2:]), True, out["logits"].shape[1])

    def finish(self, dev: BatchMaps, geometries: Sequence[Geometry], names: Sequence[str]) -> list[list[Localization]]:
        """Contours, boxes in original pixels and result objects, as :meth:`camloc.Localizer.finish` makes them."""
        return batch_results(dev, geometries, names, self.info.labels, self.all_regions, self.nwc, self.standard.label)

    def boxes(self, images: Any, *, topk: int | None = None,
              batch_size: int = 16) -> list[Localization] | list[list[Localization]]:
        """Localize each image's top class (or top ``topk``): what ``camloc.boxes`` returns for the source model.

        Args:
            images: a path, PIL image or numpy array, or a list of them.
            topk: localize each image's top-k classes (at most the file's), a list of k results per image.
            batch_size: images per run of the graph.
        """
        items = image_list(images)
        self.check_topk(topk)  # checked before any image is read
        if int(batch_size) < 1:
            raise UsageError(f"batch_size must be at least 1, not {batch_size}")
        results: list[list[Localization]] = []
        for start in range(0, len(items), batch_size):
            prepared = [self.prepare(image, source_name(image, start + i))
                        for i, image in enumerate(items[start:start + batch_size])]
            x = np.stack([p[0] for p in prepared])
            results += self.finish(self.device_stage(x, None, topk), [p[1] for p in prepared], [p[2] for p in prepared])
        return results if topk is not None else [per_image[0] for per_image in results]
