"""The device stage of ``camloc.boxes`` as one module that traces to ONNX: images in; maps, thresholds, masks out.

:class:`LocalizerGraph` wraps a classifier whose head is exact (docs/how-it-works.md, the table of heads): one hook
on the feature layer, removed when the pass ends, gives the feature map ``F``; the classifier's
weights give each top-k class's map ``M_k = sum_c w[k, c] F_c`` (NWC: ``max(w, 0)``), with the same
:func:`camloc.cam.heads.exact_maps` that :class:`~camloc.cam.extractor.CAMExtractor` uses. Then the box
rule's steps 1-4 (docs/protocols.md, "The box rule"): bicubic upsampling to the input
(:func:`camloc.cam.boxes.upsample`), min-max scaling (:func:`camloc.cam.boxes.minmax`), the levels
``U = floor(255 x map)``, the threshold ``t`` and the foreground ``U > t``. Only the contours are left
to the runtime (:mod:`camloc.runtime`).

The threshold is written in tensor operations the exporter can trace:

* the percentile rule ``t = floor(theta x percentile_i(U))``: ``U`` sorted, then NumPy's linear
  interpolation between the two order statistics around ``(n - 1) i / 100``, in float64, as
  :func:`camloc.cam.boxes.percentile_u8` computes it from a histogram; ``i = 100`` is the maximum;
* ``otsu``, ``triangle`` and ``yen``: each map's 256-bin histogram (a scatter-add), then
  :func:`camloc.cam.boxes.histogram_thresholds`, the code ``camloc.boxes`` runs;
* ``li`` iterates until it converges, a loop of data-dependent length that a graph of fixed
  operations does not hold: it is refused (:data:`GRAPH_RULES`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..cam import heads
from ..cam.analysis import as_logits
from ..cam.boxes import histogram_thresholds, minmax, upsample
from ..cam.exact import head_modules
from ..cam.heads import HeadSpec
from ..cam.hooks import forward_hooks
from ..cam.rules import ThresholdRule
from ..runtime.metadata import OUTPUTS
from ..utils.errors import UsageError

#: The threshold rules an exported graph computes (the percentile rule covers ``max`` and PaS).
GRAPH_RULES = ("percentile", "otsu", "triangle", "yen")


def check_rule(standard: ThresholdRule) -> None:
    """Refuse a threshold rule an ONNX graph cannot compute, in one line.

    Example:
        >>> check_rule(ThresholdRule.adaptive("li"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        camloc.utils.errors.UsageError: the 'li' threshold iterates until it converges, which an ONNX graph ...
    """
    if standard.rule not in GRAPH_RULES:
        raise UsageError(f"the {standard.rule!r} threshold iterates until it converges, which an ONNX graph cannot "
                         "hold; export with percentile, max, otsu, triangle or yen")


def percentile_levels(levels: torch.Tensor, percentile: float) -> torch.Tensor:
    """NumPy's linear percentile of each row of N x n integer levels, by sorting: an N-vector of float64.

    Equal to :func:`camloc.cam.boxes.percentile_u8` on the same levels: the order statistics of rank
    ``floor(p)`` and ``floor(p) + 1`` at ``p = (n - 1) i / 100``, and NumPy's two-sided ``lerp`` between them.

    Example:
        >>> percentile_levels(torch.tensor([[0.0, 10.0, 20.0, 30.0, 40.0]]), 90.0).tolist()
        [36.0]
    """
    n = levels.shape[1]
    if percentile >= 100.0:
        return levels.amax(dim=1).double()
    ordered = torch.sort(levels.float(), dim=1).values
    pos = (n - 1) * (percentile / 100.0)
    lo = int(pos // 1)
    hi = min(lo + 1, n - 1)
    w = pos - lo
    a, b = ordered[:, lo].double(), ordered[:, hi].double()
    return a + w * (b - a) if w < 0.5 else b - (b - a) * (1.0 - w)


def graph_thresholds(levels: torch.Tensor, standard: ThresholdRule) -> torch.Tensor:
    """The integer ``t`` of ``U > t`` for each row of N x n levels ``U`` (0..255, float64): an N-vector of int64.

    The same values as :func:`camloc.cam.boxes.thresholds` on the uint8 maps, in operations ONNX holds.
    """
    if standard.rule == "percentile":
        return torch.floor(standard.theta * percentile_levels(levels, standard.percentile)).long()
    index = levels.long()
    hist = torch.zeros(levels.shape[0], 256, dtype=torch.long, device=levels.device)
    hist = hist.scatter_add(1, index, torch.ones_like(index))
    t = torch.floor(histogram_thresholds(hist, standard.rule, levels.shape[1]))
    return torch.where(torch.isnan(t), torch.full_like(t, 255.0), t).long()


class LocalizerGraph(nn.Module):
    """A classifier with an exact head, and the box rule's device steps for its top-k classes.

    Args:
        model: the classifier (left as it is: the hook lives for one forward pass).
        spec: its head analysis (exact).
        topk: classes localized per image.
        nwc: negative weight clamping in the maps.
        standard: the threshold rule (:data:`GRAPH_RULES`).

    ``forward(x)`` returns the tuple :data:`camloc.runtime.metadata.OUTPUTS` describes, in that order.

    Example:
        >>> import timm
        >>> from camloc.cam.extractor import CAMExtractor
        >>> model = timm.create_model("resnet18").eval()
        >>> x = torch.randn(2, 3, 224, 224)
        >>> spec = CAMExtractor(model).analyze(x)
        >>> out = LocalizerGraph(model, spec, 3, True, ThresholdRule.pas())(x)
        >>> [tuple(t.shape) for t in out]
        [(2, 1000), (2, 3), (2, 3), (2, 3, 7, 7), (2, 3, 224, 224), (2, 3), (2, 3, 224, 224)]
    """

    def __init__(self, model: nn.Module, spec: HeadSpec, topk: int, nwc: bool, standard: ThresholdRule) -> None:
        super().__init__()
        check_rule(standard)
        self.model = model
        self.spec = spec
        self.topk = int(topk)
        self.nwc = nwc
        self.standard = standard

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The outputs of :data:`~camloc.runtime.metadata.OUTPUTS` for a B x 3 x H x W batch."""
        modules = head_modules(self.model, self.spec)
        captured: dict[str, torch.Tensor] = {}

        def keep(_module, _args, out):
            captured["feats"] = out

        with forward_hooks([(modules[self.spec.feature_layer], keep)]):
            logits = as_logits(self.model(x)).float()
        classes = logits.topk(self.topk, dim=1).indices
        norm = modules[self.spec.norm] if self.spec.norm else None
        size = (x.shape[2], x.shape[3])
        cams, _ = heads.exact_maps(self.spec, captured["feats"], modules[self.spec.classifier], norm, classes,
                                   self.nwc, size)
        batch, k, h, w = cams.shape
        maps = minmax(upsample(cams.reshape(batch * k, h, w), size))
        levels = torch.floor(maps * 255.0).flatten(1)
        t = graph_thresholds(levels, self.standard)
        masks = levels > t.view(-1, 1).double()
        scores = logits.softmax(dim=1).gather(1, classes)
        out = (logits, classes, scores, cams, maps.float().view(batch, k, *size), t.view(batch, k),
               masks.view(batch, k, *size))
        assert len(out) == len(OUTPUTS)
        return out
