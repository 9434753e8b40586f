"""How camloc draws on OpenCV pictures: lines and fonts that scale with the image, labels that fit it.

:class:`Style` sizes every line and letter from the picture's shorter side (with a minimum), so an
overlay reads the same on a 64 px thumbnail-sized photo and on a 2000 px one. :func:`frame` draws a
rectangle's line exactly ``width`` pixels wide, :func:`dashed_frame` a dashed one (the region the model
saw, the ground truth), and :func:`label` writes lines of text on a black patch in the top-left
corner, each line the first of its variants (longest first) that fits, at a smaller font and cut
short only where none does.

Example:
    >>> import numpy as np
    >>> Style.for_image(64, 64), Style.for_image(2000, 1500).line
    (Style(line=2, rim=1, font=0.4, pad=2), 8)
    >>> img = np.zeros((64, 64, 3), np.uint8)
    >>> frame(img, (10, 10, 50, 50), 2, (0, 200, 0))
    >>> [int(v) for v in img[30, 7:13, 1]]                # the left edge: 2 px of green around x = 10
    [0, 0, 200, 200, 0, 0]
    >>> label(img, [(["a caption far too long for 64 px", "caption"], (255, 255, 255))], Style.for_image(64, 64))
    (46, 18)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The colour of the region the model saw (magenta, the same in RGB and BGR): no box's colour, not in JET.
REGION_COLOUR = (255, 0, 255)
#: What is left of the photo outside the region the model saw (darkened to this fraction).
OUTSIDE_DIM = 0.45
#: The smallest font scale a label is shrunk to before it is cut short.
MIN_FONT = 0.25
#: A box on the picture: ``(x0, y0, x1, y1)``, pixel edges (``x1 - x0`` pixels wide).
Edges = Sequence[float]


@dataclass(frozen=True)
class Style:
    """The sizes of one picture's lines and letters, in pixels.

    Attributes:
        line: a box's line width.
        rim: the white (or black) rim on each side of a line, so it shows on any background.
        font: OpenCV's font scale of the labels (Hershey simplex; letters about ``22 x font`` px tall).
        pad: the padding around a label's text.
    """

    line: int
    rim: int
    font: float
    pad: int

    @classmethod
    def for_image(cls, width: int, height: int) -> Style:
        """Sizes for a ``width x height`` picture: in proportion to its shorter side, never below a minimum.

        The line is 1/200 of the shorter side (2 px at least: 2 px at 300 px, 10 px at 2000 px), the font
        1/500 of it (0.4 at least: text about 11 px tall, then 0.6 at 300 px, 4.0 at 2000 px).
        """
        short = min(width, height)
        line = max(2, round(short / 200))
        return cls(line=line, rim=max(1, round(line / 3)), font=max(0.4, short / 500), pad=max(2, round(short / 100)))

    @property
    def thickness(self) -> int:
        """The text's stroke at :attr:`font`."""
        return stroke(self.font)


def stroke(font: float) -> int:
    """The stroke, in pixels, of text at font scale ``font``."""
    return max(1, round(font * 2.5))


def _bands(box: Edges, width: int, outward: int) -> list[tuple[int, int, int, int]]:
    """The four strips, ``(x0, y0, x1, y1)`` pixel edges, of a line ``width`` px wide along ``box``'s edges.

    ``outward`` of the ``width`` pixels lie outside the box, the rest inside it.
    """
    x0, y0, x1, y1 = (round(v) for v in box)
    ox0, oy0, ox1, oy1 = x0 - outward, y0 - outward, x1 + outward, y1 + outward
    inner = width - outward
    ix0, iy0, ix1, iy1 = x0 + inner, y0 + inner, x1 - inner, y1 - inner
    return [(ox0, oy0, ox1, min(iy0, oy1)), (ox0, max(iy1, oy0), ox1, oy1),  # top, bottom
            (ox0, oy0, min(ix0, ox1), oy1), (max(ix1, ox0), oy0, ox1, oy1)]  # left, right


def _fill(img: np.ndarray, strip: tuple[int, int, int, int], colour: Sequence[int],
          dash: int = 0, origin: tuple[int, int] = (0, 0)) -> None:
    """Paint a strip (clipped to the picture); with ``dash``, only every other ``dash`` pixels along its length."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(strip[0], 0), max(strip[1], 0), min(strip[2], w), min(strip[3], h)
    if x0 >= x1 or y0 >= y1:
        return
    if not dash:
        img[y0:y1, x0:x1] = colour
        return
    along_x = x1 - x0 >= y1 - y0
    steps = np.arange(x0, x1) - origin[0] if along_x else np.arange(y0, y1) - origin[1]
    on = (steps // dash) % 2 == 0
    if along_x:
        img[y0:y1, x0:x1][:, on] = colour
    else:
        img[y0:y1, x0:x1][on] = colour


def frame(img: np.ndarray, box: Edges, width: int, colour: Sequence[int], outward: int | None = None) -> None:
    """Draw ``box``'s outline ``width`` pixels wide in ``colour``, in place, clipped to the picture.

    By default the line is centred on the box's edges (``width // 2`` pixels outside, the rest
    inside), so the box's outermost pixels are on it; ``outward=0`` keeps it inside the box.
    """
    for strip in _bands(box, width, width // 2 if outward is None else outward):
        _fill(img, strip, colour)


def dashed_frame(img: np.ndarray, box: Edges, width: int, colour: Sequence[int], dash: int, edge: int = 1,
                 inside: bool = False) -> None:
    """Draw ``box``'s outline as dashes ``width`` px wide and ``dash`` px long, each edged in black.

    Each dash has ``edge`` black pixels on either side (so it shows on light and dark pictures);
    between the dashes the picture shows. ``inside``: keep the whole line inside the box (for a
    region that may be the whole picture), else centre it on the box's edges.
    """
    origin = (round(box[0]), round(box[1]))
    black = width + 2 * edge
    for w, paint, outward in ((black, (0, 0, 0), 0 if inside else black // 2),
                              (width, colour, -edge if inside else width // 2)):
        for strip in _bands(box, w, outward):
            _fill(img, strip, paint, dash, origin)


def fit_text(variants: Sequence[str], room: int, font: float) -> tuple[str, float]:
    """The first of ``variants`` that is at most ``room`` px wide at ``font``, and that font.

    When none fits, the last (shortest) at a font small enough (down to :data:`MIN_FONT`), cut short
    where even that is too wide.
    """
    import cv2

    def width(text: str, scale: float) -> int:
        return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, stroke(scale))[0][0]

    for text in variants:
        if width(text, font) <= room:
            return text, font
    text = variants[-1]
    scale = max(MIN_FONT, font * room / max(width(text, font), 1))
    while scale > MIN_FONT and width(text, scale) > room:
        scale = max(MIN_FONT, scale * 0.95)
    while len(text) > 1 and width(text, scale) > room:
        text = text[:-1]
    return text, scale


def label(img: np.ndarray, lines: Sequence[tuple[Sequence[str], Sequence[int]]], style: Style,
          scales: Sequence[float] = (), width: int | None = None) -> tuple[int, int]:
    """Write lines of text on a black patch in the picture's top-left corner, in place; returns the patch's size.

    Args:
        img: the picture (H x W x 3 uint8).
        lines: per line, its variants (longest first) and its colour; each line is the first variant
            that fits (:func:`fit_text`): the first line within the picture's width, the next ones
            within ``width`` pixels or the first line's width, whichever is more.
        style: the picture's sizes.
        scales: per line, its font relative to ``style.font`` (default 1); no line is larger than the
            first one came out.
        width: the room of the lines after the first (default: the first line's width).

    Returns:
        ``(width, height)`` of the patch, in pixels.
    """
    import cv2

    h, w = img.shape[:2]
    room = w - 2 * style.pad
    texts, fonts, sizes = [], [], []
    for i, (variants, _) in enumerate(lines):
        scale = scales[i] if i < len(scales) else 1.0
        font = style.font * scale if not fonts else min(style.font * scale, fonts[0])
        text, font = fit_text(variants, room if not sizes else min(room, max(width or 0, sizes[0][0][0])), font)
        texts.append(text)
        fonts.append(font)
        sizes.append(cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, stroke(font)))
    patch_w = min(w, max(tw for (tw, _), _ in sizes) + 2 * style.pad)
    patch_h = min(h, sum(th + base for (_, th), base in sizes) + style.pad * (len(texts) + 1))
    cv2.rectangle(img, (0, 0), (patch_w - 1, patch_h - 1), (0, 0, 0), -1)
    y = 0
    for text, font, ((_, th), base), (_, colour) in zip(texts, fonts, sizes, lines, strict=True):
        y += style.pad + th
        cv2.putText(img, text, (style.pad, y), cv2.FONT_HERSHEY_SIMPLEX, font, tuple(colour), stroke(font),
                    cv2.LINE_AA)
        y += base
    return patch_w, patch_h
