"""Pictures of a training run: the loss and training accuracy, and the localization metrics, per epoch."""

from __future__ import annotations

from pathlib import Path

from .figures import COLOURS, MARKERS, new_figure
from .figures import save_figure as _save


def save_training_plots(history: list[dict], folder: Path) -> list[Path]:
    """Draw a run's per-epoch ``history`` as PNGs under ``folder``; returns their paths.

    ``training.png``: loss (left axis) and training Top-1 (right) per epoch; ``localization.png``:
    every measured ``split/protocol/variant/metric`` per epoch (when any was measured).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from camloc.viz.training import save_training_plots
        >>> history = [{"epoch": 1, "loss": 0.69, "train_top1": 50.0, "val/wsolevaluation/cam/maxboxacc_v2": 41.2},
        ...            {"epoch": 2, "loss": 0.52, "train_top1": 75.0, "val/wsolevaluation/cam/maxboxacc_v2": 48.9}]
        >>> [p.name for p in save_training_plots(history, Path(tempfile.mkdtemp()))]
        ['training.png', 'localization.png']
        >>> no_metrics = [{"epoch": 1, "loss": 0.69, "train_top1": 50.0}]   # no split was evaluated
        >>> [p.name for p in save_training_plots(no_metrics, Path(tempfile.mkdtemp()))]
        ['training.png']
    """
    written = []
    epochs = [h["epoch"] for h in history]
    fig = new_figure(7, 4.2)
    ax = fig.subplots()
    ax.plot(epochs, [h["loss"] for h in history], color=COLOURS[0], marker=MARKERS[0], label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss", color=COLOURS[0])
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.plot(epochs, [h["train_top1"] for h in history], color=COLOURS[1], marker=MARKERS[1], linestyle="--",
               label="training Top-1 (%)")
    right.set_ylabel("training Top-1 (%)", color=COLOURS[1])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title("training loss (solid, left axis) and training Top-1 (dashed, right axis)", fontsize=10)
    written.append(_save(fig, folder / "training.png"))
    keys = [k for k in dict.fromkeys(k for h in history for k in h) if _plotted(k)]
    if keys:
        fig = new_figure(9, 4.8)
        ax = fig.subplots()
        metrics = list(dict.fromkeys(k.split("/", 2)[2].replace("/", " ") for k in keys))
        for key in keys:
            split, protocol, variant, metric = key.split("/")
            points = [(h["epoch"], h[key]) for h in history if key in h]
            style = _series_style(metrics.index(f"{variant} {metric}"))
            ax.plot([p[0] for p in points], [p[1] for p in points], **style,
                    linestyle="-" if split == "val" else "--", label=f"{split}: {variant} {metric}")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel("%")
        ax.set_title("localization during training (solid: val split, dashed: test split)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        written.append(_save(fig, folder / "localization.png"))
    return written


def _series_style(i: int) -> dict[str, str]:
    """Colour and marker of metric ``i``: past the 8 colours the marker shifts, so no two metrics share both.

    Example:
        >>> _series_style(0) == _series_style(8)
        False
    """
    return {"color": COLOURS[i % len(COLOURS)], "marker": MARKERS[(i + i // len(COLOURS)) % len(MARKERS)]}


def _plotted(key: str) -> bool:
    """Top-1 Cls once (rethinking, cam), GT-known and Top-1 Loc (rethinking), MaxBoxAccV2 and PxAP."""
    parts = key.split("/")
    if len(parts) != 4:
        return False
    _, protocol, variant, metric = parts
    if metric == "top1_cls":
        return protocol == "rethinking" and variant == "cam"
    if protocol == "rethinking":
        return metric in ("gt_known_loc", "top1_loc")
    return metric in ("maxboxacc_v2", "pxap")
