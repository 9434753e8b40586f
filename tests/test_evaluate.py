"""Metrics with hand-computed values, metadata edge cases, and whole evaluations on small data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from camloc.cli import main
from camloc.eval.evaluate import evaluate, score_maps
from camloc.eval.protocols import Settings, gt_boxes
from camloc.data.metadata import MetadataError, Sample, read_dataset
from camloc.eval.metrics import FixedThreshold, MaxBoxAcc, PxAP

from .conftest import data_dir
from .test_geometry import Brightness


def test_pxap_by_hand():
    acc = PxAP(np.array([0.0, 0.5]))  # edges 0, 0.5, 1, 2, 3
    scores = np.array([[0.9, 0.2], [0.7, 0.6]])
    mask = np.array([[True, False], [False, True]])
    acc.add(scores, mask)
    # thresholds high -> low: bins [2,3), [1,2), [0.5,1), [0,0.5): fg 0,0,2,0; bg 0,0,1,1
    precision, recall = acc.curve()
    assert np.allclose(recall, [0, 0, 1, 1])
    assert np.allclose(precision[2:], [2 / 3, 2 / 4])
    assert acc.compute() == pytest.approx(100 * 2 / 3)


def test_pxap_ignores_ignored_pixels():
    acc = PxAP(np.array([0.0, 0.5]))
    scores = np.array([[0.9, 0.8]])
    acc.add(scores, np.array([[True, False]]), ignore=np.array([[False, True]]))
    assert acc.compute() == pytest.approx(100.0)


def test_maxboxacc_by_hand():
    acc = MaxBoxAcc(np.array([0.1, 0.2, 0.3]), (30, 50))
    acc.add(np.array([[True, False], [True, True], [False, False]]))
    acc.add(np.array([[True, True], [False, False], [False, False]]))
    res = acc.compute()
    assert res["per_delta"][30] == {"acc": 100.0, "tau": 0.1}
    assert res["per_delta"][50] == {"acc": 50.0, "tau": 0.1}
    assert res["mean"] == 75.0


def test_fixed_threshold_by_hand():
    acc = FixedThreshold()
    acc.add(0.5, True, True)
    acc.add(0.49, True, True)
    acc.add(0.8, False, True)
    acc.add(0.1, False, False)
    assert acc.compute() == {"top1_cls": 50.0, "top5_cls": 75.0, "gt_known_loc": 50.0, "top1_loc": 25.0}


def test_gt_box_conventions():
    s = Sample("a", 0, 500, 400, ((10.0, 20.0, 499.0, 399.0),))
    # rethinking: int(v * 256 / W - 16), clipped to [0, 223]
    assert gt_boxes(s, "rethinking").tolist() == [[0, 0, 223, 223]]
    s2 = Sample("a", 0, 500, 400, ((100.0, 100.0, 300.0, 200.0),))
    assert gt_boxes(s2, "rethinking").tolist() == [[int(100 * 256 / 500 - 16), int(100 * 256 / 400 - 16),
                                                    int(300 * 256 / 500 - 16), int(200 * 256 / 400 - 16)]]
    # wsolevaluation: int(v * 224 / W), no clipping
    assert gt_boxes(s2, "wsolevaluation").tolist() == [[44, 56, 134, 112]]


def write_split(folder, rows, boxes, final_newline=False, masks=None):
    folder.mkdir(parents=True, exist_ok=True)
    end = "\n" if final_newline else ""
    (folder / "image_ids.txt").write_text("\n".join(r[0] for r in rows) + end)
    (folder / "class_labels.txt").write_text("\n".join(f"{r[0]},{r[1]}" for r in rows) + end)
    (folder / "image_sizes.txt").write_text("\n".join(f"{r[0]},{r[2]},{r[3]}" for r in rows) + end)
    (folder / "localization.txt").write_text("\n".join(boxes) + end)
    if masks is not None:
        (folder / "mask_localization.txt").write_text("\n".join(masks) + end)


def test_metadata_edge_cases(tmp_path):
    write_split(tmp_path / "m", [("a.png", 0, 100, 80), ("b.png", 1, 60, 60)],
                ["a.png,1,2,30,40", "a.png,50,10,99,79", "b.png,0,0,59,59"])
    samples = read_dataset(tmp_path / "m")
    assert [len(s.boxes) for s in samples] == [2, 1] and samples[0].boxes[1] == (50, 10, 99, 79)
    write_split(tmp_path / "bad", [("a.png", 0, 100, 80)], ["a.png,1,2,30"])
    with pytest.raises(MetadataError, match="localization.txt:1"):
        read_dataset(tmp_path / "bad")
    write_split(tmp_path / "out", [("a.png", 0, 100, 80)], ["a.png,1,2,130,40"])
    with pytest.raises(MetadataError, match="outside its 100x80 image"):
        read_dataset(tmp_path / "out")
    write_split(tmp_path / "masks", [("a.png", 0, 100, 80)], ["a.png,m/a1.png,", "a.png,m/a2.png,ig/a.png"], True)
    (s,) = read_dataset(tmp_path / "masks")
    assert s.masks == ("m/a1.png", "m/a2.png") and s.ignore == ("ig/a.png",) and not s.boxes


def synthetic_split(tmp_path):
    """White rectangles on black: the Brightness model's CAM is the rectangle itself."""
    images, meta = tmp_path / "images", tmp_path / "meta"
    images.mkdir()
    (tmp_path / "masks").mkdir()
    rows, boxes, masks = [], [], []
    rng = np.random.default_rng(0)
    for i in range(6):
        w, h = int(rng.integers(200, 400)), int(rng.integers(200, 400))
        x0, y0 = int(rng.integers(20, w // 3)), int(rng.integers(20, h // 3))
        x1, y1 = int(rng.integers(2 * w // 3, w - 20)), int(rng.integers(2 * h // 3, h - 20))
        arr = np.zeros((h, w, 3), np.uint8)
        arr[y0:y1, x0:x1] = 255
        Image.fromarray(arr).save(images / f"{i}.png")
        Image.fromarray(arr[..., 0]).save(tmp_path / "masks" / f"{i}.png")
        rows.append((f"{i}.png", 0, w, h))
        boxes.append(f"{i}.png,{x0},{y0},{x1 - 1},{y1 - 1}")
        masks.append(f"{i}.png,{i}.png,")
    write_split(meta, rows, boxes, masks=masks)
    return meta, images, tmp_path / "masks"


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
    again, _ = score_maps(samples, tmp_path / "maps" / "cam", Settings("wsolevaluation", ("cam",), interval=0.01),
                          masks, progress=False)
    for key in ("maxboxacc", "maxboxacc_v2", "pxap"):
        assert again[key] == w.metrics["cam"][key]


def test_label_beyond_model_classes(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    samples = [Sample(s.image_id, 7, s.width, s.height, s.boxes) for s in read_dataset(meta)]
    from camloc import UsageError

    with pytest.raises(UsageError, match="cam-class top1"):
        evaluate(Brightness(), samples, images, progress=False)
    r = evaluate(Brightness(), samples, images, Settings(cam_class="top1"), progress=False)
    assert r.metrics["cam"]["top1_cls"] is None and r.metrics["cam"]["gt_known_loc"] == 100.0


def test_missing_image_names_file(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    (images / "3.png").unlink()
    from camloc import ImageError

    with pytest.raises(ImageError, match="3.png"):
        evaluate(Brightness(), read_dataset(meta), images, progress=False)


def test_cli_evaluate_json_and_plots(tmp_path):
    root = data_dir("imagenet-val")
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(root), "--limit", "24", "--json", "--quiet",
                                    "--protocol", "wsolevaluation", "--interval", "0.01", "--plots", str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["protocol"] == "wsolevaluation" and set(out["variants"]) == {"cam", "nwc", "pas", "nwc+pas"}
    assert {"top1_cls", "top5_cls", "maxboxacc", "maxboxacc_v2"} <= set(out["variants"]["cam"])
    assert (tmp_path / "maxboxacc.png").stat().st_size > 1000


def test_cli_evaluate_rethinking_on_real_data():
    root = data_dir("imagenet-val")
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(root), "--limit", "48", "--json", "--quiet",
                                    "--variants", "cam,nwc+pas"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["settings"]["theta_max"] == 0.2 and out["settings"]["theta_pas"] == 0.35
    cam = out["variants"]["cam"]
    assert 40 <= cam["gt_known_loc"] <= 90 and 50 <= cam["top1_cls"] <= 90
    assert cam["top1_loc"] <= min(cam["gt_known_loc"], cam["top1_cls"])


def test_pxap_on_real_masks():
    root = data_dir("coco-masks")
    samples = read_dataset(root)[:16]
    import camloc

    r = evaluate(camloc.load_model(), samples, root, Settings("wsolevaluation", ("cam",), interval=0.01),
                 progress=False)
    assert 20 < r.metrics["cam"]["pxap"] < 90
