"""The paper's ablation for one trained model, and its summary over models and seeds.

:func:`measure` scores a model on a test split under every inference variant (CAM, NWC, PaS,
NWC+PaS) and both protocols: the rethinking protocol with the paper's fixed thresholds (GT-known and
Top-1 Loc), the same with thresholds chosen on a separate annotated split (wsolevaluation's
``train-fullsup``: ``theta`` of the max for CAM and NWC, of the 90th percentile for PaS and NWC+PaS,
each the best GT-known Loc there), and wsolevaluation's protocol (MaxBoxAccV2 where the split has
boxes, PxAP where it has masks). :func:`summarize` gives mean, standard deviation and count per
metric over runs, and :func:`table3_rows` lays a summary out as the paper's Table 3: the baseline, each
fix alone, each pair, all three.

Keys are ``protocol/variant/metric`` (``calibrated`` is the protocol of the chosen thresholds), as
in a training run's log after its ``split/`` prefix.

Example:
    >>> import tempfile, torch
    >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
    >>> from camloc.eval.ablation import Split, measure
    >>> from camloc.models.wsol import build_wsol
    >>> root = tempfile.mkdtemp()                      # a tiny synthetic benchmark
    >>> folders = write_synthetic(root, SyntheticSpec(classes=2, train=1, train_fullsup=4, test=4))
    >>> _ = torch.manual_seed(0)
    >>> model = build_wsol("smallcnn", num_classes=2)   # untrained here: the numbers only show the layout
    >>> m = measure(model, Split.read(folders["test"], root), Split.read(folders["train-fullsup"], root))
    >>> sorted(m), m["metrics"]["rethinking/nwc+pas/gt_known_loc"]
    (['curves', 'metrics', 'thresholds'], 75.0)
    >>> m["thresholds"]["nwc+pas"]                     # chosen on train-fullsup
    {'theta': 0.39, 'percentile': 90.0, 'gt_known_loc': 100.0}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..data.metadata import Sample, read_dataset
from ..utils.errors import UsageError
from .calibration import DEFAULT_THETAS, calibrate
from .evaluation import evaluate
from .protocols import PAPER_VARIANTS, VARIANTS, Settings

#: The paper's Table 3 rows: (label, pool, inference variant).
TABLE3 = (
    ("baseline", "gap", "cam"),
    ("TAP", "tap", "cam"),
    ("NWC", "gap", "nwc"),
    ("PaS", "gap", "pas"),
    ("TAP + NWC", "tap", "nwc"),
    ("TAP + PaS", "tap", "pas"),
    ("NWC + PaS", "gap", "nwc+pas"),
    ("TAP + NWC + PaS", "tap", "nwc+pas"),
)
#: The metrics a summary table shows, and their headers.
COLUMNS = (
    ("rethinking/{v}/top1_cls", "Top-1 Cls"),
    ("rethinking/{v}/gt_known_loc", "GT-known Loc"),
    ("rethinking/{v}/top1_loc", "Top-1 Loc"),
    ("calibrated/{v}/gt_known_loc", "GT-known Loc, calibrated"),
    ("wsolevaluation/{v}/maxboxacc_v2", "MaxBoxAccV2"),
    ("wsolevaluation/{v}/pxap", "PxAP"),
)


@dataclass(frozen=True)
class Split:
    """A labelled split: its samples, the root their image paths are relative to, and the root of their mask paths.

    The mask root defaults to the image root.
    """

    samples: tuple[Sample, ...]
    images: str
    name: str = ""
    masks: str | None = None

    @classmethod
    def read(cls, metadata: str | Path, images: str | Path | None = None, masks: str | Path | None = None
             ) -> Split:
        """A wsolevaluation metadata folder (images relative to ``images``, default the folder)."""
        return cls(tuple(read_dataset(metadata)), str(images or metadata), str(metadata), str(masks) if masks else None)


def measure(model: nn.Module, test: Split, calibration: Split | None = None, batch_size: int = 32,
            curves: bool = True) -> dict[str, Any]:
    """Score ``model`` on ``test`` under every variant and protocol (see the module docs).

    Returns:
        ``{"metrics": {key: value}, "thresholds": {variant: {theta, percentile, gt_known_loc}},
        "curves": {variant: {"taus": [...], "boxacc50": [...]}}}``; thresholds only with a
        calibration split, curves (wsolevaluation's box accuracy at IoU 0.5 against tau) only where
        the test split has boxes.

    Raises:
        UsageError: a calibration split with a test split that has no boxes (masks only).
    """
    variants = PAPER_VARIANTS
    metrics: dict[str, float] = {}
    out: dict[str, Any] = {"metrics": metrics, "thresholds": {}, "curves": {}}
    has_boxes = any(s.boxes for s in test.samples)
    if calibration is not None and not has_boxes:
        raise UsageError(f"{test.name or 'the test split'} has no boxes: thresholds chosen on a calibration split "
                         "score boxes; pass calibration=None for masks-only splits")
    protocols = (("rethinking",) if has_boxes else ()) + ("wsolevaluation",)
    for protocol in protocols:
        res = evaluate(model, test.samples, test.images, Settings(protocol, variants), masks=test.masks,
                       batch_size=batch_size, progress=False)
        flatten(metrics, protocol, res.metrics)
        if protocol == "wsolevaluation" and curves:
            for variant, c in res.curves.items():
                if "maxboxacc" in c:
                    out["curves"][variant] = {"taus": [float(t) for t in c["taus"]],
                                              "boxacc50": [float(a) for a in c["maxboxacc"][50]]}
    if calibration is None:
        return out
    standards = {False: 100.0, True: Settings().percentile}  # the max, or PaS's percentile
    percentiles = tuple(standards.values())
    for nwc in (False, True):
        _, grid = calibrate(model, calibration.samples, calibration.images, nwc=nwc, percentiles=percentiles,
                            thetas=DEFAULT_THETAS, batch_size=batch_size, metadata=calibration.name, progress=False)
        names, theta = {}, {}
        for pas, percentile in standards.items():
            names[pas] = next(v for v in PAPER_VARIANTS if VARIANTS[v] == (nwc, "percentile" if pas else "max"))
            row = grid[percentiles.index(percentile)]
            j = int(row.argmax())
            theta[pas] = float(DEFAULT_THETAS[j])
            out["thresholds"][names[pas]] = {"theta": theta[pas], "percentile": percentile,
                                             "gt_known_loc": float(row[j])}
        # one pass scores both variants of this NWC setting, the chosen thetas standing in for the paper's
        chosen = Settings("rethinking", (names[False], names[True]), theta_max=theta[False], theta_pas=theta[True])
        res = evaluate(model, test.samples, test.images, chosen, batch_size=batch_size, progress=False)
        flatten(metrics, "calibrated", res.metrics)
    return out


def flatten(into: dict[str, float], prefix: str, rows: dict[str, dict[str, Any]]) -> None:
    """Add ``{variant: {metric: value}}`` to ``into`` as ``prefix/variant/metric`` (numbers only)."""
    for variant, row in rows.items():
        for metric, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                into[f"{prefix}/{variant}/{metric}"] = float(value)


def summarize(runs: Sequence[dict[str, float]]) -> dict[str, tuple[float, float, int]]:
    """``{key: (mean, sample standard deviation, n)}`` over runs (std is NaN for one run)."""
    keys = list(dict.fromkeys(k for r in runs for k in r))
    out = {}
    for key in keys:
        values = np.array([r[key] for r in runs if key in r], np.float64)
        std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        out[key] = (float(values.mean()), std, len(values))
    return out


def cell(stat: tuple[float, float, int] | None) -> str:
    """``mean ± std`` (or the mean alone for one run, ``-`` for nothing)."""
    if stat is None:
        return "-"
    mean, std, n = stat
    return f"{mean:.1f}" if n < 2 else f"{mean:.1f} ± {std:.1f}"


def table3_rows(gap: dict[str, tuple], tap: dict[str, tuple], columns: Sequence[tuple[str, str]] = COLUMNS
                ) -> list[list[str]]:
    """The paper's Table 3 layout for one training method, from the summaries of its GAP and TAP runs.

    A row per combination of fixes, a cell per column (``mean ± std``).
    """
    rows = []
    for label, pool, variant in TABLE3:
        summary = gap if pool == "gap" else tap
        rows.append([label] + [cell(summary.get(key.format(v=variant))) for key, _ in columns])
    return rows


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
