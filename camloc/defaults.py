"""Defaults every layer agrees on, importable without torch (the command line's help needs them)."""

#: The model used when none is named: timm's efficientnet_lite0 with offline ImageNet weights.
DEFAULT_MODEL = "efficientnet_lite0"
