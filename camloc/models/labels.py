"""A model's class names, and class requests that name classes instead of giving their indices.

:func:`model_labels` counts a model's classes (one forward pass on a blank input) and finds their
names (:func:`camloc.models.config.class_names`: the model's camloc config's, else ImageNet's for
1000 classes). :func:`label_indices` replaces each name in a class request by its index: names match
exactly, else ignoring case; an unknown name is refused with the closest labels, one that fits two
classes with their indices.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from ..cam.analysis import as_logits
from ..cam.extractor import ClassSpec, first_name, input_channels, model_dtype
from ..cam.hooks import eval_mode
from ..utils.errors import UsageError
from .config import class_names

#: A model's class names (None when unknown) and how many classes it predicts.
Labels = tuple[tuple[str, ...] | None, int]


def count_classes(model: nn.Module, input_size: tuple[int, int], device: torch.device | str | None = None) -> int:
    """How many classes ``model`` predicts: the width of its logits for one blank input.

    The input is zeros, ``1 x C x h x w`` with ``(h, w) = input_size`` and ``C`` the input channels
    of the model's stem (3 without one), in the model's dtype; the model runs in eval mode, without
    gradients, and is left as it was.

    Example:
        >>> count_classes(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)),
        ...               (8, 8))
        5
    """
    stem = input_channels(model)
    blank = torch.zeros((1, stem[1] if stem else 3, *input_size), device=device,
                        dtype=model_dtype(model) or torch.float32)
    with eval_mode(model), torch.no_grad():
        return as_logits(model(blank)).shape[1]


def model_labels(model: nn.Module, input_size: tuple[int, int], device: torch.device | str | None = None) -> Labels:
    """``(names, num_classes)``: the model's class names (None if unknown) and how many it predicts.

    Example:
        >>> model_labels(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)),
        ...              (8, 8))
        (None, 5)
    """
    n = count_classes(model, input_size, device)
    return class_names(model, n), n


def label_indices(classes: ClassSpec, labels: tuple[str, ...] | None, num_classes: int) -> ClassSpec:
    """The class request with each name (a string) replaced by its index in ``labels``.

    Names match exactly, else ignoring case; a request without names comes back unchanged, as does
    every index in it (a list or tuple becomes a list).

    Raises:
        UsageError: a name with ``labels`` None (no label list known), an unknown name (the closest
            labels named), or a name that fits two classes.

    Example:
        >>> label_indices(["Tabby", 2], ("dog", "tabby", "owl"), 3)
        [1, 2]
    """
    name = first_name(classes)
    if name is None:
        return classes
    n = num_classes
    if labels is None:
        raise UsageError(
            f"class {name!r} is a name, but camloc knows no label list for this {n}-class model (only ImageNet's "
            f"1000 and a camloc-built model's own): pass class indices 0..{n - 1}"
        )
    exact: dict[str, list[int]] = {}
    folded: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        exact.setdefault(label, []).append(i)
        folded.setdefault(label.casefold(), []).append(i)

    def index(item: Any) -> Any:
        if isinstance(item, (list, tuple)):
            return [index(v) for v in item]
        if not isinstance(item, str):
            return item
        found = exact.get(item) or folded.get(item.casefold())
        if not found:
            close = difflib.get_close_matches(item.casefold(), list(folded), n=3, cutoff=0.75)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise UsageError(
                f"unknown class name {item!r}{hint}: names are the model's labels, as results' .label shows "
                f"them; or pass the class index (0..{n - 1})"
            )
        if len(found) > 1:
            raise UsageError(
                f"class name {item!r} fits {len(found)} classes ({', '.join(map(str, found))}): pass the index you mean"
            )
        return found[0]

    return index(classes)
