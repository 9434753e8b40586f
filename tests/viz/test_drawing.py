"""The drawing primitives of camloc's pictures (camloc.viz.drawing): exact line widths, dashes, labels that fit."""

from __future__ import annotations

import numpy as np
import pytest

from camloc.viz.drawing import MIN_FONT, Style, dashed_frame, fit_text, frame, label

RED = (0, 0, 255)


def widths(line: np.ndarray) -> list[int]:
    """Lengths of the runs of painted (non-zero) pixels along a line."""
    painted = line.any(-1).astype(int)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], painted, [0]])))
    return list(edges[1::2] - edges[::2])


@pytest.mark.parametrize("side,line,rim,font", [(32, 2, 1, 0.4), (64, 2, 1, 0.4), (300, 2, 1, 0.6),
                                                (1000, 5, 2, 2.0), (2000, 10, 3, 4.0)])
def test_style_follows_the_shorter_side_with_a_minimum(side, line, rim, font):
    style = Style.for_image(side * 3, side)
    assert (style.line, style.rim, style.font) == (line, rim, pytest.approx(font))
    assert Style.for_image(side, side * 3) == style


@pytest.mark.parametrize("width", [1, 2, 3, 10])
def test_a_frame_is_exactly_its_width_and_centred_on_the_edges(width):
    img = np.zeros((100, 100, 3), np.uint8)
    frame(img, (20, 30, 80, 70), width, RED)
    assert widths(img[50]) == [width, width] and widths(img[:, 50]) == [width, width]
    cols = np.flatnonzero(img[50].any(-1))
    assert 20 in cols and 79 in cols  # the box's outermost pixels are on the line
    assert cols[0] == 20 - width // 2 and cols[-1] == 80 + width // 2 - 1  # as far out on the right as on the left
    inside = np.zeros((100, 100, 3), np.uint8)
    frame(inside, (20, 30, 80, 70), width, RED, outward=0)
    assert np.flatnonzero(inside[50].any(-1))[0] == 20 and np.flatnonzero(inside[50].any(-1))[-1] == 79


def test_a_frame_past_the_picture_is_clipped():
    img = np.zeros((50, 50, 3), np.uint8)
    frame(img, (-10, -10, 60, 60), 4, RED)
    assert not img.any()
    frame(img, (0, 0, 50, 50), 4, RED)
    assert widths(img[25]) == [2, 2]  # the outer half lies outside the picture


def test_dashes_alternate_and_each_is_edged_in_black():
    img = np.full((100, 200, 3), 128, np.uint8)
    dashed_frame(img, (10, 10, 190, 90), 2, RED, dash=10, edge=1, inside=True)
    # the top edge, from the corner: dashes at x 10..19, 30..39, ... of 1 black, 2 red, 1 black rows; gaps between
    assert [tuple(img[y, 35]) for y in range(9, 15)] == [(128,) * 3, (0, 0, 0), RED, RED, (0, 0, 0), (128,) * 3]
    assert (img[10:14, 20:30] == 128).all() and (img[10:14, 40:50] == 128).all()
    assert (img[14, 20:50] == 128).all() and (img[9, :] == 128).all()  # inside the box, nothing outside it
    centred = np.full((100, 200, 3), 128, np.uint8)
    dashed_frame(centred, (10, 10, 190, 90), 2, RED, dash=10)
    assert (centred[9:11, 12] == RED).all() and (centred[8, 12] == 0).all() and (centred[11, 12] == 0).all()


def test_text_is_fitted_by_its_variants_then_a_smaller_font_then_cut():
    assert fit_text(["a long caption here", "short"], 1000, 0.6) == ("a long caption here", 0.6)
    text, font = fit_text(["a long caption here", "short"], 60, 0.6)
    assert text == "short" and font == 0.6
    text, font = fit_text(["a long caption here", "short"], 30, 0.6)
    assert text == "short" and MIN_FONT <= font < 0.6
    text, font = fit_text(["unbreakable"], 10, 0.6)
    assert font == MIN_FONT and 1 <= len(text) < len("unbreakable")


@pytest.mark.parametrize("side", [32, 64, 451, 2000])
def test_a_label_stays_inside_the_picture(side):
    img = np.full((side, side, 3), 128, np.uint8)
    style = Style.for_image(side, side)
    w, h = label(img, [(["Egyptian cat 0.54 (class 285)", "Egyptian cat 0.54", "Egyptian cat"], (255, 255, 255)),
                       (["dashed: what the model saw (center crop)", "model saw", "seen"], (255, 0, 255))],
                 style, scales=(1.0, 0.8), width=round(0.6 * side))
    assert 0 < w <= side and 0 < h < side
    assert (img[h:, :] == 128).all() and (img[:, w:] == 128).all()  # the picture beside and below the patch
    assert (img[[0, h - 1], :w] == 0).all() and (img[:h, [0, w - 1]] == 0).all()  # its black edges
    letters = np.flatnonzero((img[:h, :w] > 100).any(-1).any(0))
    assert letters.min() >= style.pad - 1 and letters.max() <= w - style.pad  # padded on both sides: nothing cut
