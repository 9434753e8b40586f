"""Pictures of an evaluation: every line told apart, every number legible.

The figures are checked as matplotlib objects: distinct (colour, dash) pairs per line, legends
outside the axes and inside the figure, bar values written on the bars without overlapping, and
the file names ``save_plots`` writes.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from camloc.data.metadata import read_dataset  # noqa: E402
from camloc.eval.evaluation import EvaluationResult, evaluate  # noqa: E402
from camloc.eval.protocols import Settings  # noqa: E402
from camloc.viz.figures import (  # noqa: E402
    evaluation_figures,
    maxboxacc_figure,
    pxap_figure,
    rethinking_figure,
    save_plots,
)

from ..helpers import Brightness, synthetic_split  # noqa: E402

VARIANTS = ("cam", "nwc", "pas", "nwc+pas", "calibrated")
CALIBRATION = {"theta": 0.4, "percentile": 90.0, "nwc": True}


def bump(taus: np.ndarray, centre: float, height: float, width: float) -> np.ndarray:
    return height * np.exp(-((taus - centre) / width) ** 2)


def wsol_result(masks: bool = True, boxes: bool = True) -> EvaluationResult:
    """A wsolevaluation result shaped as :func:`camloc.eval.evaluation.evaluate` makes it, five variants
    with overlapping curves (``pas`` has the same PR curve as ``cam``, as PaS cannot change a map)."""
    taus = np.arange(0, 1, 0.01)
    settings = Settings("wsolevaluation", VARIANTS, interval=0.01, calibration=CALIBRATION)
    metrics, curves = {}, {}
    for i, v in enumerate(VARIANTS):
        c: dict = {"taus": taus}
        row: dict = {}
        if boxes:
            v2 = {d: bump(taus, 0.3 + 0.02 * i, 90 - d + i, 0.25) for d in settings.deltas_v2}
            c["maxboxacc"] = {50: v2[50] - 1.0}
            c["maxboxacc_v2"] = v2
            row.update(maxboxacc=float(c["maxboxacc"][50].max()),
                       maxboxacc_v2=float(np.mean([a.max() for a in v2.values()])))
        if masks:
            recall = np.linspace(1.0, 0.0, len(taus) + 3)
            shift = 0.0 if v in ("cam", "pas") else 0.02 * i
            precision = np.clip(0.3 + 0.5 * (1 - recall) ** 0.5 + shift, 0, 1)
            precision[-2:] = np.nan  # no pixel above the last thresholds
            c["precision"], c["recall"] = precision, recall
            terms = precision[1:] * -np.diff(recall)
            row["pxap"] = float(100 * terms[~np.isnan(terms)].sum())
        metrics[v], curves[v] = row, c
    return EvaluationResult(settings, {"images": "imgs", "model": "m", "metadata": "meta/test"}, metrics, curves)


def rethinking_result() -> EvaluationResult:
    settings = Settings("rethinking", VARIANTS, calibration=CALIBRATION)
    metrics = {v: {"top1_cls": 76.5, "top5_cls": 93.25, "gt_known_loc": 50.0 + 7.3 * i, "top1_loc": 40.0 + 6.1 * i}
               for i, v in enumerate(VARIANTS)}
    metrics["cam"]["top1_cls"] = metrics["cam"]["top1_loc"] = None  # labels beyond the model's classes
    return EvaluationResult(settings, {"images": "imgs", "model": "m"}, metrics, {})


def drawn_lines(ax) -> list:
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def style(line) -> tuple:
    return matplotlib.colors.to_hex(line.get_color()), line.get_linestyle()


def boxes_of(fig, artists) -> list[Bbox]:
    renderer = fig.canvas.get_renderer()
    return [a.get_window_extent(renderer) for a in artists]


def assert_legend_outside(fig, ax) -> None:
    fig.canvas.draw()
    legend = ax.get_legend() or (fig.legends[0] if fig.legends else None)
    assert legend is not None
    (leg,), (area,), (page,) = boxes_of(fig, [legend]), boxes_of(fig, [ax.patch]), [fig.bbox]
    assert not leg.overlaps(area), (leg, area)
    assert page.x0 - 1 <= leg.x0 and leg.x1 <= page.x1 + 1 and page.y0 - 1 <= leg.y0 and leg.y1 <= page.y1 + 1


# -- file names ---------------------------------------------------------------------------------------------


def test_files_are_named_for_what_they_show(tmp_path):
    written = save_plots(wsol_result(), tmp_path / "w")
    assert sorted(p.name for p in written) == ["maxboxacc.png", "maxboxacc_v2.png", "pxap.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
    boxes_only = save_plots(wsol_result(masks=False), tmp_path / "b")
    assert [p.name for p in boxes_only] == ["maxboxacc_v2.png", "maxboxacc.png"]
    assert [p.name for p in save_plots(wsol_result(boxes=False), tmp_path / "m")] == ["pxap.png"]
    assert [p.name for p in save_plots(rethinking_result(), tmp_path / "r")] == ["rethinking.png"]
    assert sorted(evaluation_figures(wsol_result())) == ["maxboxacc.png", "maxboxacc_v2.png", "pxap.png"]


# -- MaxBoxAcc ----------------------------------------------------------------------------------------------


def test_maxboxacc_v2_lines_are_told_apart_by_colour_and_dash():
    result = wsol_result()
    fig = maxboxacc_figure(result, version=2)
    (ax,) = fig.axes
    lines = drawn_lines(ax)
    assert len(lines) == len(VARIANTS) * 3  # 15 lines: 5 variants x 3 IoU thresholds
    assert len({style(line) for line in lines}) == len(lines)
    by_label = {line.get_label(): line for line in lines}
    for v in VARIANTS:  # one colour per variant, one dash per IoU threshold
        mine = [line for label, line in by_label.items() if label.startswith(f"{v}, IoU")]
        assert len(mine) == 3 and len({style(line)[0] for line in mine}) == 1
    for d in ("0.3", "0.5", "0.7"):
        mine = [line for label, line in by_label.items() if f"IoU {d}" in label]
        assert len(mine) == len(VARIANTS) and len({style(line)[1] for line in mine}) == 1
    # each label carries its curve's maximum, as the metric reads it
    best = result.curves["nwc"]["maxboxacc_v2"][70].max()
    assert any(label.startswith("nwc, IoU 0.7") and f"{best:.1f}" in label for label in by_label)
    assert "V2" in ax.get_title()
    assert_legend_outside(fig, ax)
    assert len(ax.get_legend().get_texts()) >= len(lines)


def test_maxboxacc_v1_has_its_own_figure():
    fig = maxboxacc_figure(wsol_result(), version=1)
    (ax,) = fig.axes
    lines = drawn_lines(ax)
    assert len(lines) == len(VARIANTS) and len({style(line) for line in lines}) == len(lines)
    assert "V2" not in ax.get_title() and "MaxBoxAcc" in ax.get_title()
    assert_legend_outside(fig, ax)
    assert maxboxacc_figure(wsol_result(boxes=False), version=1) is None


# -- PxAP ---------------------------------------------------------------------------------------------------


def test_pxap_curves_are_told_apart_and_carry_their_value():
    result = wsol_result()
    fig = pxap_figure(result)
    (ax,) = fig.axes
    lines = drawn_lines(ax)
    assert len(lines) == len(VARIANTS)
    assert len({style(line) for line in lines}) == len(lines)
    assert len({line.get_marker() for line in lines}) == len(lines)
    assert all(line.get_markevery() is not None for line in lines)
    for line, v in zip(lines, VARIANTS, strict=True):
        assert line.get_label().startswith(v) and f"PxAP {result.metrics[v]['pxap']:.1f}" in line.get_label()
    # identical curves are said to be identical (the dashes show both, the label says why)
    pas = next(line for line in lines if line.get_label().startswith("pas"))
    assert "same curve as cam" in pas.get_label()
    assert_legend_outside(fig, ax)
    assert pxap_figure(wsol_result(masks=False)) is None


# -- the rethinking bar chart -----------------------------------------------------------------------------------


def test_rethinking_bars_carry_their_values_legibly():
    result = rethinking_result()
    fig = rethinking_figure(result)
    (ax,) = fig.axes
    fig.canvas.draw()
    texts = [t for t in ax.texts if t.get_text()]
    expected = {f"{row[k]:.1f}" for row in result.metrics.values() for k in ("top1_cls", "gt_known_loc", "top1_loc")
                if row[k] is not None}
    assert expected <= {t.get_text() for t in texts}
    assert sum(t.get_text() == "n/a" for t in texts) == 2  # cam's missing Top-1 Cls and Top-1 Loc
    assert all(t.get_fontsize() >= 7 for t in texts)
    bars = [patch for container in ax.containers for patch in container]
    assert len(texts) == len(bars) == len(VARIANTS) * 3
    boxes = boxes_of(fig, texts)
    for i, a in enumerate(boxes):  # no value hides another, and none leaves the figure
        assert fig.bbox.contains(a.x0, a.y0) and fig.bbox.contains(a.x1, a.y1)
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
    assert_legend_outside(fig, ax)


# -- a real evaluation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["wsolevaluation", "rethinking"])
def test_figures_of_a_real_evaluation(tmp_path, protocol):
    meta, images, masks = synthetic_split(tmp_path)
    settings = Settings(protocol, ("cam", "nwc+pas"), interval=0.05)
    result = evaluate(Brightness(), read_dataset(meta), images, settings, masks=masks, progress=False)
    names = [p.name for p in save_plots(result, tmp_path / "plots")]
    if protocol == "rethinking":
        assert names == ["rethinking.png"]
        return
    v1 = any(c.get("maxboxacc") for c in result.curves.values())  # V1 curves where the settings ask for them
    assert names == ["maxboxacc_v2.png"] + (["maxboxacc.png"] if v1 else []) + ["pxap.png"]
    v2 = evaluation_figures(result)["maxboxacc_v2.png"]
    lines = drawn_lines(v2.axes[0])
    assert len(lines) == 2 * len(settings.deltas_v2) == len({style(line) for line in lines})


def test_writing_plots_leaves_pyplot_alone(tmp_path):
    """A notebook's backend stays its own and no figure is left for Jupyter to show twice."""
    import matplotlib.pyplot as plt

    from camloc.viz.figures import save_threshold_comparison
    from camloc.viz.training import save_training_plots

    before_backend, before_figs = matplotlib.get_backend(), plt.get_fignums()
    matplotlib.use("pdf")  # stands in for a notebook's inline backend: anything but Agg
    try:
        history = [{"epoch": e, "loss": 2.0 / e, "train_top1": 10.0 * e, "val/rethinking/cam/gt_known_loc": 40.0 + e}
                   for e in (1, 2)]
        save_training_plots(history, tmp_path)
        save_threshold_comparison({"cam": {"GAP": [[0.1, 0.5, 0.2]]}}, [0.0, 0.5, 0.9], tmp_path / "c.png")
        assert matplotlib.get_backend() == "pdf" and plt.get_fignums() == before_figs
    finally:
        matplotlib.use(before_backend)
