"""Bad items in evaluation: nothing lost, nothing silently wrong.

* a label space that is not the model's (``cam_class="gt"`` with, e.g., CUB species and an ImageNet
  model) is warned about, the same way in evaluate and calibrate, and recorded in the result;
* an unreadable image or score map is a miss, listed and counted, never the end of the run;
* wsolevaluation's OpenImages layout (an empty ``image_sizes.txt``) and the authors' CUB box
  convention are understood;
* only the metrics asked for are computed, and MaxBoxAcc (V1) agrees with the reference where it
  takes its short cut (maps with at most one contour at a threshold).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from camloc import CamlocError, UsageError
from camloc.data.metadata import MetadataError, Sample, read_dataset
from camloc.eval.boxacc import contour_counts, largest_contour_table, reference_hits, threshold_levels
from camloc.eval.calibration import Calibration, calibrate
from camloc.eval.evaluation import LabelSpaceWarning, evaluate, label_space_warning
from camloc.eval.protocols import Settings, gt_boxes
from camloc.eval.scoring import score_maps

from ..conftest import data_dir
from ..helpers import Brightness, synthetic_split, write_split


def rectangles(tmp_path: Path, n: int, label: int = 0, side: int = 64) -> tuple[Path, Path]:
    """``n`` white rectangles on black (the Brightness model's class 0 finds each exactly), all labelled
    ``label``; returns ``(metadata folder, image root)``."""
    images, meta = tmp_path / "rect-images", tmp_path / "rect-meta"
    images.mkdir()
    rng = np.random.default_rng(1)
    rows, boxes = [], []
    for i in range(n):
        x0, y0 = (int(v) for v in rng.integers(4, side // 3, 2))
        x1, y1 = (int(v) for v in rng.integers(2 * side // 3, side - 4, 2))
        arr = np.zeros((side, side, 3), np.uint8)
        arr[y0:y1, x0:x1] = 255
        Image.fromarray(arr).save(images / f"{i}.png")
        rows.append((f"{i}.png", label, side, side))
        boxes.append(f"{i}.png,{x0},{y0},{x1},{y1}")
    write_split(meta, rows, boxes)
    return meta, images


# -- item 2: a label space that is not the model's ---------------------------------------------------


def test_label_space_rule():
    assert label_space_warning(top1_hits=30, n=40, num_classes=1000) is None
    assert label_space_warning(top1_hits=0, n=31, num_classes=1000) is None  # too few images to say
    message = label_space_warning(top1_hits=0, n=40, num_classes=1000)
    assert message and "--cam-class top1" in message and "0.00 %" in message and "40 images" in message
    assert label_space_warning(top1_hits=3, n=250, num_classes=1000)  # 1.2 %: CUB species with an ImageNet model
    assert label_space_warning(top1_hits=20, n=40, num_classes=2)  # 50 % of two classes: chance
    assert label_space_warning(top1_hits=36, n=40, num_classes=2) is None


def test_evaluate_and_calibrate_warn_when_labels_are_not_the_models_classes(tmp_path):
    meta, images = rectangles(tmp_path, 36, label=1)  # Brightness predicts class 0 for every one
    samples = read_dataset(meta)
    with pytest.warns(LabelSpaceWarning, match="--cam-class top1"):
        res = evaluate(Brightness(), samples, images, Settings("rethinking", ("cam",)), progress=False)
    assert res.metrics["cam"]["top1_cls"] == 0.0
    assert len(res.warnings) == 1 and "--cam-class top1" in res.to_dict()["warnings"][0]
    with pytest.warns(LabelSpaceWarning, match="--cam-class top1"):
        best, _ = calibrate(Brightness(), samples, images, percentiles=(100,), progress=False)
    assert best.warnings and "--cam-class top1" in best.warnings[0]
    # the right labels: no warning; top1 maps: nothing to check
    right = [Sample(s.image_id, 0, s.width, s.height, s.boxes) for s in samples]
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelSpaceWarning)
        assert not evaluate(Brightness(), right, images, Settings("rethinking", ("cam",)), progress=False).warnings
        assert not evaluate(Brightness(), samples, images, Settings("rethinking", ("cam",), cam_class="top1"),
                            progress=False).warnings
        assert not calibrate(Brightness(), right, images, percentiles=(100,), progress=False)[0].warnings


@pytest.mark.slow
def test_cub_labels_with_an_imagenet_model_are_warned_about(lite0):
    cub = data_dir("cub-test")
    samples = read_dataset(cub)[::5][:40]  # 40 species
    with pytest.warns(LabelSpaceWarning, match="--cam-class top1"):
        res = evaluate(lite0, samples, cub, Settings("wsolevaluation", ("cam",), interval=0.01,
                                                     metrics=("maxboxacc_v2",)), batch_size=20, progress=False)
    assert res.warnings
    imagenet = data_dir("imagenet-val")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelSpaceWarning)
        res = evaluate(lite0, read_dataset(imagenet)[:40], imagenet, Settings("rethinking", ("cam",)), batch_size=20,
                       progress=False)
    assert not res.warnings and res.metrics["cam"]["top1_cls"] > 40


# -- item 6: a bad image is a miss, listed and counted -------------------------------------------------


def test_a_corrupt_image_is_a_listed_miss_under_both_protocols(tmp_path):
    meta, images, masks = synthetic_split(tmp_path)
    (images / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    samples = read_dataset(meta)
    model = Brightness()
    r = evaluate(model, samples, images, Settings("rethinking", ("cam", "nwc+pas")), batch_size=4, progress=False)
    assert [f["image_id"] for f in r.failed] == ["3.png"] and r.failed[0]["reason"]
    assert r.dataset["n"] == 6 and r.dataset["failed"] == 1
    row = r.metrics["cam"]
    assert row["gt_known_loc"] == pytest.approx(500 / 6) and row["top1_cls"] == pytest.approx(500 / 6)
    assert row["top1_loc"] == pytest.approx(500 / 6)
    good = evaluate(model, [s for s in samples if s.image_id != "3.png"], images,
                    Settings("wsolevaluation", ("cam",), interval=0.01), masks=masks, progress=False)
    w = evaluate(model, samples, images, Settings("wsolevaluation", ("cam",), interval=0.01), masks=masks,
                 save_maps=tmp_path / "maps", progress=False)
    assert [f["image_id"] for f in w.failed] == ["3.png"] and w.to_dict()["failed"] == w.failed
    assert w.metrics["cam"]["maxboxacc_v2"] == pytest.approx(500 / 6)
    assert w.metrics["cam"]["maxboxacc"] == pytest.approx(500 / 6)
    assert w.metrics["cam"]["top1_cls"] == pytest.approx(500 / 6)
    # PxAP: the failed image's mask counts, with an all-zero score map (it found nothing)
    assert w.metrics["cam"]["pxap"] < good.metrics["cam"]["pxap"]
    assert not (tmp_path / "maps" / "cam" / "3.png.npy").exists()
    # score: the map that evaluate could not write is a listed miss too
    again = score_maps(samples, tmp_path / "maps" / "cam", Settings("wsolevaluation", ("cam",), interval=0.01),
                       masks, progress=False)
    assert [f["image_id"] for f in again.failed] == ["3.png"]
    for key in ("maxboxacc", "maxboxacc_v2", "pxap"):
        assert again.metrics["maps"][key] == pytest.approx(w.metrics["cam"][key])


def test_a_missing_mask_is_a_listed_miss(tmp_path):
    meta, images, masks = synthetic_split(tmp_path)
    (masks / "2.png").unlink()
    w = evaluate(Brightness(), read_dataset(meta), images, Settings("wsolevaluation", ("cam",), interval=0.01),
                 masks=masks, progress=False)
    assert [f["image_id"] for f in w.failed] == ["2.png"] and "2.png" in w.failed[0]["reason"]
    assert w.metrics["cam"]["maxboxacc_v2"] == pytest.approx(500 / 6)


def test_calibrate_scores_a_corrupt_image_as_a_miss(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    (images / "0.png").write_bytes(b"")
    best, grid = calibrate(Brightness(), read_dataset(meta), images, percentiles=(100,), batch_size=4, progress=False)
    assert best.gt_known_loc == pytest.approx(500 / 6) == pytest.approx(grid.max())
    assert [f["image_id"] for f in best.failed] == ["0.png"] and best.n == 6
    best.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json") == best


def test_nothing_readable_is_an_error(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    for p in images.glob("*.png"):
        p.write_bytes(b"junk")
    with pytest.raises(CamlocError, match="none of the 6 images"):
        evaluate(Brightness(), read_dataset(meta), images, progress=False)
    with pytest.raises(CamlocError, match="none of the 6 score maps"):
        score_maps(read_dataset(meta), tmp_path, Settings("wsolevaluation"), progress=False)


def test_score_lists_missing_corrupt_and_malformed_maps(tmp_path):
    meta, images, masks = synthetic_split(tmp_path)
    samples = read_dataset(meta)
    folder = tmp_path / "maps"
    evaluate(Brightness(), samples, images, Settings("wsolevaluation", ("cam",), interval=0.01), masks=masks,
             save_maps=folder, progress=False)
    maps = folder / "cam"
    (maps / "1.png.npy").unlink()
    (maps / "2.png.npy").write_bytes(b"not numpy")
    np.save(maps / "4.png.npy", np.zeros((14, 14)))
    res = score_maps(samples, maps, Settings("wsolevaluation", interval=0.01), masks, progress=False)
    assert [f["image_id"] for f in res.failed] == ["1.png", "2.png", "4.png"]
    assert "not found" in res.failed[0]["reason"] and "224" in res.failed[2]["reason"]
    assert res.metrics["maps"]["maxboxacc_v2"] == pytest.approx(300 / 6) and res.dataset["failed"] == 3


# -- item 7: the field's files ---------------------------------------------------------------------


def test_empty_image_sizes_read_sizes_from_the_images(tmp_path):
    meta, images, masks = synthetic_split(tmp_path)
    settings = Settings("wsolevaluation", ("cam",), interval=0.01)
    known = evaluate(Brightness(), read_dataset(meta), images, settings, masks=masks, save_maps=tmp_path / "maps",
                     progress=False)
    known_r = evaluate(Brightness(), read_dataset(meta), images, Settings("rethinking", ("cam",)), progress=False)
    (meta / "image_sizes.txt").write_text("")
    samples = read_dataset(meta)
    assert all(s.width is None and s.height is None for s in samples) and samples[0].boxes
    unknown = evaluate(Brightness(), samples, images, settings, masks=masks, progress=False)
    assert unknown.metrics == known.metrics and not unknown.failed
    assert evaluate(Brightness(), samples, images, Settings("rethinking", ("cam",)), progress=False).metrics \
        == known_r.metrics
    scored = score_maps(samples, tmp_path / "maps" / "cam", settings, masks, images=images, progress=False)
    assert scored.metrics["maps"]["maxboxacc_v2"] == known.metrics["cam"]["maxboxacc_v2"] and not scored.failed
    with pytest.raises(CamlocError, match="--images"):  # boxes need the image size: where are the images?
        score_maps(samples, tmp_path / "maps" / "cam", settings, masks, progress=False)


def test_openimages_layout_masks_only_and_no_sizes(tmp_path):
    meta, images, masks = synthetic_split(tmp_path)
    ids = [line.split(",")[0] for line in (meta / "image_sizes.txt").read_text().splitlines()]
    (meta / "image_sizes.txt").write_text("")
    (meta / "localization.txt").write_text("\n".join(f"{i},{i}," for i in ids))  # masks, as OpenImages
    (meta / "mask_localization.txt").unlink()
    samples = read_dataset(meta)
    assert all(s.masks and not s.boxes and s.width is None for s in samples)
    settings = Settings("wsolevaluation", ("cam",), interval=0.01)
    res = evaluate(Brightness(), samples, images, settings, masks=masks, save_maps=tmp_path / "maps", progress=False)
    assert res.metrics["cam"]["pxap"] > 95 and "maxboxacc_v2" not in res.metrics["cam"]
    again = score_maps(samples, tmp_path / "maps" / "cam", settings, masks, progress=False)
    assert again.metrics["maps"]["pxap"] == res.metrics["cam"]["pxap"]


def test_partly_filled_image_sizes_is_refused(tmp_path):
    write_split(tmp_path / "m", [("a.png", 0, 100, 80), ("b.png", 1, 60, 60)], ["a.png,1,2,30,40", "b.png,0,0,9,9"])
    (tmp_path / "m" / "image_sizes.txt").write_text("a.png,100,80\n")
    with pytest.raises(MetadataError, match=r"sizes for 1 of 2 images.*b\.png.*leave it empty"):
        read_dataset(tmp_path / "m")


def test_box_conventions_by_name():
    s = Sample("a", 0, 500, 400, ((100.0, 100.0, 300.0, 200.0),))
    assert gt_boxes(s, "rethinking", "authors-cub").tolist() == [[int(100 * 256 / 500 - 16), int(100 * 256 / 400 - 16),
                                                                  int(299 * 256 / 500 - 16), int(199 * 256 / 400 - 16)]]
    assert gt_boxes(s, "rethinking").tolist() == gt_boxes(s, "rethinking", "wsolevaluation").tolist()
    assert gt_boxes(s, "wsolevaluation", "authors-cub").tolist() == [[44, 56, int(299 * 224 / 500), int(199 * 224 / 400)]]
    settings = Settings(box_convention="authors-cub")
    assert settings.box_convention == "authors-cub"
    with pytest.raises(UsageError, match="box convention"):
        Settings(box_convention="voc")


def test_box_convention_reaches_evaluate_and_calibrate(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    samples = read_dataset(meta)
    res = evaluate(Brightness(), samples, images, Settings("rethinking", ("cam",), box_convention="authors-cub"),
                   progress=False)
    assert res.to_dict()["settings"]["box_convention"] == "authors-cub"
    best, _ = calibrate(Brightness(), samples, images, percentiles=(100,), box_convention="authors-cub", progress=False)
    assert best.box_convention == "authors-cub"


# -- item 15: only what was asked for, and a faster V1 ------------------------------------------------


def test_only_the_metrics_asked_for(tmp_path):
    meta, images, masks = synthetic_split(tmp_path)
    samples = read_dataset(meta)
    res = evaluate(Brightness(), samples, images, Settings("wsolevaluation", ("cam",), interval=0.01,
                                                           metrics=("maxboxacc_v2",)), masks=masks, progress=False)
    assert "maxboxacc_v2" in res.metrics["cam"] and "maxboxacc" not in res.metrics["cam"]
    assert "pxap" not in res.metrics["cam"] and tuple(res.to_dict()["settings"]["metrics"]) == ("maxboxacc_v2",)
    with pytest.raises(UsageError, match="unknown metric"):
        Settings(metrics=("maxboxacc", "iou"))
    boxes_only = [Sample(s.image_id, s.label, s.width, s.height, s.boxes) for s in samples]
    with pytest.raises(UsageError, match="masks"):
        evaluate(Brightness(), boxes_only, images, Settings("wsolevaluation", metrics=("pxap",)), progress=False)


@pytest.mark.parametrize("seed", range(4))
def test_contour_counts_match_opencv(seed):
    rng = np.random.default_rng(seed)
    u8 = rng.integers(0, 256, (int(rng.integers(8, 30)), int(rng.integers(8, 30))), dtype=np.uint8)
    if seed % 2:
        u8 = cv2.GaussianBlur(u8, (5, 5), 0)
    counts = contour_counts(u8)
    for t in range(256):
        found, _ = cv2.findContours((u8 > t).astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        assert counts[t] == len(found), t


@pytest.mark.parametrize("seed", range(4))
def test_v1_short_cut_equals_the_reference_on_smooth_maps(seed):
    g = torch.Generator().manual_seed(seed)
    from camloc.cam.boxes import to_uint8, upsample

    u8 = to_uint8(upsample(torch.randn(1, 7, 7, generator=g), (224, 224)))[0].numpy()
    gt = np.array([[40, 30, 150, 170], [10, 10, 60, 60]])
    taus = np.arange(0, 1, 0.002)
    levels = threshold_levels(u8, taus)
    assert (contour_counts(u8)[levels] <= 1).any()  # the short cut is taken somewhere
    assert np.array_equal(largest_contour_table(u8, gt, (50,), levels)[levels],
                          reference_hits(u8, gt, (50,), taus, False))
