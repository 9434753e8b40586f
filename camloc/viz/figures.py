"""Pictures of an evaluation: accuracy against threshold, the PxAP precision-recall curve, the rethinking metrics.

Each picture is a function returning a :class:`matplotlib.figure.Figure` (:func:`maxboxacc_figure`,
:func:`pxap_figure`, :func:`rethinking_figure` for the rethinking protocol's metrics); :func:`evaluation_figures`
names them by file and :func:`save_plots` writes them. Every line has its own (colour, dash) pair and a marker,
legends sit outside the axes, and bar charts carry their values.

Example:
    >>> import tempfile, timm, camloc
    >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
    >>> root = tempfile.mkdtemp()
    >>> test = write_synthetic(root, SyntheticSpec(classes=2, size=32, train=1, train_fullsup=1, test=2))["test"]
    >>> model, settings = timm.create_model("resnet18", num_classes=2), camloc.Settings("wsolevaluation")
    >>> result = camloc.evaluate(model, camloc.read_dataset(test), root, settings, progress=False)
    >>> from camloc.viz.figures import save_plots
    >>> [p.name for p in save_plots(result, tempfile.mkdtemp())]     # untrained: the pictures, not the numbers
    ['maxboxacc_v2.png', 'maxboxacc.png', 'pxap.png']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Colours that stay apart for colour-blind readers (Okabe-Ito); one marker and dash per line as well.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#7F7F7F"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
DASHES = ["-", "--", "-.", ":"]
#: Line styles in the order this module's figures give them: the three easiest to tell apart first.
LINE_DASHES = ["-", "--", ":", "-."]
#: The rethinking protocol's metrics, in the order drawn, with their axis names.
RETHINKING_METRICS = {"top1_cls": "Top-1 Cls", "gt_known_loc": "GT-known Loc", "top1_loc": "Top-1 Loc"}
#: Font size of legends and of the values written on bars (points).
SMALL = 8


def dash(k: int) -> str | tuple:
    """The ``k``-th line style: solid, dashed, dotted, dash-dot, then dash patterns of growing length.

    Example:
        >>> dash(1), dash(5)
        ('--', (0, (7, 2, 1, 2)))
    """
    if k < len(LINE_DASHES):
        return LINE_DASHES[k]
    return (0, (k + 2, 2, 1, 2))


def line_style(i: int, j: int = 0, per_i: int = 1) -> dict[str, Any]:
    """Colour, marker and dash of line ``j`` of group ``i`` (``per_i`` lines a group).

    The colour and marker follow the group (a variant), the dash the line within it (an IoU threshold);
    past 8 groups the colours repeat with other dashes, so no two lines share a (colour, dash) pair.

    Example:
        >>> line_style(1, 2, 3)["linestyle"]
        ':'
    """
    return {"color": COLOURS[i % len(COLOURS)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": dash(j + per_i * (i // len(COLOURS)))}


def new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot's registry (nothing to close), drawable by Agg.

    Writing a picture never switches a notebook's backend nor leaves a figure for Jupyter to show.

    Example:
        >>> new_figure(6.4, 4.8).get_size_inches().tolist()
        [6.4, 4.8]
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _title(result: Any) -> str:
    data = result.dataset
    return f"{data.get('model', '')} on {data.get('metadata', data.get('images', ''))}".strip()


def _legend_right(ax: Axes, handles: list | None = None, labels: list | None = None, **kw: Any) -> None:
    """A legend beside the axes, on the right, and a layout that keeps it inside the figure."""
    args = (handles, labels) if handles is not None else ()
    ax.legend(*args, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=SMALL,
              handlelength=4.0, **kw)
    ax.figure.tight_layout()


def _same_as(curves: dict[str, Any], name: str, key: str | tuple[str, ...]) -> str | None:
    """The first earlier variant whose ``key`` curve(s) equal ``name``'s, else None."""
    keys = (key,) if isinstance(key, str) else key

    def flat(v: str) -> list[np.ndarray]:
        out = []
        for k in keys:
            c = curves[v].get(k)
            out.extend(np.asarray(x, np.float64) for x in (c.values() if isinstance(c, dict) else [c]))
        return out

    mine = flat(name)
    for other in curves:
        if other == name:
            return None
        theirs = flat(other)
        if len(theirs) == len(mine) and all(a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
                                            for a, b in zip(mine, theirs, strict=True)):
            return other
    return None


def maxboxacc_figure(result: Any, version: int = 2) -> Figure | None:
    """Box accuracy against the threshold tau, one line per variant (and IoU threshold for V2).

    ``result`` is an :class:`~camloc.eval.evaluation.EvaluationResult` of the wsolevaluation protocol. MaxBoxAccV2
    (``version=2``): colour and marker per variant, dash per IoU threshold, each line's maximum in the legend under
    its variant's MaxBoxAccV2. MaxBoxAcc (``version=1``, IoU 0.5, largest contour): one line per variant with its
    MaxBoxAcc. Returns the figure, or None when the result has no such curves (a split with masks only).

    Example:
        >>> import tempfile, timm, camloc
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> root = tempfile.mkdtemp()
        >>> test = write_synthetic(root, SyntheticSpec(classes=2, size=32, train=1, train_fullsup=1, test=2))["test"]
        >>> model, settings = timm.create_model("resnet18", num_classes=2), camloc.Settings("wsolevaluation")
        >>> result = camloc.evaluate(model, camloc.read_dataset(test), root, settings, progress=False)
        >>> len(maxboxacc_figure(result, version=2).axes[0].get_lines())   # 4 variants x 3 IoU thresholds
        12
        >>> maxboxacc_figure(result, version=1).axes[0].get_legend().get_texts()[0].get_text()
        'cam: MaxBoxAcc ...'
    """
    from matplotlib.patches import Patch

    key = "maxboxacc_v2" if version == 2 else "maxboxacc"
    drawn = {name: c[key] for name, c in result.curves.items() if c.get(key)}
    if not drawn:
        return None
    metric = "MaxBoxAccV2" if version == 2 else "MaxBoxAcc"
    fig = new_figure(10.5 if version == 2 else 9.5, 5.4)
    ax = fig.add_subplot()
    handles, labels = [], []
    for i, (name, per_delta) in enumerate(drawn.items()):
        taus = np.asarray(result.curves[name]["taus"], np.float64)
        step = max(1, len(taus) // 7)
        value = result.metrics.get(name, {}).get(key)
        same = _same_as({n: result.curves[n] for n in drawn}, name, key)
        header = f"{name}: {metric} {value:.1f}" if value is not None else name
        if same:
            header += f" (same curves as {same})"
        if version == 2:
            handles.append(Patch(visible=False))
            labels.append(header)
        for j, (delta, acc) in enumerate(per_delta.items()):
            acc = np.asarray(acc, np.float64)
            offset = (i * len(per_delta) + j) * step // max(1, len(drawn) * len(per_delta))
            label = f"{name}, IoU {delta / 100:.1f} (max {np.nanmax(acc):.1f})"
            (line,) = ax.plot(taus, acc, label=label, linewidth=1.8, markersize=5, markevery=(offset, step),
                              **line_style(i, j if version == 2 else i % len(LINE_DASHES), len(per_delta)))
            handles.append(line)
            labels.append(f"IoU {delta / 100:.1f}: max {np.nanmax(acc):.1f}" if version == 2 else header)
    percentile = getattr(result.settings, "percentile", 90.0)
    has_pas = any("pas" in n or n == "calibrated" for n in drawn)
    pas = f"; of its {percentile:g}th percentile for PaS variants" if has_pas else ""
    ax.set_xlabel(f"tau (box threshold as a fraction of the map maximum{pas})")
    ax.set_ylabel("box accuracy (%), " + ("all contours" if version == 2 else "largest contour, IoU 0.5"))
    ax.set_ylim(-2, 102)
    ax.set_xlim(0, 1)
    ax.set_title(f"{metric}: box accuracy against threshold, {_title(result)}", fontsize=10)
    ax.grid(alpha=0.3)
    _legend_right(ax, handles, labels, title="variant: metric" if version == 2 else None, title_fontsize=SMALL)
    return fig


def pxap_figure(result: Any) -> Figure | None:
    """Pixel precision against recall, one curve per variant, its PxAP in the legend.

    Curves that coincide (PaS never changes a map, so ``pas`` draws ``cam``'s curve) are drawn with
    different dashes and offset markers, and their legend entry says which curve they repeat.

    Args:
        result: an :class:`~camloc.eval.evaluation.EvaluationResult` of a split with masks.

    Returns:
        The figure, or None when the result has no precision-recall curves.

    Example:
        >>> import tempfile, timm, camloc
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> root = tempfile.mkdtemp()
        >>> test = write_synthetic(root, SyntheticSpec(classes=2, size=32, train=1, train_fullsup=1, test=2))["test"]
        >>> model, settings = timm.create_model("resnet18", num_classes=2), camloc.Settings("wsolevaluation")
        >>> result = camloc.evaluate(model, camloc.read_dataset(test), root, settings, progress=False)
        >>> [t.get_text() for t in pxap_figure(result).axes[0].get_legend().get_texts()]
        ['cam (PxAP ...)', 'nwc (PxAP ...)', 'pas (PxAP ..., same curve as cam)',
         'nwc+pas (PxAP ..., same curve as nwc)']
    """
    drawn = {name: c for name, c in result.curves.items() if "precision" in c}
    if not drawn:
        return None
    fig = new_figure(9.0, 5.6)
    ax = fig.add_subplot()
    for i, (name, c) in enumerate(drawn.items()):
        precision = np.asarray(c["precision"], np.float64)
        recall = np.asarray(c["recall"], np.float64)
        keep = ~(np.isnan(precision) | np.isnan(recall))
        value = result.metrics.get(name, {}).get("pxap")
        same = _same_as(drawn, name, ("precision", "recall"))
        notes = ([f"PxAP {value:.1f}"] if value is not None else []) + ([f"same curve as {same}"] if same else [])
        label = f"{name} ({', '.join(notes)})" if notes else name
        ax.plot(recall[keep], precision[keep], label=label, linewidth=1.8, markersize=6,
                markevery=(0.025 * i, 0.14), fillstyle="none" if i % 2 else "full",
                **line_style(i, i % len(LINE_DASHES)))
    ax.set_xlabel("recall (fraction of object pixels above the threshold)")
    ax.set_ylabel("precision (fraction of those pixels on the object)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_title(f"PxAP: pixel precision-recall, {_title(result)}", fontsize=10)
    ax.grid(alpha=0.3)
    _legend_right(ax)
    return fig


def rethinking_figure(result: Any) -> Figure:
    """The rethinking protocol's metrics as grouped bars, one colour and hatch per variant.

    Each value is written on its bar (turned upright only where side by side they would touch).

    A metric no variant has (Top-1 without labels in the model's classes) is left out and named
    under the chart; one only some variants lack is an empty bar marked ``n/a``.

    Args:
        result: an :class:`~camloc.eval.evaluation.EvaluationResult` of the rethinking protocol.

    Example:
        >>> import tempfile, timm, camloc
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> root = tempfile.mkdtemp()
        >>> test = write_synthetic(root, SyntheticSpec(classes=2, size=32, train=1, train_fullsup=1, test=2))["test"]
        >>> model, settings = timm.create_model("resnet18", num_classes=2), camloc.Settings("rethinking")
        >>> result = camloc.evaluate(model, camloc.read_dataset(test), root, settings, progress=False)
        >>> ax = rethinking_figure(result).axes[0]
        >>> [t.get_text() for t in ax.get_xticklabels()], len(ax.texts)    # 4 variants x 3 metrics, a value each
        (['Top-1 Cls', 'GT-known Loc', 'Top-1 Loc'], 12)
    """
    variants = list(result.metrics)
    keys = [k for k in RETHINKING_METRICS if any(row.get(k) is not None for row in result.metrics.values())]
    missing = [RETHINKING_METRICS[k] for k in RETHINKING_METRICS if k not in keys]
    keys = keys or ["gt_known_loc"]
    fig = new_figure(max(7.0, 2.6 + 0.45 * len(keys) * len(variants)), 5.0)
    ax = fig.add_subplot()
    width = 0.8 / len(variants)
    tallest, labels = 0.0, []
    for i, name in enumerate(variants):
        row = result.metrics[name]
        values = [row.get(k) for k in keys]
        heights = [v if v is not None else 0.0 for v in values]
        tallest = max([tallest, *heights])
        bars = ax.bar(np.arange(len(keys)) + (i - (len(variants) - 1) / 2) * width, heights, width * 0.92,
                      label=name, color=line_style(i)["color"], edgecolor="white", linewidth=0.5,
                      hatch=["", "//", "..", "xx", "\\\\", "++", "oo", "--"][i % 8])
        labels += ax.bar_label(bars, labels=[f"{v:.1f}" if v is not None else "n/a" for v in values], padding=2,
                               fontsize=SMALL)
    ax.set_xticks(np.arange(len(keys)), [RETHINKING_METRICS[k] for k in keys])
    ax.set_ylabel("%")
    ax.set_title(f"rethinking protocol: {_title(result)}", fontsize=10)
    if missing:
        ax.set_xlabel(f"not measured: {', '.join(missing)} (they need ground-truth labels among the model's classes, "
                      "cam-class gt)", fontsize=SMALL)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_ylim(0, max(100.0, tallest) * 1.1)
    _legend_right(ax, title="variant", title_fontsize=SMALL)
    if _any_overlap(fig, labels):
        for text in labels:
            text.set_rotation(90)
        ax.set_ylim(0, max(100.0, tallest) * 1.2)
        fig.tight_layout()
    return fig


def _any_overlap(fig: Figure, texts: Sequence[Any]) -> bool:
    """Whether any two of ``texts`` touch once drawn."""
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def evaluation_figures(result: Any) -> dict[str, Figure]:
    """The figures of an evaluation by file name, in drawing order.

    wsolevaluation: ``maxboxacc_v2.png`` (MaxBoxAccV2, all contours, IoU 0.3 / 0.5 / 0.7),
    ``maxboxacc.png`` (MaxBoxAcc, largest contour, IoU 0.5) and ``pxap.png`` (precision-recall),
    each when the result has those curves; rethinking: ``rethinking.png`` (bar chart).

    Example:
        >>> import tempfile, timm, camloc
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> root = tempfile.mkdtemp()
        >>> test = write_synthetic(root, SyntheticSpec(classes=2, size=32, train=1, train_fullsup=1, test=2))["test"]
        >>> model, settings = timm.create_model("resnet18", num_classes=2), camloc.Settings("wsolevaluation")
        >>> result = camloc.evaluate(model, camloc.read_dataset(test), root, settings, progress=False)
        >>> sorted(evaluation_figures(result))
        ['maxboxacc.png', 'maxboxacc_v2.png', 'pxap.png']
    """
    if result.settings.protocol == "rethinking":
        return {"rethinking.png": rethinking_figure(result)}
    found = {"maxboxacc_v2.png": maxboxacc_figure(result, 2), "maxboxacc.png": maxboxacc_figure(result, 1),
             "pxap.png": pxap_figure(result)}
    return {name: fig for name, fig in found.items() if fig is not None}


def save_plots(result: Any, folder: str | os.PathLike) -> list[Path]:
    """Write the PNGs of :func:`evaluation_figures` for an :class:`~camloc.eval.evaluation.EvaluationResult`.

    Returns their paths (``folder`` is created).

    Example:
        >>> import tempfile, timm, camloc
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> root = tempfile.mkdtemp()
        >>> test = write_synthetic(root, SyntheticSpec(classes=2, size=32, train=1, train_fullsup=1, test=2))["test"]
        >>> model, settings = timm.create_model("resnet18", num_classes=2), camloc.Settings("rethinking")
        >>> result = camloc.evaluate(model, camloc.read_dataset(test), root, settings, progress=False)
        >>> [p.name for p in save_plots(result, tempfile.mkdtemp())]
        ['rethinking.png']
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    return [save_figure(fig, out / name) for name, fig in evaluation_figures(result).items()]


def save_threshold_comparison(
    panels: dict[str, dict[str, Sequence[np.ndarray]]],
    taus: np.ndarray,
    path: str | os.PathLike,
    ylabel: str = "box accuracy at IoU 0.5 (%)",
    title: str = "",
    xlabels: dict[str, str] | None = None,
) -> Path:
    """Accuracy against threshold for several models side by side: one panel per variant, one line per model.

    Each line is the mean over the model's runs, with a shaded band of one standard deviation where it has several.

    Args:
        panels: ``{panel title: {line label: [curve per run]}}``, each curve as long as ``taus``.
        taus: the thresholds (x axis).
        path: the PNG to write (atomically).
        ylabel: the y axis label.
        title: the figure's title.
        xlabels: the x axis label per panel (default ``tau``).

    Example:
        >>> import tempfile, numpy as np
        >>> taus = np.arange(0, 1, 0.01)
        >>> gap, tap = [1 - taus, 0.9 - taus], [np.sqrt(taus)]    # two runs of one model, one of the other
        >>> save_threshold_comparison({"cam": {"GAP": gap, "TAP": tap}}, taus, f"{tempfile.mkdtemp()}/curves.png")
        PosixPath('.../curves.png')
    """
    from ..utils.errors import UsageError

    taus = np.asarray(taus, np.float64)
    if not panels or not all(panels.values()):
        raise UsageError("nothing to draw: give at least one panel, each with at least one line")
    for panel, lines in panels.items():
        for label, runs in lines.items():
            if not len(runs) or any(len(c) != len(taus) for c in runs):
                raise UsageError(f"{panel} / {label}: give one or more curves of {len(taus)} values (one per tau)")
    fig = new_figure(5.2 * len(panels), 4.4)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)
    for ax, (panel, lines) in zip(axes[0], panels.items(), strict=True):
        for i, (label, runs) in enumerate(lines.items()):
            curves = np.asarray(runs, np.float64).reshape(len(runs), -1)
            mean = curves.mean(0)
            colour = COLOURS[i % len(COLOURS)]
            ax.plot(taus, mean, color=colour, linestyle=DASHES[(i // 2) % len(DASHES)],
                    marker=MARKERS[i % len(MARKERS)], markevery=max(1, len(taus) // 8), markersize=5,
                    label=f"{label} (max {mean.max():.1f})")
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


def area_weight_figure(diagnosis: Any) -> Figure:
    """The paper's Fig. 2 from a :class:`~camloc.eval.diagnosis.Diagnosis`.

    Each positive-weight channel of the first images is a point (active area, class weight), with the channels'
    median weight per area decile.

    Example:
        >>> import tempfile, timm, camloc
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> root = tempfile.mkdtemp()
        >>> test = write_synthetic(root, SyntheticSpec(classes=2, size=32, train=1, train_fullsup=1, test=2))["test"]
        >>> model = timm.create_model("resnet18", num_classes=2)
        >>> fig = area_weight_figure(camloc.diagnose(model, camloc.read_dataset(test), root, progress=False))
        >>> fig.axes[0].get_title()
        'ResNet: mean rank correlation ... over 2 images'
        >>> fig.savefig(f"{root}/area_weight.png")
    """
    area, weight = (np.asarray(v, np.float64) for v in diagnosis.points)
    s = diagnosis.summary
    fig = new_figure(6.4, 4.6)
    ax = fig.subplots()
    ax.scatter(area, weight, s=4, alpha=0.25, color=COLOURS[0], linewidths=0, label="a channel on an image")
    if area.size:
        edges = np.unique(np.quantile(area, np.linspace(0, 1, 11)))
        if edges.size > 1:
            which = np.clip(np.searchsorted(edges, area, side="right") - 1, 0, edges.size - 2)
            centres = [area[which == i].mean() for i in range(edges.size - 1) if (which == i).any()]
            medians = [np.median(weight[which == i]) for i in range(edges.size - 1) if (which == i).any()]
            ax.plot(centres, medians, color=COLOURS[1], marker=MARKERS[1], linestyle="--", linewidth=2,
                    label="median weight per area decile")
    rho = s.get("area_weight_rho")
    ax.set_title(f"{s.get('model', '')}: mean rank correlation {'-' if rho is None else f'{rho:+.3f}'} "
                 f"over {s.get('images', 0)} images", fontsize=10)
    ax.set_xlabel(f"active area (fraction of the map above {s.get('active_fraction', 0.1):g} x the channel's max)")
    ax.set_ylabel("class weight")
    ax.grid(alpha=0.3)
    _legend_right(ax, markerscale=3)
    return fig


def ioa_figure(diagnosis: Any) -> Figure:
    """The paper's Fig. 3b from a :class:`~camloc.eval.diagnosis.Diagnosis`: histograms over images.

    They show the IoA of the positive-weight map and of the negative-weight map with the ground truth, both readings
    (``|fg & GT| / |GT|`` left, ``|fg & GT| / |fg|`` right), each legend with its mean.
    """
    fig = new_figure(10.0, 4.2)
    axes = fig.subplots(1, 2, sharey=True)
    bins = np.linspace(0.0, 1.0, 21)
    for ax, suffix, label in ((axes[0], "", "|fg & GT| / |GT|"), (axes[1], "_by_foreground", "|fg & GT| / |fg|")):
        for i, sign in enumerate(("positive", "negative")):
            values = np.asarray([r[f"ioa_{sign}{suffix}"] for r in diagnosis.images], np.float64)
            values = values[~np.isnan(values)]
            mean = f"{values.mean():.3f}" if values.size else "-"
            ax.hist(values, bins=bins, histtype="step", linewidth=2, color=COLOURS[i], linestyle=LINE_DASHES[i],
                    label=f"{sign}-weight channels (mean {mean})")
        ax.set_xlabel(f"IoA = {label}, foreground at {diagnosis.summary.get('ioa_threshold', '0.2 x max')}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=SMALL, loc="upper left")
    axes[0].set_ylabel("images")
    fig.suptitle(f"{diagnosis.summary.get('model', '')}: where the positive and negative channels fire", fontsize=11)
    return fig


def save_diagnosis_plots(diagnosis: Any, folder: str | os.PathLike) -> list[Path]:
    """``area_weight.png`` (Fig. 2) and ``ioa.png`` (Fig. 3b) of a diagnosis under ``folder``; their paths."""
    out = Path(folder)
    return [save_figure(area_weight_figure(diagnosis), out / "area_weight.png"),
            save_figure(ioa_figure(diagnosis), out / "ioa.png")]


def save_figure(fig, path: Path) -> Path:
    """Lay out ``fig``, write it as PNG atomically (parents created), close it; returns ``path``."""
    import matplotlib.pyplot as plt

    from ..utils.atomic import atomic_write

    try:
        fig.tight_layout()
        atomic_write(path, lambda fh: fig.savefig(fh, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return path
