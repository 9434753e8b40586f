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
#: Pictures ``camloc evaluate --out`` puts in its page by default (the first images of the split; every image is
#: listed).
EVALUATION_PICTURES = 100
