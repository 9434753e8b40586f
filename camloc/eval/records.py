"""Per-image records of an evaluation, and the network input and maps kept of its first images.

Each scored image's record holds its prediction and, per row, its hit, IoU and box; the network input and maps
of the first images are kept for pictures (:class:`ImageView`).

Made only when asked (``evaluate(per_image=True)`` or ``views``): a run without them does none of
this work. See :class:`camloc.eval.evaluation.EvaluationResult` for what a record holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..cam.boxes import to_uint8, upsample
from ..cam.extractor import CAMOutput
from ..data.imaging import Preprocess, encode_image
from ..data.metadata import Sample
from ..models.config import class_names
from ..utils.defaults import SIZE
from .boxacc import contour_boxes_at, iou_matrix, threshold_levels, thresholds_list
from .protocols import MethodVariant, Settings, gt_boxes


@dataclass(frozen=True)
class ImageView:
    """What a picture of one evaluated image needs, kept for the first images (``evaluate(views=N)``).

    Attributes:
        image: the protocol's 224 x 224 network input, denormalised, as an RGB JPEG (for display).
        maps: per ``(method, nwc)`` the uint8 map ``U`` the protocol thresholds, as a PNG (exact).
        truth: the ground-truth boxes on the 224 x 224 input (the protocol's integer rules).

    Example:
        >>> import tempfile, torch
        >>> from camloc.data.metadata import read_dataset
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> from camloc.eval.evaluation import evaluate
        >>> from camloc.models.wsol import build_wsol
        >>> root = tempfile.mkdtemp()
        >>> samples = read_dataset(write_synthetic(root, SyntheticSpec(train=1, train_fullsup=1, test=2))["test"])
        >>> _ = torch.manual_seed(0)
        >>> result = evaluate(build_wsol("smallcnn", num_classes=4), samples, root, views=1, progress=False)
        >>> view = result.views["images/test/00000.png"]      # the first scored image's
        >>> view.rgb().shape, view.u8(("cam", True)).shape, view.truth.tolist()
        ((224, 224, 3), (224, 224), [[18, 21, 168, 192]])
    """

    image: bytes
    maps: dict
    truth: np.ndarray

    def rgb(self) -> np.ndarray:
        """The input picture, 224 x 224 x 3 uint8 RGB."""
        import cv2

        return cv2.imdecode(np.frombuffer(self.image, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].copy()

    def u8(self, key: tuple[str, bool]) -> np.ndarray:
        """The uint8 map of ``(method, nwc)``, 224 x 224."""
        import cv2

        return cv2.imdecode(np.frombuffer(self.maps[key], np.uint8), cv2.IMREAD_UNCHANGED)


class PerImageRecords:
    """The records of one evaluation, a dict per scored image in split order, and its views.

    Args:
        settings: the evaluation's settings (protocol, class choice, sweep, box convention).
        views: keep an :class:`ImageView` of this many first scored images.
        pre: the protocol's preprocessing (to denormalise the kept inputs).
        model: the model (for its class names).
    """

    def __init__(self, settings: Settings, views: int = 0, pre: Preprocess | None = None,
                 model: nn.Module | None = None) -> None:
        self.settings, self.model, self.names = settings, model, None
        self.known = settings.cam_class == "gt"
        self.records: list[dict] = []
        self.views_left, self.pre = views, pre
        self.views: dict[str, ImageView] = {}

    def add_batch(self, chunk: Sequence[Sample], logits: torch.Tensor, top5: torch.Tensor, ok: np.ndarray,
                  num_classes: int) -> list[dict | None]:
        """A record per scored image of the batch (None for one that failed), appended to :attr:`records`.

        Args:
            chunk: the batch's samples.
            logits: their logits (the ``score`` is the top-1 softmax probability).
            top5: their top-5 classes (the first is ``predicted``).
            ok: which of them were scored.
            num_classes: the model's number of classes (for its class names).

        Returns:
            The batch's records, in order; a row's entry is added to ``record["rows"]`` by the caller.
        """
        if self.names is None:
            self.names = class_names(self.model, num_classes) or ()
        probs = logits.detach().float().softmax(dim=1).max(dim=1).values.cpu().numpy()
        out: list[dict | None] = []
        for i, s in enumerate(chunk):
            if not ok[i]:
                out.append(None)
                continue
            predicted = int(top5[i, 0])
            out.append({"image_id": s.image_id, "label": int(s.label), "predicted": predicted,
                        "label_name": self.names[s.label] if self.known and 0 <= s.label < len(self.names) else None,
                        "predicted_name": self.names[predicted] if predicted < len(self.names) else None,
                        "score": float(probs[i]), "rows": {}})
            self.records.append(out[-1])
        return out

    def keep_views(self, chunk: Sequence[Sample], x: torch.Tensor, outs: dict[tuple[str, bool], CAMOutput],
                   ok: np.ndarray) -> None:
        """Keep the input and maps of the batch's first scored images while ``views_left`` lasts."""
        import cv2

        take = [i for i in range(len(chunk)) if ok[i]][:self.views_left]
        if not take:
            return
        mean = torch.tensor(self.pre.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.pre.std, device=x.device).view(1, 3, 1, 1)
        pixels = (x[take].float() * std + mean).mul(255).round().clamp(0, 255).to(torch.uint8)
        pixels = pixels.permute(0, 2, 3, 1).cpu().numpy()
        u8 = {key: to_uint8(upsample(out.maps[take, 0], (SIZE, SIZE))).cpu().numpy() for key, out in outs.items()}
        for j, i in enumerate(take):
            s = chunk[i]
            self.views[s.image_id] = ImageView(
                encode_image(pixels[j][:, :, ::-1], ".jpg", cv2.IMWRITE_JPEG_QUALITY, 92),
                {key: encode_image(m[j], ".png") for key, m in u8.items()},
                gt_boxes(s, self.settings.protocol, self.settings.box_convention))
        self.views_left -= len(take)

    def settle(self, rows: Sequence[MethodVariant], points: dict[str, dict[str, Any]]) -> None:
        """Settle the wsolevaluation records at each row's operating point.

        The hit comes from the bits kept for every tau; the box and IoU where a view was kept (None elsewhere).

        Args:
            rows: the evaluation's rows.
            points: ``{row: {"metric", "tau", "delta"}}``; a row without one is left as it is.
        """
        taus = thresholds_list(self.settings.interval)
        for r in rows:
            if r.name not in points:
                continue
            tau = points[r.name]["tau"]
            index = int(np.abs(taus - tau).argmin())
            for rec in self.records:
                entry = rec["rows"].get(r.name)
                if entry is None:
                    continue
                bits = entry.pop("bits")
                entry["hit"] = bool(np.unpackbits(bits, count=len(taus))[index])
                entry["iou"], entry["box"] = None, None
                view = self.views.get(rec["image_id"])
                if view is not None:
                    entry["iou"], entry["box"] = self._box_at(view, r, tau, points[r.name]["metric"] == "maxboxacc_v2")

    def _box_at(self, view: ImageView, row: MethodVariant, tau: float, all_contours: bool) -> tuple[float, list[int]]:
        """The box a wsolevaluation row's hit at ``tau`` is judged on, and its IoU: ``(iou, box)``.

        It is the best by IoU of the boxes of ``U > t`` (every contour's for MaxBoxAccV2, the largest contour's for
        MaxBoxAcc).
        """
        u8 = view.u8((row.method, row.nwc))
        t = int(threshold_levels(u8, np.asarray([tau]), self.settings.sweep_percentile(row.variant),
                                 self.settings.rule(row.variant))[0])
        boxes = contour_boxes_at(u8, t, all_contours)
        ious = iou_matrix(boxes, view.truth).max(axis=1)
        best = int(ious.argmax())
        return float(ious[best]), [int(v) for v in boxes[best]]
