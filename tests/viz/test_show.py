"""Notebook pictures (camloc.show, Localization.show, Localization._repr_png_) with the real model on real photos.

The default efficientnet_lite0 (ImageNet weights) localizes the three example photos once per module;
every test then checks what was drawn against those results: one panel per result, each box a
Rectangle at exactly the result's coordinates (the axes are in the photo's pixel edges), its caption
written, the heat map over the whole photo (the default region) or, with ``resize="crop"``, over
exactly the pixels the center crop came from, and pyplot left as it was where it must be. The last test runs a real Jupyter kernel and counts the pictures each cell shows.
"""

from __future__ import annotations

import dataclasses
import io
import sys

import matplotlib

matplotlib.use("Agg")  # the tests draw off screen; camloc.show itself never picks a backend

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

import camloc  # noqa: E402
from camloc.utils.errors import UsageError  # noqa: E402
from camloc.viz.render import caption, map_on_photo, overlay, png  # noqa: E402

from ..conftest import EXAMPLES  # noqa: E402
from ..test_notebooks import _run_module  # noqa: E402  (run.py's kernel: this interpreter)

PATHS = [str(EXAMPLES / name) for name in ("cat.jpg", "coffee.jpg", "rocket.jpg")]
SIZES = [(451, 300), (600, 400), (640, 427)]  # the photos' (width, height)


@pytest.fixture(scope="module")
def results(lite0):
    rs = camloc.boxes(lite0, PATHS)
    assert [(r.class_index, r.label) for r in rs] == [(285, "Egyptian cat"), (967, "espresso"), (657, "missile")]
    assert [r.region_mode for r in rs] == ["full"] * 3  # the default: the whole photo, squashed
    return rs


@pytest.fixture(scope="module")
def two_cats():
    """The cat photo twice side by side, as an in-memory H x W x 3 uint8 array (902 x 300)."""
    cat = np.asarray(Image.open(EXAMPLES / "cat.jpg").convert("RGB"))
    return np.ascontiguousarray(np.concatenate([cat, cat], axis=1))


@pytest.fixture(scope="module")
def regions(lite0, two_cats):
    """The tabby in the two-cat picture with every region: the center crop sees both cats, two boxes."""
    (r,) = camloc.boxes(lite0, two_cats, classes="tabby", all_regions=True, resize="crop")
    assert r.image == "<image 0>" and (r.width, r.height) == (902, 300) and len(r.boxes) == 2
    return r


@pytest.fixture(autouse=True)
def _close_figures():
    before = set(plt.get_fignums())
    yield
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


def drawn_boxes(ax, gid=None) -> list[tuple[float, float, float, float]]:
    """The Rectangles drawn: the boxes (``gid`` None) or the region the model saw (``gid="region"``)."""
    return [(p.get_x(), p.get_y(), p.get_x() + p.get_width(), p.get_y() + p.get_height())
            for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == gid]


def assert_boxes(ax, boxes) -> None:
    """The axes hold one Rectangle per box, at the box's exact coordinates (up to float rounding of x0 + w)."""
    drawn = drawn_boxes(ax)
    assert len(drawn) == len(boxes)
    np.testing.assert_allclose(np.array(drawn), np.array(boxes), rtol=0, atol=1e-9)
    assert [d[:2] for d in drawn] == [tuple(b[:2]) for b in boxes]  # the corner as given, bit for bit


def test_caption_is_label_score_and_class(results):
    r = results[0]
    assert caption(r) == f"Egyptian cat {r.score:.2f} (class 285)"
    assert caption(dataclasses.replace(r, label="class 285")) == f"class 285 {r.score:.2f}"  # no repeat


def test_grid_draws_every_result_box_caption_and_title(results):
    fig = camloc.show(results)
    assert isinstance(fig, Figure)
    assert plt.fignum_exists(fig.number)  # pyplot's: plt.show() and Jupyter's inline backend show it
    assert len(fig.axes) == 3
    for k, (ax, r, path) in enumerate(zip(fig.axes, results, PATHS, strict=True)):
        assert ax.get_subplotspec().get_geometry() == (1, 3, k, k)  # ncols defaults to min(4, n): one row
        assert ax.get_title() == path.rsplit("/", 1)[1]
        assert_boxes(ax, r.boxes)
        assert [t.get_text() for t in ax.texts] == [caption(r)] * len(r.boxes)
        # every caption sits on a black patch (legible on any photo)
        assert all(t.get_bbox_patch().get_facecolor()[:3] == (0, 0, 0) for t in ax.texts)
        # the axes are the photo's pixel edges: a box's coordinates are its pixels
        assert ax.get_xlim() == (0, r.width) and ax.get_ylim() == (r.height, 0)
    assert [t.get_text() for t in fig.axes[1].texts] == [f"espresso {results[1].score:.2f} (class 967)"]


def test_photo_and_heat_map_have_the_photos_size_and_the_map_covers_the_crop(lite0):
    (r,) = camloc.boxes(lite0, PATHS[:1], resize="crop")  # cat.jpg, 451 x 300: resized to 384 x 256, crop 224 at (80, 16)
    fig = camloc.show(r)
    photo, heat = (im.get_array() for im in fig.axes[0].images)
    assert photo.shape == (300, 451, 3) and heat.shape == (300, 451, 4)
    assert (np.asarray(photo) == np.asarray(Image.open(PATHS[0]).convert("RGB"))).all()
    assert fig.axes[0].images[0].get_extent() == fig.axes[0].images[1].get_extent() == [0, 451, 300, 0]
    # the map lies where the crop came from: photo pixel x is input pixel x * sx - 80 (sx = 384/451),
    # covered where that rounds into 0..223, so columns 94..356; rows y * 256/300 - 16: 19..280
    alpha = np.asarray(heat)[..., 3]
    inside = alpha == 128  # alpha=0.5 (RGBA bytes) over the crop
    cols, rows = np.nonzero(inside.any(0))[0], np.nonzero(inside.any(1))[0]
    assert (cols[0], cols[-1], len(cols)) == (94, 356, 263) and (rows[0], rows[-1], len(rows)) == (19, 280, 262)
    assert inside.sum() == 263 * 262 and set(np.unique(alpha)) == {128, 140}  # outside: black at 0.55, so 45 % left
    assert (np.asarray(heat)[~inside][:, :3] == 0).all()
    # the same placement as the BGR overlay's: the map over exactly the covered pixels, the photo dimmed elsewhere
    bgr = overlay(PATHS[0], r)
    plain = np.asarray(Image.open(PATHS[0]).convert("RGB"))[:, :, ::-1]
    dimmed = np.floor(plain * 0.45 + 0.5).astype(np.uint8)
    assert (bgr[60, :94] == dimmed[60, :94]).all() and (bgr[60, 357:] == dimmed[60, 357:]).all()
    assert (bgr[:19, 420] == dimmed[:19, 420]).all() and (bgr[281:, 420] == dimmed[281:, 420]).all()
    assert (bgr[60:80, 94] != dimmed[60:80, 94]).all() and (bgr[19, 300:350] != dimmed[19, 300:350]).all()
    values, covered = map_on_photo(r, 451, 300)
    assert (covered == inside).all() and values.min() == 0.0 and values.max() == 1.0
    assert (np.asarray(heat)[inside][:, :3] == matplotlib.colormaps["jet"](values, bytes=True)[inside][:, :3]).all()
    # the region seen: a dashed magenta rectangle at exactly r.region, named in the legend under the photo
    (ax,) = fig.axes
    assert drawn_boxes(ax, "region") == [r.region] and r.region == pytest.approx((93.958333, 18.75, 357.041667, 281.25))
    (region,) = [p for p in ax.patches if p.get_gid() == "region"]
    assert region.get_edgecolor()[:3] == (1.0, 0.0, 1.0) and region.get_linestyle() != "solid"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["what the model saw (center crop); outside it dimmed"]


def test_by_default_the_map_covers_the_whole_photo(results):
    r = results[0]  # cat.jpg, 451 x 300, squashed to 224 x 224: every pixel seen, none dimmed
    (ax,) = camloc.show(r).axes
    photo, heat = (np.asarray(im.get_array()) for im in ax.images)
    assert photo.shape == (300, 451, 3) and heat.shape == (300, 451, 4)
    assert (heat[..., 3] == 128).all()  # alpha=0.5 over every pixel
    values, covered = map_on_photo(r, 451, 300)
    assert covered.all() and values.min() == 0.0 and values.max() == 1.0
    assert (heat[..., :3] == matplotlib.colormaps["jet"](values, bytes=True)[..., :3]).all()
    bgr = overlay(PATHS[0], r)  # the BGR overlay: the map blended over every pixel, nothing dimmed
    plain = np.asarray(Image.open(PATHS[0]).convert("RGB"))[:, :, ::-1]
    assert (bgr[150, 5:15] != plain[150, 5:15]).any() and (bgr[150, 440:446] != plain[150, 440:446]).any()
    assert drawn_boxes(ax, "region") == [r.region] == [(0.0, 0.0, 451.0, 300.0)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["what the model saw (the whole image)"]


def test_alpha_and_ncols_shape_the_grid(results):
    fig = camloc.show(results, ncols=2, alpha=0.3, title="efficientnet_lite0")
    assert [ax.get_subplotspec().get_geometry() for ax in fig.axes] == [(2, 2, 0, 0), (2, 2, 1, 1), (2, 2, 2, 2)]
    assert set(np.unique(np.asarray(fig.axes[0].images[1].get_array())[..., 3])) == {76}  # 0.3 x 255, nothing dimmed
    assert fig.get_suptitle() == "efficientnet_lite0"
    for bad in (0, -1, 2.5, True):
        with pytest.raises(UsageError, match="ncols is the number of panels per row"):
            camloc.show(results, ncols=bad)
    with pytest.raises(UsageError, match="alpha is the heat map's opacity"):
        camloc.show(results, alpha=1.5)


def test_every_region_of_an_all_regions_result_is_drawn(regions, two_cats):
    assert regions.boxes[0][2] < regions.boxes[1][0]  # two separate regions, side by side
    fig = camloc.show(regions, images=two_cats)
    (ax,) = fig.axes
    assert_boxes(ax, regions.boxes)
    assert [t.get_text() for t in ax.texts] == [f"tabby {regions.score:.2f} (class 281)"] * 2
    assert (np.asarray(ax.images[0].get_array()) == two_cats).all() and ax.get_title() == "<image 0>"
    fig.canvas.draw()  # the captions, as drawn: apart from each other, on the photo
    first, second = (t.get_bbox_patch().get_window_extent() for t in ax.texts)
    assert not first.overlaps(second)
    photo = ax.images[0].get_window_extent()
    for patch in (first, second):
        assert photo.x0 - 1 <= patch.x0 < patch.x1 <= photo.x1 + 1 and photo.y0 - 1 <= patch.y0 < patch.y1 <= photo.y1 + 1


def test_in_memory_results_need_their_pictures(regions, two_cats, results):
    figures = plt.get_fignums()
    with pytest.raises(UsageError, match=r"result 0 \(<image 0>\) was computed from an in-memory image.*images=\["):
        camloc.show(regions)
    with pytest.raises(UsageError, match="in-memory image.*result.show"):
        regions.show()
    with pytest.raises(UsageError, match=r"is 451x300 px, but the result was computed on a 902x300 px image"):
        regions.show(image=PATHS[0])
    with pytest.raises(UsageError, match="float32 tensor is network input, not a picture"):
        regions.show(image=torch.zeros(3, 300, 902))
    assert plt.get_fignums() == figures  # nothing drawn, nothing left open
    # the pixels as a PIL image, a uint8 array, a uint8 tensor (C x H x W) or in a list with file results
    for pixels in (Image.fromarray(two_cats), two_cats, torch.from_numpy(two_cats).permute(2, 0, 1)):
        assert len(drawn_boxes(regions.show(image=pixels).axes[0])) == 2
    fig = camloc.show([results[0], regions], images=[None, two_cats])
    assert [len(drawn_boxes(ax)) for ax in fig.axes] == [1, 2]


def test_a_list_of_pictures_must_match_the_results(results, two_cats):
    with pytest.raises(UsageError, match="got 2 images for 3 results: give one per result"):
        camloc.show(results, images=[None, None])
    with pytest.raises(UsageError, match="got 4 images for 3 results"):
        camloc.show(results, images=[None] * 4)
    with pytest.raises(UsageError, match="images must be a list of 3 pictures"):
        camloc.show(results, images=two_cats)
    with pytest.raises(UsageError, match="got 2 images for one result"):
        camloc.show(results[0], images=[PATHS[0], PATHS[0]])
    with pytest.raises(UsageError, match="nothing to draw"):
        camloc.show([])
    with pytest.raises(UsageError, match=r"results\[0\] is a list .*flat list"):
        camloc.show([results])
    with pytest.raises(UsageError, match=r"results\[1\] is a str, not a camloc result"):
        camloc.show([results[0], "cat.jpg"])


def test_columns_compare_settings_row_by_image(lite0, results):
    plain = camloc.boxes(lite0, PATHS[:2], nwc=False, standard="max")
    fig = camloc.show(columns={"CAM": plain, "NWC + PaS": results[:2]})
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == ["CAM\ncat.jpg", "NWC + PaS\ncat.jpg", "coffee.jpg", "coffee.jpg"]
    for ax, r in zip(fig.axes, [plain[0], results[0], plain[1], results[1]], strict=True):
        assert_boxes(ax, r.boxes)
    with pytest.raises(UsageError, match="column 'b' has 1 results and column 'a' 2"):
        camloc.show(columns={"a": plain, "b": plain[:1]})
    with pytest.raises(UsageError, match="give results or columns"):
        camloc.show(results, columns={"a": plain})


def test_a_failed_drawing_leaves_no_figure_open(results):
    broken = dataclasses.replace(results[1], geometry=dataclasses.replace(results[1].geometry, sx=0.0))
    figures = plt.get_fignums()
    with pytest.raises(ZeroDivisionError):
        camloc.show([results[0], broken])  # fails on the second panel, after the figure was made
    assert plt.get_fignums() == figures


def test_show_into_your_own_axes(results):
    fig, axes = plt.subplots(1, 2)
    assert results[0].show(ax=axes[1]) is fig
    assert_boxes(axes[1], results[0].boxes) and not axes[0].images
    with pytest.raises(UsageError, match="ax= takes one result, got 3"):
        camloc.show(results, ax=axes[0])


def test_repr_png_is_the_picture_and_leaves_pyplot_alone(results, regions, two_cats):
    figures = plt.get_fignums()
    data = results[0]._repr_png_()
    assert plt.get_fignums() == figures  # no pyplot figure made, none left open
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        # 5 inches at 100 dpi; 5 x 300/451 inches of photo + 0.4 for the title + 0.25 for the legend = 397.6 px tall
        assert im.size == (500, 397)
        pixels = np.asarray(im.convert("RGB"))
    with Image.open(io.BytesIO(results[0]._repr_png_())) as again:
        assert again.size == (500, 397) and (np.asarray(again.convert("RGB")) == pixels).all()
    assert (pixels == (0, 200, 0)).all(-1).sum() > 500  # the green box is in it
    with Image.open(io.BytesIO(results[2]._repr_png_())) as im:
        assert im.size == (500, int((5 * 427 / 640 + 0.65) * 100))  # 398.6
    assert regions._repr_png_() is None  # in-memory: no photo, so Jupyter prints the text instead
    assert Image.open(io.BytesIO(png(regions, two_cats))).size == (500, int((5 * 300 / 902 + 0.65) * 100))
    assert plt.get_fignums() == figures


def test_repr_png_does_not_import_pyplot(tmp_path):
    import subprocess

    code = (
        "import sys, torch, camloc\n"
        "from camloc.data.imaging import Geometry\n"
        f"r = camloc.Localization(image={PATHS[0]!r}, width=451, height=300, class_index=1, label='x', score=0.5,"
        " box=(10.0, 20.0, 200.0, 250.0), boxes=((10.0, 20.0, 200.0, 250.0),), cam=torch.rand(7, 7))\n"
        "assert r._repr_png_()[:4] == b'\\x89PNG'\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_each_way_of_showing_gives_one_picture_in_jupyter():
    """A pyplot figure that is a cell's value shows twice under the inline backend (once as the value,
    once when the cell ends); camloc.show's must show once whichever way the cell uses it."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    cells = {
        f"import camloc\nrs = camloc.boxes('efficientnet_lite0', {PATHS[:2]!r})": 0,
        "camloc.show(rs)": 1,                        # the cell's value
        "fig = camloc.show(rs)": 1,                  # assigned: shown when the cell ends
        "fig": 1,                                    # again, in a later cell
        "rs[0]": 1,                                  # a result shows itself (_repr_png_)
        "rs[0].show()": 1,
        "rs[0].show();": 1,
        "for r in rs:\n    r.show()": 2,
        "import matplotlib.pyplot as plt\nf, axes = plt.subplots(1, 2)\nrs[0].show(ax=axes[0]);": 1,
    }
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", km=_run_module()._kernel_manager()).execute()
    pictures = [sum("image/png" in o.get("data", {}) for o in cell.outputs) for cell in nb.cells]
    assert dict(zip(cells, pictures)) == cells


def test_a_large_photo_is_drawn_reduced_in_its_own_pixel_coordinates():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    box = (100.25, 200.5, 2999.0, 1500.0)
    r = camloc.Localization(image="<image 0>", width=3000, height=2000, class_index=3, label="white shark", score=0.5,
                            box=box, boxes=(box,), cam=torch.arange(49.0).reshape(7, 7))
    (ax,) = camloc.show(r, images=photo).axes
    shown, heat = (im.get_array() for im in ax.images)
    assert shown.shape == (1365, 2048, 3) and heat.shape == (1365, 2048, 4)  # 2048 px on the long side
    assert ax.images[0].get_extent() == ax.images[1].get_extent() == [0, 3000, 2000, 0]
    assert_boxes(ax, [box])
    # no geometry: the map covers the whole photo; it rises to the bottom right (JET: blue low, red high)
    heat = np.asarray(heat)
    assert (heat[..., 3] == 128).all()
    assert heat[0, 0, 2] > 100 > 50 > heat[0, 0, 0] and heat[-1, -1, 0] > 100 > 50 > heat[-1, -1, 2]
    assert [t.get_text() for t in ax.texts] == ["white shark 0.50 (class 3)"]
    # no geometry: the model saw the whole photo, and the panel says so
    assert drawn_boxes(ax, "region") == [(0.0, 0.0, 3000.0, 2000.0)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["what the model saw (the whole image)"]
