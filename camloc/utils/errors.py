"""Errors camloc raises on bad input: each message is one line naming the culprit and the fix."""

from __future__ import annotations


class CamlocError(Exception):
    """Base class of every error camloc raises on purpose (bad input, not a bug)."""


class ImageError(CamlocError):
    """An image file cannot be read, decoded or used.

    The message names the file and says what to do.
    """

    def __init__(self, source: object, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class ModelError(CamlocError):
    """A model name is unknown, its weights cannot be loaded, or its structure does not fit CAM."""


class CheckpointError(CamlocError):
    """A checkpoint file is missing, unreadable or made for another architecture."""


class UsageError(CamlocError):
    """Arguments that do not fit together (class indices, batch sizes, thresholds)."""
