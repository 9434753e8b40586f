"""Pictures of results: the photo with the heat map where the network saw it, every box, label and score.

Example:
    >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
    >>> bgr = overlay("examples/images/cat.jpg", r)       # H x W x 3 uint8, OpenCV's BGR order
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .cam.boxes import minmax
from .data.imaging import Geometry, load_image


def overlay(image_path: str, result, alpha: float = 0.5) -> np.ndarray:
    """The photo with the heat map blended over it, every box drawn and the label written (BGR)."""
    import cv2

    photo = np.asarray(load_image(image_path))[:, :, ::-1].copy()
    h, w = photo.shape[:2]
    cam = minmax(result.cam[None].float())[0].numpy().astype(np.float32)
    g = result.geometry or Geometry.identity(w, h)
    cam = cv2.resize(cam, (g.input_width, g.input_height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    # the map covers the network input only: place it where that input came from in the photo
    to_photo = np.float32([[1 / g.sx, 0, g.left / g.sx], [0, 1 / g.sy, g.top / g.sy]])
    heat = cv2.applyColorMap(np.uint8(255 * cv2.warpAffine(cam, to_photo, (w, h), flags=cv2.INTER_LINEAR)),
                             cv2.COLORMAP_JET)
    covered = cv2.warpAffine(np.ones_like(cam), to_photo, (w, h), flags=cv2.INTER_NEAREST)[..., None] > 0
    out = np.where(covered, cv2.addWeighted(photo, 1 - alpha, heat, alpha, 0), photo)
    thick = max(2, round(min(h, w) / 200))
    for box in result.boxes:
        cv2.rectangle(out, (round(box[0]), round(box[1])), (round(box[2]) - 1, round(box[3]) - 1), (255, 255, 255), thick + 1)
        cv2.rectangle(out, (round(box[0]), round(box[1])), (round(box[2]) - 1, round(box[3]) - 1), (0, 200, 0), thick)
    text = f"{result.label} {result.score:.2f}"
    scale = max(0.5, min(h, w) / 500)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def save_overlay_grid(
    images: Sequence[str],
    columns: dict[str, Sequence],
    path: str | os.PathLike,
    truth: Optional[Sequence[Sequence[Sequence[float]]]] = None,
    title: str = "",
) -> Path:
    """The same images under several models or settings, side by side: one row per image, one column
    per setting, each cell the :func:`overlay` (heat map, predicted box in green, label and score),
    with the ground-truth boxes dashed in orange where ``truth`` gives them.

    Args:
        images: image paths (rows).
        columns: ``{column title: one Localization per image}``.
        path: the PNG to write (atomically).
        truth: per image, its ground-truth boxes ``(x0, y0, x1, y1)`` in original pixels.
        title: the figure's title.

    Example:
        >>> cols = {"CAM": camloc.boxes(gap, paths, nwc=False, standard="max"), "TAP + NWC + PaS": camloc.boxes(tap, paths)}
        >>> save_overlay_grid(paths, cols, "grid.png")
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from .errors import UsageError
    from .eval.plots import save_figure

    if not images or not columns:
        raise UsageError("nothing to draw: give at least one image and one column")
    for name, results in columns.items():
        if len(results) != len(images):
            raise UsageError(f"column {name!r} has {len(results)} results for {len(images)} images: give one per image")
    if truth is not None and len(truth) != len(images):
        raise UsageError(f"truth has {len(truth)} entries for {len(images)} images: give one per image")
    rows, cols = len(images), len(columns)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows + (0.5 if title else 0.2)), squeeze=False)
    try:
        for c, (name, results) in enumerate(columns.items()):
            for r, (image, result) in enumerate(zip(images, results, strict=True)):
                ax = axes[r][c]
                ax.imshow(overlay(image, result)[:, :, ::-1])
                for box in (truth[r] if truth is not None else ()):
                    ax.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False,
                                           edgecolor="#E69F00", linestyle="--", linewidth=1.8))
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(name, fontsize=9)
        fig.suptitle((title + "\n" if title else "") + "green: predicted box; dashed orange: ground truth", fontsize=9)
    except BaseException:
        plt.close(fig)  # a picture that cannot be drawn leaves no figure open
        raise
    return save_figure(fig, Path(path))
