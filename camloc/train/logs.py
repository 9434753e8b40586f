"""What a run says about its epochs: one short line each on the terminal, every metric in its log.

Each epoch's *record* (loss, training Top-1 or, multi-label, per-label accuracy and micro F1, learning rate,
seconds, and every ``split/protocol/variant/metric``
the evaluation measured) goes in full to the run's CSV log (:func:`write_log`), to TensorBoard where it is
installed, and to the ``on_epoch`` callback of :func:`camloc.train.loop.train` (``camloc train --json`` prints it
as a JSON line). The terminal gets :func:`epoch_line`: the epoch, the loss, the training accuracy, one
localization metric (:func:`loc_key`: the one the selection rule maximises) and the time, after a
:func:`legend` that names that metric once.

Example:
    >>> from camloc.train.config import TrainConfig
    >>> from camloc.train.logs import epoch_line, legend
    >>> cfg = TrainConfig(epochs=10, val_metadata="val")
    >>> record = {"epoch": 3, "loss": 0.41234, "train_top1": 91.25, "seconds": 10.1, "eval_seconds": 2.2,
    ...           "val/wsolevaluation/cam/maxboxacc_v2": 78.44, "val/rethinking/cam/gt_known_loc": 80.0}
    >>> print(epoch_line(record, cfg))
    epoch 3/10  loss 0.412  acc 91.2%  loc 78.4%  12.3 s
    >>> print(legend(cfg, "runs/x/log.csv"))
    acc: training Top-1; loc: val/wsolevaluation/cam/maxboxacc_v2; every metric in runs/x/log.csv
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write_text
from .config import TrainConfig

#: The record key of a run's training accuracy and its name, single-label (False) and multi-label (True).
ACCURACY = {False: ("train_top1", "training Top-1"), True: ("train_label_acc", "training per-label accuracy at 0.5")}
#: The metric each selection rule maximises: (split, protocol, variant, metric).
SELECTION_METRICS = {
    "wsolevaluation": ("val", "wsolevaluation", "cam", "maxboxacc_v2"),
    "authors": ("test", "rethinking", "cam", "top1_loc"),
}


def loc_key(cfg: TrainConfig) -> str | None:
    """The record key of the localization metric an epoch line shows, None when the run evaluates no split.

    The selection rule's metric; under ``selection=last``, CAM's GT-known Loc (rethinking protocol) on the
    validation split, else on the test split.

    Example:
        >>> from camloc.train.config import TrainConfig
        >>> from camloc.train.logs import loc_key
        >>> loc_key(TrainConfig(selection="last", test_metadata="test")), loc_key(TrainConfig(selection="last"))
        ('test/rethinking/cam/gt_known_loc', None)
    """
    if cfg.selection in SELECTION_METRICS:
        split = SELECTION_METRICS[cfg.selection][0]
        if getattr(cfg, f"{split}_metadata"):
            return "/".join(SELECTION_METRICS[cfg.selection])
    for split in ("val", "test"):
        if getattr(cfg, f"{split}_metadata"):
            return f"{split}/rethinking/cam/gt_known_loc"
    return None


def legend(cfg: TrainConfig, log_path: str | Path) -> str:
    """The line before the first epoch: what the columns of :func:`epoch_line` are, and where the rest is."""
    key = loc_key(cfg)
    loc = f"loc: {key}; " if key else ""
    return f"acc: {ACCURACY[cfg.multilabel][1]}; {loc}every metric in {log_path}"


def epoch_line(record: dict[str, Any], cfg: TrainConfig) -> str:
    """One short line for an epoch's record: epoch, loss, training accuracy, localization (when measured), time."""
    accuracy = record[ACCURACY[cfg.multilabel][0]]
    parts = [f"epoch {record['epoch']}/{cfg.epochs}", f"loss {record['loss']:.3f}", f"acc {accuracy:.1f}%"]
    key = loc_key(cfg)
    if key and key in record:
        parts.append(f"loc {record[key]:.1f}%")
    parts.append(f"{record['seconds'] + record.get('eval_seconds', 0.0):.1f} s")
    return "  ".join(parts)


def write_log(path: Path, history: list[dict]) -> None:
    """The per-epoch history as CSV (one column per key ever seen), atomically."""
    keys = list(dict.fromkeys(k for h in history for k in h))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


def tensorboard(folder: Path):
    """A TensorBoard writer where the ``tensorboard`` package is installed, else None (the CSV log remains)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))
