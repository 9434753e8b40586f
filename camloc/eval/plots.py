"""Pictures of an evaluation: accuracy against threshold, and the PxAP precision-recall curve."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


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
        written.append(_save(fig, out / "rethinking.png"))
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
        written.append(_save(fig, out / "maxboxacc.png"))
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
        written.append(_save(fig, out / "pxap.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from ..atomic import atomic_write

    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, dpi=110, format="png"))
    plt.close(fig)
    return path
