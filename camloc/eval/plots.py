"""Pictures of an evaluation: accuracy against threshold, and the PxAP precision-recall curve."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

#: Colours that stay apart for colour-blind readers (Okabe-Ito); one marker and dash per line as well.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#7F7F7F"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
DASHES = ["-", "--", "-.", ":"]


def save_plots(result, folder: str | os.PathLike) -> list[Path]:
    """Write PNGs for an :class:`~camloc.eval.evaluate.EvaluationResult`; returns their paths.

    ``maxboxacc.png``: one line per variant and IoU threshold (wsolevaluation); ``pxap.png``: one
    precision-recall curve per variant (mask datasets). The rethinking protocol has one fixed
    threshold, so it draws a bar chart of its metrics instead.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    title = f"{result.dataset.get('model', '')} on {result.dataset.get('metadata', result.dataset.get('images', ''))}"
    if result.settings.protocol == "rethinking":
        fig, ax = plt.subplots(figsize=(7, 4))
        keys = ["top1_cls", "gt_known_loc", "top1_loc"]
        width = 0.8 / len(result.metrics)
        for i, (name, row) in enumerate(result.metrics.items()):
            vals = [row.get(k) if row.get(k) is not None else 0 for k in keys]
            ax.bar(np.arange(len(keys)) + i * width, vals, width, label=name)
        ax.set_xticks(np.arange(len(keys)) + width * (len(result.metrics) - 1) / 2, keys)
        ax.set_ylabel("%")
        ax.set_title(f"rethinking protocol: {title}", fontsize=9)
        ax.legend()
        written.append(save_figure(fig, out / "rethinking.png"))
        return written
    curves = result.curves
    if any("maxboxacc_v2" in c for c in curves.values()):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, c in curves.items():
            for delta, acc in c.get("maxboxacc_v2", {}).items():
                ax.plot(c["taus"], acc, label=f"{name}, IoU {delta / 100:.1f}")
        ax.set_xlabel("tau (threshold / max, or / percentile for PaS variants)")
        ax.set_ylabel("box accuracy (%), all contours")
        ax.set_title(f"MaxBoxAccV2 curves: {title}", fontsize=9)
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        written.append(save_figure(fig, out / "maxboxacc.png"))
    if any("precision" in c for c in curves.values()):
        fig, ax = plt.subplots(figsize=(5.5, 5))
        for name, c in curves.items():
            if "precision" in c:
                ax.plot(c["recall"], c["precision"], label=f"{name} (PxAP {result.metrics[name].get('pxap', 0):.1f})")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"PxAP: {title}", fontsize=9)
        ax.legend()
        ax.grid(alpha=0.3)
        written.append(save_figure(fig, out / "pxap.png"))
    return written


def save_threshold_comparison(
    panels: dict[str, dict[str, Sequence[np.ndarray]]],
    taus: np.ndarray,
    path: str | os.PathLike,
    ylabel: str = "box accuracy at IoU 0.5 (%)",
    title: str = "",
    xlabels: Optional[dict[str, str]] = None,
) -> Path:
    """Accuracy against threshold for several models side by side: one panel per variant, one line per
    model (the mean over its runs, a shaded band of one standard deviation where it has several).

    Args:
        panels: ``{panel title: {line label: [curve per run]}}``, each curve as long as ``taus``.
        taus: the thresholds (x axis).
        path: the PNG to write (atomically).
        ylabel: the y axis label.
        title: the figure's title.
        xlabels: the x axis label per panel (default ``tau``).

    Example:
        >>> save_threshold_comparison({"cam": {"GAP": [acc0, acc1], "TAP": [acc2]}}, taus, "curves.png")
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..errors import UsageError

    taus = np.asarray(taus, np.float64)
    if not panels or not all(panels.values()):
        raise UsageError("nothing to draw: give at least one panel, each with at least one line")
    for panel, lines in panels.items():
        for label, runs in lines.items():
            if not len(runs) or any(len(c) != len(taus) for c in runs):
                raise UsageError(f"{panel} / {label}: give one or more curves of {len(taus)} values (one per tau)")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False, sharey=True)
    for ax, (panel, lines) in zip(axes[0], panels.items(), strict=True):
        for i, (label, runs) in enumerate(lines.items()):
            curves = np.asarray(runs, np.float64).reshape(len(runs), -1)
            mean = curves.mean(0)
            colour = COLOURS[i % len(COLOURS)]
            ax.plot(taus, mean, color=colour, linestyle=DASHES[(i // 2) % len(DASHES)], marker=MARKERS[i % len(MARKERS)],
                    markevery=max(1, len(taus) // 8), markersize=5, label=f"{label} (max {mean.max():.1f})")
            if len(curves) > 1:
                std = curves.std(0, ddof=1)
                ax.fill_between(taus, mean - std, mean + std, color=colour, alpha=0.12, linewidth=0)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel((xlabels or {}).get(panel, "tau"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, Path(path))


def save_figure(fig, path: Path) -> Path:
    """Lay out ``fig``, write it as PNG atomically (parents created), close it; returns ``path``."""
    import matplotlib.pyplot as plt

    from ..atomic import atomic_write

    try:
        fig.tight_layout()
        atomic_write(path, lambda fh: fig.savefig(fh, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return path
