"""Defaults every layer agrees on, importable without torch (the command line's help needs them)."""

#: The model used when none is named: timm's efficientnet_lite0 with offline ImageNet weights.
DEFAULT_MODEL = "efficientnet_lite0"
#: The region of an image a localizer shows its model unless told: ``"full"``, the whole image squashed to the
#: input size (``"crop"``: the model's own resize and center crop, which never sees the image's border). Chosen
#: by measurement on real photos: docs/defaults.md.
REGION = "full"
#: The network input side of both evaluation protocols (and of the score maps wsolevaluation saves).
SIZE = 224

#: The automatic threshold rules (each map's own threshold, as scikit-image's ``threshold_<rule>``).
ADAPTIVE_RULES: tuple[str, ...] = ("otsu", "li", "triangle", "yen")
#: The threshold standards by name (:func:`camloc.cam.boxes.make_standard`): PaS, vanilla CAM's max, the automatic
#: rules.
STANDARDS: tuple[str, ...] = ("percentile", "max") + ADAPTIVE_RULES
#: The wsolevaluation protocol's metrics by name: MaxBoxAcc (V1), MaxBoxAccV2, PxAP.
BOX_METRICS: tuple[str, ...] = ("maxboxacc", "maxboxacc_v2", "pxap")
#: What the field reports (wsolevaluation): MaxBoxAccV2 on boxes, PxAP on masks. The command line's default.
REPORTED_METRICS: tuple[str, ...] = ("maxboxacc_v2", "pxap")
#: The faithfulness metrics (:func:`camloc.faithfulness`), in the order they are reported: deletion and insertion
#: AUC (RISE), Average Drop and Increase in Confidence (Grad-CAM++).
FAITHFULNESS_METRICS: tuple[str, ...] = ("deletion", "insertion", "average_drop", "increase")
#: Pictures ``camloc evaluate --out`` puts in its page by default (the first images of the split; every image is
#: listed).
EVALUATION_PICTURES = 100
