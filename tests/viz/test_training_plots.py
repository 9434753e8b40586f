"""The pictures of a training run: every series told apart."""

import matplotlib.colors

import camloc.viz.training as training


def test_every_localization_series_has_its_own_colour_marker_and_dash(tmp_path, monkeypatch):
    """Four variants x four metrics x two splits: 32 series, more than the 8 colours, none drawn alike."""
    figures = []

    def keep(fig, path):
        figures.append(fig)
        return path

    monkeypatch.setattr(training, "_save", keep)
    variants, metrics = ("cam", "nwc", "pas", "nwc_pas"), ("gt_known_loc", "top1_loc")
    keys = [f"{split}/rethinking/{v}/{m}" for split in ("val", "test") for v in variants for m in metrics]
    keys += [f"{split}/wsolevaluation/{v}/{m}" for split in ("val", "test") for v in variants
             for m in ("maxboxacc_v2", "pxap")]
    history = [{"epoch": e, "loss": 1.0 / e, "train_top1": 10.0 * e, **{k: float(i + e) for i, k in enumerate(keys)}}
               for e in (1, 2, 3)]
    training.save_training_plots(history, tmp_path)
    lines = [ln for ln in figures[1].axes[0].get_lines() if not ln.get_label().startswith("_")]
    assert len(lines) == len(keys) == 32
    looks = {(matplotlib.colors.to_hex(ln.get_color()), ln.get_marker(), ln.get_linestyle()) for ln in lines}
    assert len(looks) == len(lines)
