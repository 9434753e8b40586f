"""The picture of a run's pseudo-box quality: precision and recall against the score threshold, and their curve.

Left, precision and recall of the boxes kept at each score threshold; right, precision against recall, with
each matching's best F1 marked and labelled (:mod:`camloc.eval.pseudoboxes`).

Example:
    >>> import tempfile
    >>> from camloc.eval.pseudoboxes import Detections, PseudoBoxQuality
    >>> d = Detections.match([("a.jpg", 0.9, 0, (0, 0, 10, 10)), ("a.jpg", 0.4, 0, (50, 50, 60, 60))],
    ...                      {"a.jpg": ((0, 0, 10, 10),)})
    >>> path = save_quality_figure(PseudoBoxQuality("META", 1, [], d, d), tempfile.mkdtemp())
    >>> path.name
    'pseudo_boxes.png'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .figures import SMALL, line_style, new_figure, save_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: The picture's file in a run's folder.
FILE = "pseudo_boxes.png"


def quality_figure(quality: Any) -> Figure:
    """Precision and recall by score threshold (left) and precision against recall (right), per matching.

    ``quality``: a :class:`camloc.eval.pseudoboxes.PseudoBoxQuality`.
    """
    fig = new_figure(11.0, 4.4)
    by_score, curve = fig.subplots(1, 2)
    for i, (name, d) in enumerate((("any class", quality.any_class), ("own class", quality.own_class))):
        scores, precision, recall = d.curve()
        if not len(scores):
            continue
        style = {**line_style(i), "markevery": max(len(scores) // 8, 1)}  # about 8 markers a line
        by_score.plot(scores, 100 * precision, label=f"precision, {name}", **style)
        by_score.plot(scores, 100 * recall, label=f"recall, {name}", **{**style, "linestyle": ":", "marker": "x"})
        curve.plot(100 * recall, 100 * precision, label=f"{name}: AP50 {100 * d.ap50():.1f}", **style)
        t, p, r, f1 = d.best_f1()
        curve.plot([100 * r], [100 * p], marker="*", markersize=14, color=style["color"], linestyle="none")
        curve.annotate(f"best F1 {f1:.2f}\nscore >= {t:.4g}", (100 * r, 100 * p), textcoords="offset points",
                       xytext=(10, 10 - 34 * i), fontsize=SMALL, color=style["color"],
                       bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": style["color"], "alpha": 0.9})
    by_score.set(xlabel="score threshold (boxes of at least this score kept)", ylabel="%", ylim=(0, 102),
                 title="precision and recall by score threshold")
    curve.set(xlabel="recall (%)", ylabel="precision (%)", xlim=(0, 102), ylim=(0, 102),
              title=f"IoU >= 0.5, {quality.images} images, {quality.any_class.objects} true boxes")
    for ax in (by_score, curve):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=SMALL, loc="best")
    return fig


def save_quality_figure(quality: Any, folder: str | Path) -> Path:
    """Write :func:`quality_figure` as :data:`FILE` in ``folder``; returns its path."""
    return save_figure(quality_figure(quality), Path(folder) / FILE)
