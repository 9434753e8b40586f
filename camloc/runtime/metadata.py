"""What an exported localizer carries about itself: the metadata of a camloc ONNX file (docs/deployment.md).

``camloc export`` writes these string entries into the ONNX file's ``metadata_props``, so that the file
alone is enough to use it: how to preprocess an image, the class names, the threshold rule and its
parameters, whether NWC was on, how many classes each image gets, and what made it (camloc's version
and the source model's name). :class:`ExportInfo` writes and reads them; the key names, the graph's
input and outputs are defined here once, for the exporter and the runtime alike.

Example:
    >>> from camloc.data.imaging import Preprocess
    >>> from camloc.cam.rules import ThresholdRule
    >>> info = ExportInfo("resnet50", "0.1.0", Preprocess((224, 224), "resize", None), ("cat", "dog"),
    ...                   ThresholdRule.pas(), True, 2, 2, "avg")
    >>> ExportInfo.from_metadata(info.to_metadata(), "m.onnx") == info
    True
    >>> info.to_metadata()["camloc.threshold"]
    '{"rule": "percentile", "theta": 0.35, "percentile": 90.0, "label": "0.35 x p90"}'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..cam.rules import ThresholdRule
from ..data.imaging import Preprocess
from ..utils.errors import ModelError

#: The format of the metadata, written as ``camloc.format``; a file without it is not a camloc export.
FORMAT = "camloc-onnx/1"
#: The graph's one input: a B x 3 x H x W float32 batch, preprocessed as ``camloc.preprocess`` says.
INPUT = "images"
#: The graph's outputs, in order, and what each holds (also written into the file, as ``camloc.outputs``).
OUTPUTS = {
    "logits": "B x K float32: the classifier's logits",
    "classes": "B x k int64: the top-k classes, best first",
    "scores": "B x k float32: softmax(logits) of those classes",
    "cams": "B x k x h x w float32: each class's raw map at feature resolution (NWC applied if on)",
    "maps": "B x k x H x W float32: the map upsampled to the input (bicubic) and min-max scaled to [0, 1]",
    "thresholds": "B x k int64: t of the box rule, on the 0..255 levels floor(255 * maps)",
    "masks": "B x k x H x W bool: the foreground floor(255 * maps) > thresholds, whose largest contour is the box",
}
_KEYS = ("format", "version", "model", "preprocess", "labels", "threshold", "nwc", "topk", "num_classes", "head")


def _key(name: str) -> str:
    return f"camloc.{name}"


@dataclass(frozen=True)
class ExportInfo:
    """An exported localizer's settings, as its ONNX file's metadata records them.

    Attributes:
        model: the source model's name (a registered name, a checkpoint's architecture or the class's name).
        camloc_version: the camloc that exported it.
        preprocess: how an image becomes the graph's input (resize or crop, mean, std, interpolation).
        labels: the class names, None when the model has none.
        standard: the threshold rule the graph applies.
        nwc: whether the maps clamp negative classifier weights to zero.
        topk: how many classes the graph localizes per image (its top-k).
        num_classes: the width of the logits.
        head: the head in words (:attr:`camloc.cam.heads.HeadSpec.form`), e.g. ``"avg"``.
    """

    model: str
    camloc_version: str
    preprocess: Preprocess
    labels: tuple[str, ...] | None
    standard: ThresholdRule
    nwc: bool
    topk: int
    num_classes: int
    head: str

    def to_metadata(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` entries, each value a string (JSON where it is not text)."""
        s = self.standard
        values: dict[str, Any] = {
            "format": FORMAT, "version": self.camloc_version, "model": self.model,
            "preprocess": json.dumps(self.preprocess.to_dict()),
            "labels": json.dumps(list(self.labels) if self.labels is not None else None),
            "threshold": json.dumps({"rule": s.rule, "theta": s.theta, "percentile": s.percentile, "label": s.label}),
            "nwc": json.dumps(self.nwc), "topk": str(self.topk), "num_classes": str(self.num_classes),
            "head": self.head, "outputs": json.dumps(OUTPUTS),
        }
        return {_key(k): v for k, v in values.items()}

    @classmethod
    def from_metadata(cls, props: dict[str, str], source: str) -> ExportInfo:
        """The settings in an ONNX file's metadata.

        Raises:
            ModelError: one line naming ``source``: it is not a camloc export, or one this camloc cannot read.
        """
        if props.get(_key("format")) != FORMAT:
            found = props.get(_key("format"))
            why = (f"its camloc format is {found!r}, not {FORMAT!r}; export it again with this camloc" if found else
                   "it carries no camloc metadata, so it is not a camloc export; make one with camloc export")
            raise ModelError(f"{source}: {why}")
        missing = [_key(k) for k in _KEYS if _key(k) not in props]
        if missing:
            raise ModelError(f"{source}: its camloc metadata lacks {', '.join(missing)}; export it again")
        try:
            return cls._parse({k: props[_key(k)] for k in _KEYS})
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelError(f"{source}: its camloc metadata is damaged ({exc}); export it again") from exc

    @classmethod
    def _parse(cls, v: dict[str, str]) -> ExportInfo:
        threshold = json.loads(v["threshold"])
        labels = json.loads(v["labels"])
        return cls(
            model=v["model"], camloc_version=v["version"], preprocess=Preprocess.from_dict(json.loads(v["preprocess"])),
            labels=tuple(labels) if labels is not None else None,
            standard=ThresholdRule(threshold["theta"], threshold["percentile"], threshold["rule"]),
            nwc=bool(json.loads(v["nwc"])), topk=int(v["topk"]), num_classes=int(v["num_classes"]), head=v["head"],
        )
