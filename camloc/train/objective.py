r"""What a run minimises and how it counts its training accuracy: one class per image, or several.

Single-label (the default): cross-entropy of the softmax, and the accuracy is Top-1 (``train_top1``, %).

Multi-label (``multilabel = true``, a split read by ``read_dataset(..., multilabel=True)``): each image's
target is a multi-hot vector :math:`t \in \{0, 1\}^C` (1 for each of its classes) and the loss is binary
cross-entropy on the logits :math:`z` (:class:`torch.nn.BCEWithLogitsLoss`), averaged over images and classes:

.. math:: L = -\frac{1}{BC} \sum_{i, c} t_{ic} \log \sigma(z_{ic}) + (1 - t_{ic}) \log(1 - \sigma(z_{ic})).

A class is predicted where its sigmoid score passes 0.5 (:math:`z > 0`). The epoch's accuracy is then the
per-label accuracy ``train_label_acc``: the share (%) of (image, class) pairs predicted right, present or
absent; as absent classes dominate it, the record also holds the micro F1 over the pairs,
``train_micro_f1 = 100 * 2 TP / (2 TP + FP + FN)`` (NaN while no class is present or predicted).

Example:
    >>> import torch
    >>> from camloc.train.objective import MultiLabel
    >>> objective = MultiLabel(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))   # two images, three classes
    >>> y = objective.targets(torch.tensor([1, 0]))       # the dataset's items are the images' indices
    >>> y.tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    >>> logits = torch.tensor([[-1.0, 2.0, 1.0], [3.0, -2.0, -1.0]])
    >>> loss = objective.loss_fn(logits, y)
    >>> summary, seen = objective.summary(objective.tally(logits, loss, y))
    >>> seen, round(summary["train_label_acc"], 2), round(summary["train_micro_f1"], 2)
    (2, 66.67, 66.67)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.metadata import Sample, read_dataset
from .config import TrainConfig
from .data import class_names_of, train_items
from .logs import ACCURACY


class SingleLabel:
    """One class per image: cross-entropy, Top-1 accuracy (the loop's original objective)."""

    #: The number of sums :meth:`tally` gives.
    width = 3

    def __init__(self) -> None:
        self.loss_fn = nn.CrossEntropyLoss()

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """The loss's targets of a batch's labels: the labels themselves."""
        return y

    def tally(self, logits: torch.Tensor, loss: torch.Tensor, y: torch.Tensor) -> list[float]:
        """A batch's sums: loss x images, Top-1 hits, images."""
        return [float(loss.detach()) * len(y), float((logits.detach().argmax(1) == y).sum()), len(y)]

    def summary(self, sums: list[float]) -> tuple[dict[str, float], float]:
        """``({"loss", accuracy}, images)`` of an epoch's sums (reduced over ranks)."""
        loss_sum, correct, seen = sums
        return {"loss": loss_sum / max(seen, 1), ACCURACY[False][0]: 100.0 * correct / max(seen, 1)}, seen


class MultiLabel:
    """Several classes per image: binary cross-entropy on the logits, per-label accuracy and micro F1 at 0.5.

    Args:
        table: N x C multi-hot targets, row ``i`` for the training split's image ``i`` (the label the
            dataset carries for it).
    """

    width = 6

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table.float()
        self.loss_fn = nn.BCEWithLogitsLoss()

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """The multi-hot targets (B x C, float) of a batch's image indices."""
        return self.table.to(y.device)[y]

    def tally(self, logits: torch.Tensor, loss: torch.Tensor, y: torch.Tensor) -> list[float]:
        """A batch's sums: loss x images, right (image, class) pairs, images, TP, FP, FN."""
        predicted, present = logits.detach() > 0, y > 0.5
        return [float(loss.detach()) * len(y), float((predicted == present).sum()), len(y),
                float((predicted & present).sum()), float((predicted & ~present).sum()),
                float((~predicted & present).sum())]

    def summary(self, sums: list[float]) -> tuple[dict[str, float], float]:
        """``({"loss", "train_label_acc", "train_micro_f1"}, images)`` of an epoch's sums."""
        loss_sum, right, seen, tp, fp, fn = sums
        pairs = seen * self.table.shape[1]
        return {"loss": loss_sum / max(seen, 1), ACCURACY[True][0]: 100.0 * right / max(pairs, 1),
                "train_micro_f1": 100.0 * 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")}, seen


def multi_hot(classes: list[tuple[int, ...]], num_classes: int) -> torch.Tensor:
    """N x C float targets: 1 at each image's classes."""
    table = torch.zeros(len(classes), num_classes)
    for i, cs in enumerate(classes):
        table[i, list(cs)] = 1.0
    return table


def training_objective(cfg: TrainConfig) -> tuple[list[str], list[int], list[str], Any]:
    """``(paths, labels, class names, objective)`` of a run's training split.

    Single-label: :func:`camloc.train.data.train_items` and :class:`SingleLabel`. Multi-label: the split read
    multi-label, each image's label its index (the row of its targets) and :class:`MultiLabel`.
    """
    if not cfg.multilabel:
        return (*train_items(cfg), SingleLabel())
    samples = read_dataset(cfg.train_metadata, multilabel=True)
    root = Path(cfg.train_images or cfg.train_metadata)
    names = class_names_of(samples)
    table = multi_hot([s.classes for s in samples], len(names))
    return [str(root / s.image_id) for s in samples], list(range(len(samples))), names, MultiLabel(table)


def split_metrics(model: nn.Module, samples: list[Sample], images: str, settings: Any, multilabel: bool
                  ) -> dict[str, dict[str, Any]]:
    """``{row: {metric: value}}`` of an evaluation split during training.

    Single-label: :func:`camloc.eval.evaluation.evaluate`'s metrics; multi-label: the mean over classes of
    :func:`camloc.eval.per_class.evaluate_per_class` (each class localized with its own map).
    """
    if multilabel:
        from ..eval.per_class import evaluate_per_class

        return evaluate_per_class(model, samples, images, settings, progress=False).mean
    from ..eval.evaluation import evaluate

    return evaluate(model, samples, images, settings, progress=False).metrics
