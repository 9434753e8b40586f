"""The settings of ``camloc localize``, grouped by what they decide: the model, the boxes, the output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelSettings:
    """Which network, with which weights, on which device, and which map of it.

    Attributes:
        name: ``--model`` (a registered name; a camloc checkpoint names its own when it is not typed).
        checkpoint: ``--checkpoint``, local weights.
        num_classes: ``--num-classes`` of the checkpoint's classifier.
        method: ``--method``; None: cam, or the calibration's method.
        nwc: ``--nwc/--no-nwc``, negative weight clamping in the map.
        device: ``--device``; None: cuda if available.
        onnx: ``--onnx``, a file of camloc export that replaces the model and its settings.
    """

    name: str
    checkpoint: str | None
    num_classes: int | None
    method: str | None
    nwc: bool
    device: str | None
    onnx: str | None = None


@dataclass(frozen=True)
class BoxSettings:
    """Which classes are localized, and how their maps become boxes.

    Attributes:
        class_index: ``--class``, this class instead of the top-1 prediction.
        topk: ``--topk``, each image's top-k predicted classes.
        score_threshold: with ``--multilabel``, ``--score-threshold`` (the sigmoid score to exceed); None without.
        max_classes: ``--max-classes``, the most classes localized in an image with ``--multilabel``.
        standard: ``--standard``, the threshold rule's name.
        theta: ``--theta``, its factor (None: the rule's default).
        percentile: ``--percentile`` of PaS.
        all_regions: ``--all-regions``, every region's box, not only the largest.
        resize: ``--resize`` (``full`` or ``crop``; None: :data:`camloc.utils.defaults.REGION`).
        calibration: ``--calibration``, a calibrate ``--out`` folder or its calibration.json.
    """

    class_index: int | None
    topk: int | None
    score_threshold: float | None
    max_classes: int
    standard: str
    theta: float | None
    percentile: float
    all_regions: bool
    resize: str | None
    calibration: str | None


@dataclass(frozen=True)
class OutputSettings:
    """How the images are fed and where the results go.

    Attributes:
        fmt: the format on stdout, resolved (``--format``, ``--json``, or the terminal's default).
        out: ``--out`` folder, or None.
        save_maps: ``--save-maps``, each raw map as .npy in ``out``.
        overlays: not ``--no-overlays``: the overlay PNGs and thumbnails in ``out``.
        resume: ``--resume``, skip the images already in ``out``'s results.
        progress: not ``--quiet``.
        batch_size: ``--batch-size``, images per forward pass.
        workers: ``--workers``, decoding processes.
        metadata: ``--metadata``, a folder of true boxes to score the boxes against, or None.
    """

    fmt: str
    out: str | None
    save_maps: bool
    overlays: bool
    resume: bool
    progress: bool
    batch_size: int
    workers: int
    metadata: str | None = None


@dataclass(frozen=True)
class LocalizeSettings:
    """Every option of ``camloc localize``, grouped by what it decides."""

    images: tuple[str, ...]
    model: ModelSettings
    boxes: BoxSettings
    output: OutputSettings

    @classmethod
    def from_options(cls, options: dict[str, Any], terminal: bool = False) -> LocalizeSettings:
        """The settings of the command's click parameters (named as click passes them).

        ``terminal``: whether stdout is a terminal (the format's default is then the table, else JSON lines).
        """
        o = options
        fmt = "jsonl" if o["as_json"] else o["fmt"] or ("table" if terminal else "jsonl")
        return cls(
            images=o["images"],
            model=ModelSettings(name=o["model_name"], checkpoint=o["checkpoint"], num_classes=o["num_classes"],
                                method=o["method"], nwc=o["nwc"], device=o["device"], onnx=o["onnx"]),
            boxes=BoxSettings(class_index=o["class_index"], topk=o["topk"],
                              score_threshold=o["score_threshold"] if o["multilabel"] else None,
                              max_classes=o["max_classes"],
                              standard=o["standard"], theta=o["theta"],
                              percentile=o["percentile"], all_regions=o["all_regions"], resize=o["resize"],
                              calibration=o["calibration"]),
            output=OutputSettings(fmt=fmt, out=o["out"], save_maps=o["save_maps"], overlays=not o["no_overlays"],
                                  resume=o["resume"], progress=not o["quiet"], batch_size=o["batch_size"],
                                  workers=o["workers"], metadata=o["metadata"]),
        )
