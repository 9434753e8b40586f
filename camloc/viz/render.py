"""Pictures of results: the photo with the heat map where the network saw it, every box, label and score.

Three ways to draw, one placement of the map on the photo (:func:`map_on_photo`) and one caption
(:func:`caption`):

* :func:`show` (``camloc.show``): a matplotlib figure of one result or a grid of several, for
  notebooks and scripts; ``Localization.show()`` and a result's own picture in Jupyter
  (``Localization._repr_png_``, made by :func:`png`) draw the same panel.
* :func:`overlay`: the picture as an OpenCV BGR array, as ``camloc localize --out`` writes it.
* :func:`save_overlay_grid`: the same images under several settings side by side, to a PNG file.

Example:
    >>> import camloc
    >>> from camloc.viz.render import overlay
    >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
    >>> fig = camloc.show(r)                              # a matplotlib Figure
    >>> len(fig.axes), fig.axes[0].get_title()
    (1, 'cat.jpg')
    >>> bgr = overlay("examples/images/cat.jpg", r)       # H x W x 3 uint8, OpenCV's BGR order
    >>> bgr.shape, bgr.dtype
    ((300, 451, 3), dtype('uint8'))
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cam.rules import unit_range
from ..data.imaging import Geometry, ImageInput, load_image
from ..utils.errors import UsageError
from .drawing import OUTSIDE_DIM, REGION_COLOUR, Style, dashed_frame, frame, label
from .jupyter import shown_figure_class
from .panels import Panel, check_alpha, layout, read_photos

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The box colour (RGB; the same in BGR) of every picture.
BOX_GREEN = (0, 200, 0)
#: The longest side, in pixels, of a photo as :func:`show` draws it (larger photos are reduced).
DRAWN_SIDE = 2048
#: Inches under each panel of :func:`show` for the legend of the region the model saw.
_LEGEND_ROOM = 0.25


def map_on_photo(result: Any, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The result's map placed on its photo, where the network input came from.

    The map (feature resolution) is min-max normalised, resized to the network input (bicubic,
    clipped to [0, 1]) and carried back through ``result.geometry`` (the resize and crop that made
    that input); without a geometry the input is the whole photo. Every picture camloc draws
    (:func:`overlay`, :func:`show`) places the map with this function.

    Args:
        result: a :class:`camloc.Localization` (its ``cam`` and ``geometry`` are used).
        width: the photo's width in pixels.
        height: the photo's height in pixels.

    Returns:
        ``(heat, covered)``: ``height x width`` float32 map values in [0, 1], and a bool mask of
        the pixels the network input covered (outside it ``heat`` is 0 and means nothing).

    Example:
        >>> import camloc
        >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
        >>> heat, covered = map_on_photo(r, r.width, r.height)
        >>> heat.shape == (r.height, r.width), bool(covered.all())   # the whole image, seen by default
        (True, True)
        >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg", resize="crop")[0]
        >>> bool(map_on_photo(r, r.width, r.height)[1].all())          # a center crop leaves the edges out
        False
    """
    import cv2

    cam = unit_range(result.cam).astype(np.float32)
    g = result.geometry or Geometry.identity(width, height)
    cam = cv2.resize(cam, (g.input_width, g.input_height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    # the map covers the network input only: place it where that input came from in the photo, pixel centre
    # to pixel centre (input pixel u spans u .. u + 1, photo pixel x spans x .. x + 1): a photo pixel is
    # covered when its centre lies in the region seen, so a squashed image is covered edge to edge
    to_photo = np.float32([[1 / g.sx, 0, (g.left + 0.5) / g.sx - 0.5], [0, 1 / g.sy, (g.top + 0.5) / g.sy - 0.5]])
    heat = cv2.warpAffine(cam, to_photo, (width, height), flags=cv2.INTER_LINEAR)
    covered = cv2.warpAffine(np.ones_like(cam), to_photo, (width, height), flags=cv2.INTER_NEAREST) > 0
    return heat, covered


def caption(result: Any) -> str:
    """The text written on a result's boxes: label, score and class index.

    Example:
        >>> import camloc
        >>> caption(camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0])
        'Egyptian cat 0.54 (class 285)'
    """
    text = f"{result.label} {result.score:.2f}"
    return text if result.label == f"class {result.class_index}" else f"{text} (class {result.class_index})"


def region_legend(mode: str) -> tuple[str, ...]:
    """What the dashed frame of the region seen is called on a picture, longest first (the first that fits is used).

    Example:
        >>> region_legend("crop")[0]
        'dashed: what the model saw (center crop)'
    """
    where = "center crop" if mode == "crop" else "the whole image"
    return (f"dashed: what the model saw ({where})", "dashed: what the model saw", "model saw", "seen")


def overlay(image_path: ImageInput, result: Any, alpha: float = 0.5) -> np.ndarray:
    """The photo with the heat map blended over it, the region seen, every box drawn and the caption written (BGR).

    The heat map covers the region of the photo the model saw (:attr:`camloc.Localization.region`);
    that region is framed in magenta dashes edged in black, and outside it (the part a center crop
    leaves out) the photo is darkened to :data:`~camloc.viz.drawing.OUTSIDE_DIM`. Each box is a green
    line with a white rim. In the top-left corner, on a black patch, the caption (label, score and
    class) and under it the frame's legend. Lines, rims and letters scale with the photo's shorter
    side (:class:`~camloc.viz.drawing.Style`), and a text too long for the photo is shortened to fit
    it.

    Args:
        image_path: the photo the result was computed from (a path, PIL image or array).
        result: a :class:`camloc.Localization`.
        alpha: the heat map's weight in the blend.

    Returns:
        ``H x W x 3`` uint8 in OpenCV's BGR order, ready for ``cv2.imwrite``.

    Example:
        >>> import tempfile, cv2, camloc
        >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
        >>> cv2.imwrite(f"{tempfile.mkdtemp()}/cat_overlay.png", overlay("examples/images/cat.jpg", r))
        True
    """
    import cv2

    photo = np.asarray(load_image(image_path))[:, :, ::-1].copy()
    h, w = photo.shape[:2]
    values, covered = map_on_photo(result, w, h)
    heat = cv2.applyColorMap(np.uint8(255 * values), cv2.COLORMAP_JET)
    outside = (photo * OUTSIDE_DIM + 0.5).astype(np.uint8)
    out = np.where(covered[..., None], cv2.addWeighted(photo, 1 - alpha, heat, alpha, 0), outside)
    style = Style.for_image(w, h)
    region, mode = seen_region(result)
    dashed_frame(out, region, style.line, REGION_COLOUR, dash=max(6, 4 * style.line), edge=style.rim, inside=True)
    for box in result.boxes:
        frame(out, box, style.line + 2 * style.rim, (255, 255, 255))
        frame(out, box, style.line, BOX_GREEN[::-1])
    text = caption(result)
    label(out, [((text, f"{result.label} {result.score:.2f}", result.label), (255, 255, 255)),
                (region_legend(mode), REGION_COLOUR)], style, scales=(1.0, 0.8), width=round(0.6 * w))
    return out


def show(results: Any = None, images: Any = None, *, columns: Mapping[str, Sequence[Any]] | None = None,
         ncols: int | None = None, alpha: float = 0.5, figsize: tuple[float, float] | None = None,
         title: str | None = None, ax: Axes | None = None) -> Figure:
    """Draw results with matplotlib: the photo, the heat map where the network saw it, every box and its caption.

    One :class:`camloc.Localization` gives one panel; a list of them gives a grid, ``ncols`` panels a
    row (default ``min(4, n)``), each panel titled with its image's file name. ``columns`` compares
    settings instead: ``{column title: results}``, one column per setting, one row per image.

    Every box of ``result.boxes`` (several with ``all_regions=True``) is a green line edged in black,
    which shows on dark and bright photos alike, with its :func:`caption` (label, score, class index)
    in white on a black patch. The heat map (JET: red high, blue low) covers the part of the photo
    the network saw (:func:`map_on_photo`), at opacity ``alpha``.

    The figure belongs to pyplot: a script shows it with ``plt.show()`` or saves it with
    ``fig.savefig(path)`` (and closes it with ``plt.close(fig)`` when drawing many). In Jupyter it
    shows once below the cell, whether it is the cell's value or assigned (``fig = camloc.show(rs)``).
    A list of results is a plain Python list, so ``camloc.show(results)`` is how to draw several;
    a single result also shows itself as a cell's value (``Localization._repr_png_``).

    Args:
        results: a Localization or a list of them (``camloc.boxes(...)``'s list).
        images: the photos for results of in-memory inputs (named ``<image N>`` or ``<tensor N>``):
            for a list of results a list of the same length (``None`` where the result's own file
            will do), for a single result one picture; each a path, PIL image, ``H x W x 3`` uint8
            array or uint8 tensor, of the size the result was computed at. Results of files need none.
        columns: ``{column title: results, one per image}``, to compare settings (instead of ``results``).
        ncols: panels per row for a list of results.
        alpha: the heat map's opacity, 0 (the photo alone) to 1.
        figsize: the figure's size in inches; default about 4 inches a panel (5 for a single one).
        title: a title over the whole figure.
        ax: draw a single result into these axes of your own figure (which is returned).

    Returns:
        The matplotlib Figure.

    Raises:
        UsageError: nothing to draw, a result of an in-memory input without its picture, a number of
            pictures other than the number of results, a picture of another size than its result's,
            or a bad ``alpha`` / ``ncols``.
        ImageError: a result's file cannot be read.

    Example:
        >>> import tempfile, PIL.Image, camloc
        >>> rs = camloc.boxes("efficientnet_lite0", ["examples/images/cat.jpg", "examples/images/coffee.jpg"])
        >>> fig = camloc.show(rs, ncols=2, title="efficientnet_lite0")
        >>> [ax.get_title() for ax in fig.axes]
        ['cat.jpg', 'coffee.jpg']
        >>> fig.savefig(f"{tempfile.mkdtemp()}/results.png")
        >>> pil = PIL.Image.open("examples/images/rocket.jpg")
        >>> camloc.show(camloc.boxes("efficientnet_lite0", pil)[0], images=pil).axes[0].get_title()  # in-memory input
        '<image 0>'
    """
    check_alpha(alpha)
    cells, nrows, ncols = layout(results, images, columns, ncols)
    photos = read_photos(cells)  # every picture is read and checked before a figure exists
    if ax is not None:
        return _draw_into_axes(ax, cells, photos, alpha, title)
    return _pyplot_figure(cells, photos, nrows, ncols, alpha, figsize, title)


def _draw_into_axes(ax: Axes, cells: list[Panel], photos: list[np.ndarray], alpha: float, title: str | None
                    ) -> Figure:
    """:func:`show` into the caller's axes: one result only; the title goes over the panel's own."""
    if len(cells) != 1:
        raise UsageError(f"ax= takes one result, got {len(cells)}: leave ax out to draw a grid")
    fig = _root_figure(ax)
    _draw_panel(ax, cells[0][0], photos[0], alpha, cells[0][2])
    if title:
        ax.set_title(title + "\n" + ax.get_title(), fontsize=ax.title.get_fontsize())
    return fig


def _pyplot_figure(cells: list[Panel], photos: list[np.ndarray], nrows: int, ncols: int, alpha: float,
                   figsize: tuple[float, float] | None, title: str | None) -> Figure:
    """:func:`show`'s own pyplot figure of the grid; closed again when a picture cannot be drawn."""
    import matplotlib.pyplot as plt

    fig = plt.figure(FigureClass=shown_figure_class(), figsize=figsize or _figsize(photos, nrows, ncols, title),
                     layout="constrained")
    try:
        _draw(fig, cells, photos, nrows, ncols, alpha, title)
    except BaseException:
        plt.close(fig)  # a picture that cannot be drawn leaves no figure open
        raise
    return fig


def png(result: Any, image: Any = None, *, alpha: float = 0.5, width: float = 5.0, dpi: int = 100) -> bytes:
    """One result's picture (as :func:`show` draws it) as PNG bytes, without pyplot.

    The figure is a bare ``matplotlib.figure.Figure`` on an Agg canvas: nothing is registered with
    pyplot, so no window opens and no figure is left open. ``Localization._repr_png_`` uses it.

    Args:
        result: a :class:`camloc.Localization`.
        image: its picture, for a result of an in-memory input (see :func:`show`).
        alpha: the heat map's opacity.
        width: the picture's width in inches; its height follows the photo's aspect ratio.
        dpi: pixels per inch (the PNG is ``width * dpi`` pixels wide).

    Example:
        >>> import io, PIL.Image, camloc
        >>> r = camloc.boxes("efficientnet_lite0", "examples/images/cat.jpg")[0]
        >>> PIL.Image.open(io.BytesIO(png(r))).size      # 5 inches at 100 dpi, as tall as the photo needs
        (500, 397)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_alpha(alpha)
    cells, _, _ = layout(result, image, None, None)
    photos = read_photos(cells)
    fig = Figure(figsize=_figsize(photos, 1, 1, None, panel=width), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    _draw(fig, cells, photos, 1, 1, alpha, None)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _figsize(photos: Sequence[np.ndarray], nrows: int, ncols: int, title: str | None,
             panel: float | None = None) -> tuple[float, float]:
    """About ``panel`` inches a panel (4 in a grid, 5 alone), as tall as the tallest photo needs."""
    panel = panel or (5.0 if nrows * ncols == 1 else 4.0)
    aspect = min(max(max(p.shape[0] / p.shape[1] for p in photos), 0.3), 3.0)
    return panel * ncols, nrows * (panel * aspect + 0.4 + _LEGEND_ROOM) + (0.4 if title else 0.0)


def _root_figure(ax: Axes) -> Figure:
    try:
        return ax.get_figure(root=True)
    except TypeError:  # matplotlib before 3.10: no subfigures to see through
        return ax.get_figure()


def _draw(fig: Figure, cells: list, photos: list[np.ndarray], nrows: int, ncols: int, alpha: float,
          title: str | None) -> None:
    for k, ((result, _, header), photo) in enumerate(zip(cells, photos, strict=True)):
        _draw_panel(fig.add_subplot(nrows, ncols, k + 1), result, photo, alpha, header)
    if title:
        fig.suptitle(title, fontsize=12)


def _draw_panel(ax: Axes, result: Any, photo: np.ndarray, alpha: float, header: str | None = None) -> None:
    """One result in ``ax``: photo, heat map, the region seen, every box with its caption, the file name as title.

    Axes coordinates are the photo's pixel edges (``extent``), so a box is drawn at exactly its
    ``(x0, y0, x1, y1)``. A photo over :data:`DRAWN_SIDE` pixels a side is drawn reduced (with its
    map), in the same coordinates: a panel is a few hundred pixels wide.
    """
    import cv2
    from matplotlib import colormaps, patheffects
    from matplotlib.patches import Rectangle

    h, w = photo.shape[:2]
    pos, fig = ax.get_position(), _root_figure(ax)
    width_in, height_in = pos.width * fig.get_figwidth(), pos.height * fig.get_figheight()
    font = float(np.clip(10.0 * width_in / 4.0, 8.0, 12.0))
    per_px = min(width_in * 72 / w, height_in * 72 / h)  # points per photo pixel, the photo fitted to the axes
    values, covered = map_on_photo(result, w, h)
    if max(w, h) > DRAWN_SIDE:
        size = (max(1, round(w * DRAWN_SIDE / max(w, h))), max(1, round(h * DRAWN_SIDE / max(w, h))))
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        values = cv2.resize(values, size, interpolation=cv2.INTER_AREA)
        covered = cv2.resize(covered.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    extent = (0, w, h, 0)
    ax.imshow(photo, extent=extent)
    heat = colormaps["jet"](values, bytes=True)
    heat[~covered] = 0  # outside the region seen: black, darkening the photo to OUTSIDE_DIM
    heat[..., 3] = np.where(covered, round(255 * alpha), round(255 * (1 - OUTSIDE_DIM)))
    ax.imshow(heat, extent=extent)
    _draw_region(ax, result, w, h, font)
    text = caption(result)
    green = tuple(c / 255 for c in BOX_GREEN)
    taken: list[tuple[float, float, float, float]] = []
    for box in result.boxes:
        x0, y0, x1, y1 = box
        # clip_on=False: a box on the photo's edge shows its whole line, not half of it
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=green, linewidth=2.0, clip_on=False,
                               path_effects=[patheffects.withStroke(linewidth=4.5, foreground="black")]))
        _caption(ax, text, box, font, per_px, w, h, taken)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_axis_off()
    name = os.path.basename(os.fspath(result.image)) or str(result.image)
    ax.set_title(f"{header}\n{name}" if header else name, fontsize=font + 1)


def _draw_region(ax: Axes, result: Any, width: int, height: int, font: float) -> None:
    """The region the model saw as a dashed magenta rectangle (``gid="region"``) and its legend under the photo."""
    from matplotlib import patheffects
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    (x0, y0, x1, y1), mode = seen_region(result)
    colour, dashes = tuple(c / 255 for c in REGION_COLOUR), (0, (4.0, 3.0))
    edge = [patheffects.withStroke(linewidth=3.5, foreground="black")]
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.5, linestyle=dashes,
                           clip_on=False, gid="region", path_effects=edge))
    sample = Line2D([], [], color=colour, linewidth=1.5, linestyle=dashes, path_effects=edge)
    words = region_legend(mode)[0].split(": ", 1)[1]
    ax.legend([sample], [words + ("; outside it dimmed" if mode == "crop" else "")],
              loc="upper left", bbox_to_anchor=(0.0, 0.0), frameon=False, fontsize=font - 1, borderaxespad=0.2,
              handlelength=2.4)


def seen_region(result: Any) -> tuple[tuple[float, float, float, float], str]:
    """``(region, mode)``: the part of the photo the model saw (:attr:`camloc.Localization.region`) and how.

    A result without them (one built by hand) counts as seen whole.
    """
    if hasattr(result, "region"):
        return tuple(result.region), result.region_mode
    return (0.0, 0.0, float(result.width), float(result.height)), "full"


#: points between a box's line and its caption's text
_GAP = 3.0


def _caption(ax: Axes, text: str, box: Sequence[float], font: float, per_px: float, width: int, height: int,
             taken: list[tuple[float, float, float, float]]) -> None:
    """Write ``text`` at a box's top-left corner, white on a black patch, clear of the captions in ``taken``.

    The first spot that lies on the photo and overlaps no earlier caption: on the box's top edge,
    inside the box below it, under the bottom edge, inside above it (the first spot on the photo
    if all overlap). Sizes are measured in points and turned into photo pixels with ``per_px``.
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    text_w, text_h, _ = text_to_path.get_text_width_height_descent(text, FontProperties(size=font), ismath=False)
    pad = 0.25 * font  # the patch's padding (boxstyle pad is a fraction of the font size)
    tw, th, gap = (text_w + 2 * pad) / per_px, (max(text_h, 1.2 * font) + 2 * pad) / per_px, _GAP / per_px
    x0, y0, x1, y1 = box
    x = max(0.0, min(float(x0), width - tw))
    spots = [  # (where the patch goes, in photo pixels; anchor y; vertical alignment; offset in points)
        ((x, y0 - gap - th, x + tw, y0 - gap), y0, "bottom", (0.0, _GAP)),
        ((x + gap, y0 + gap, x + gap + tw, y0 + gap + th), y0, "top", (_GAP, -_GAP)),
        ((x, y1 + gap, x + tw, y1 + gap + th), y1, "top", (0.0, -_GAP)),
        ((x + gap, y1 - gap - th, x + gap + tw, y1 - gap), y1, "bottom", (_GAP, _GAP)),
    ]
    on_photo = [s for s in spots if s[0][1] >= -0.5 and s[0][3] <= height + 0.5] or spots[1:2]
    free = [s for s in on_photo if not any(_overlap(s[0], t) for t in taken)]
    rect, anchor, va, offset = (free or on_photo)[0]
    taken.append(rect)
    ax.annotate(text, (x, anchor), xytext=offset, textcoords="offset points", ha="left", va=va, fontsize=font,
                color="white", annotation_clip=False,
                bbox=dict(boxstyle=f"square,pad={pad / font}", facecolor="black", edgecolor="none", alpha=0.8))


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def save_overlay_grid(
    images: Sequence[str],
    columns: dict[str, Sequence],
    path: str | os.PathLike,
    truth: Sequence[Sequence[Sequence[float]]] | None = None,
    title: str = "",
) -> Path:
    """The same images under several models or settings, side by side: one row per image, one column per setting.

    Each cell is the :func:`overlay` (heat map, predicted box in green, label and score), with the ground-truth boxes
    dashed in orange where ``truth`` gives them.

    Args:
        images: image paths (rows).
        columns: ``{column title: one Localization per image}``.
        path: the PNG to write (atomically).
        truth: per image, its ground-truth boxes ``(x0, y0, x1, y1)`` in original pixels.
        title: the figure's title.

    Example:
        >>> import tempfile, camloc
        >>> paths = ["examples/images/cat.jpg", "examples/images/coffee.jpg"]
        >>> cols = {"CAM": camloc.boxes("efficientnet_lite0", paths, nwc=False, standard="max"),
        ...         "NWC + PaS": camloc.boxes("efficientnet_lite0", paths)}   # or two models: GAP and TAP
        >>> save_overlay_grid(paths, cols, f"{tempfile.mkdtemp()}/grid.png")
        PosixPath('.../grid.png')
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from .figures import save_figure

    if not images or not columns:
        raise UsageError("nothing to draw: give at least one image and one column")
    for name, results in columns.items():
        if len(results) != len(images):
            raise UsageError(f"column {name!r} has {len(results)} results for {len(images)} images: give one per image")
    if truth is not None and len(truth) != len(images):
        raise UsageError(f"truth has {len(truth)} entries for {len(images)} images: give one per image")
    rows, cols = len(images), len(columns)
    # a bare figure on an Agg canvas: pyplot's backend (a notebook's inline one) is left as it is
    fig = Figure(figsize=(2.6 * cols, 2.6 * rows + (0.5 if title else 0.2)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
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
    fig.suptitle((title + "\n" if title else "") + "green: predicted box; dashed orange: ground truth; "
                 "dashed magenta: what the model saw", fontsize=9)
    return save_figure(fig, Path(path))
