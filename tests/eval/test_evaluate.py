"""Whole evaluations on small synthetic data and real masks: every protocol, saved maps scored again."""

from __future__ import annotations

import pytest

import camloc
from camloc import UsageError
from camloc.data.metadata import Sample, read_dataset
from camloc.eval.evaluation import evaluate
from camloc.eval.protocols import Settings
from camloc.eval.scoring import score_maps

from ..conftest import data_dir
from ..helpers import Brightness, synthetic_split


def test_synthetic_objects_are_found_under_both_protocols(tmp_path):
    meta, images, masks = synthetic_split(tmp_path)
    samples = read_dataset(meta)
    model = Brightness()
    r = evaluate(model, samples, images, Settings("rethinking"), progress=False)
    assert r.metrics["cam"]["gt_known_loc"] == 100.0 and r.metrics["cam"]["top1_cls"] == 100.0
    w = evaluate(model, samples, images, Settings("wsolevaluation", ("cam",), interval=0.01), masks=masks,
                 save_maps=tmp_path / "maps", progress=False)
    assert w.metrics["cam"]["maxboxacc"] == 100.0 and w.metrics["cam"]["maxboxacc_v2"] == 100.0
    assert w.metrics["cam"]["pxap"] > 95.0
    again = score_maps(samples, tmp_path / "maps" / "cam", Settings("wsolevaluation", ("cam",), interval=0.01),
                       masks, progress=False)
    for key in ("maxboxacc", "maxboxacc_v2", "pxap"):
        assert again.metrics["maps"][key] == w.metrics["cam"][key]
    assert not again.failed and not w.failed


def test_label_beyond_model_classes(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    samples = [Sample(s.image_id, 7, s.width, s.height, s.boxes) for s in read_dataset(meta)]
    with pytest.raises(UsageError, match="cam-class top1"):
        evaluate(Brightness(), samples, images, progress=False)
    r = evaluate(Brightness(), samples, images, Settings(cam_class="top1"), progress=False)
    assert r.metrics["cam"]["top1_cls"] is None and r.metrics["cam"]["gt_known_loc"] == 100.0


def test_missing_image_is_a_listed_miss(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    (images / "3.png").unlink()
    r = evaluate(Brightness(), read_dataset(meta), images, progress=False)
    assert r.failed == [{"image_id": "3.png", "reason": "no such file; check the path"}]
    assert r.metrics["cam"]["gt_known_loc"] == pytest.approx(500 / 6)


def test_pxap_on_real_masks():
    root = data_dir("coco-masks")
    samples = read_dataset(root)[:16]
    r = evaluate(camloc.load_model(), samples, root, Settings("wsolevaluation", ("cam",), interval=0.01),
                 progress=False)
    assert 20 < r.metrics["cam"]["pxap"] < 90
