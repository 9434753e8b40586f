"""Boxes as a detector's training labels: the COCO instances file, multi-label runs, the boxes' precision, recall."""

from __future__ import annotations

import contextlib
import io
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from camloc.batch.formats import Formatter
from camloc.batch.results import no_class_row
from camloc.cli import main
from camloc.data.imaging import Geometry
from camloc.eval.boxacc import iou_matrix
from camloc.eval.pseudoboxes import Detections, match_image, pseudo_box_quality

from ..conftest import data_dir
from ..helpers import CAT, COFFEE, ROCKET

QUICK = ("--no-overlays", "--quiet", "--workers", "0")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_iou_and_greedy_matching_by_hand():
    # continuous IoU: [0, 10] and [5, 15] overlap 5 of 15; inclusive pixels would say 6 of 16
    coco_iou = partial(iou_matrix, inclusive=False)
    assert coco_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == pytest.approx(1 / 3)
    assert coco_iou(np.array([[0, 0, 10, 10]]), np.array([[10, 0, 20, 10]]))[0, 0] == 0.0
    # the first (best-scored) detection takes the true box it overlaps most; the second finds it taken
    truth = np.array([[0, 0, 10, 10], [100, 100, 110, 110]])
    assert match_image(np.array([[0, 0, 10, 10], [0, 0, 10, 9]]), truth).tolist() == [True, False]
    # IoU 0.5 exactly counts: [0, 10] and [0, 5] (area 50 of 100)
    assert match_image(np.array([[0, 0, 10, 5]]), truth).tolist() == [True]
    assert match_image(np.array([[0, 0, 10, 4.9]]), truth).tolist() == [False]


def test_precision_recall_and_best_f1_by_hand():
    dets = [("a", 0.9, 1, (0, 0, 10, 10)), ("a", 0.8, 1, (50, 50, 60, 60)), ("b", 0.7, 2, (0, 0, 20, 20)),
            ("b", 0.3, 2, (30, 30, 40, 40))]
    truth = {"a": ((0, 0, 10, 10),), "b": ((0, 0, 20, 20), (30, 30, 40, 40), (60, 60, 70, 70))}
    d = Detections.match(dets, truth)
    assert d.scores.tolist() == [0.9, 0.8, 0.7, 0.3] and d.hits.tolist() == [True, False, True, True]
    assert d.objects == 4
    assert d.at(0.0) == (4, 0.75, 0.75) and d.at(0.75) == (2, 0.5, 0.25) and d.at(0.95) == (0, 1.0, 0.0)
    # F1 after each detection: 0.4, 0.333, 0.571, 0.75: the lowest threshold keeps all four
    assert d.best_f1() == pytest.approx((0.3, 0.75, 0.75, 0.75))
    # own class: true boxes of class 1 in a, none of class 2 in b -> b's detections are false positives
    own = Detections.match(dets, {("a", 1): truth["a"], ("b", 5): truth["b"]}, by_class=True)
    assert own.hits.tolist() == [True, False, False, False] and own.objects == 4


def test_ap50_is_pycocotools_ap_at_iou_half():
    """The AP50 of the report is what pycocotools' COCOeval says at IoU 0.5, classes ignored."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    images, annotations, results, dets, truth = [], [], [], [], {}
    for i in range(1, 21):
        images.append({"id": i, "width": 200, "height": 200, "file_name": f"{i}.jpg"})
        true = []
        for _ in range(rng.integers(0, 4)):
            x, y, w, h = (float(v) for v in rng.uniform([0, 0, 20, 20], [120, 120, 80, 80]))
            true.append((x, y, x + w, y + h))
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1, "bbox": [x, y, w, h],
                                "area": w * h, "iscrowd": 0})
        truth[f"{i}.jpg"] = tuple(true)
        for k in range(rng.integers(0, 5)):
            if true and k < len(true):  # near a true box (a hit or a near miss), else anywhere
                x0, y0, x1, y1 = true[k]
                box = tuple(float(v) for v in np.array([x0, y0, x1, y1]) + rng.normal(0, 8, 4))
            else:
                x, y = rng.uniform(0, 150, 2)
                box = (float(x), float(y), float(x + rng.uniform(10, 50)), float(y + rng.uniform(10, 50)))
            box = (box[0], box[1], max(box[2], box[0] + 1), max(box[3], box[1] + 1))
            score = float(rng.uniform())
            dets.append((f"{i}.jpg", score, 7, box))
            results.append({"image_id": i, "category_id": 1, "score": score,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.params.useCats = 0
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ours = Detections.match(dets, truth)
    assert 0.1 < ours.ap50() < 0.95  # a curve with something to get right
    assert ours.ap50() == pytest.approx(evaluation.stats[1], abs=1e-9)


def test_instances_format_lists_images_without_boxes_and_leaves_errors_out():
    out = io.StringIO()
    f = Formatter("coco-instances", out)  # no labels: the categories that occur, by the rows' labels
    f({"image": "a.jpg", "class": 3, "label": "dog", "score": 0.5, "boxes": [[1, 2, 11, 22], [30, 30, 40, 50]],
       "width": 64, "height": 48})
    f({"image": "b.jpg", "error": "cannot read it"})
    f(no_class_row("c.jpg", Geometry.identity(32, 16), 0.5))
    f.close()
    coco = json.loads(out.getvalue())
    assert coco["images"] == [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                              {"id": 2, "file_name": "c.jpg", "width": 32, "height": 16}]
    assert [a["bbox"] for a in coco["annotations"]] == [[1, 2, 10, 20], [30, 30, 10, 20]]
    assert [(a["id"], a["image_id"], a["category_id"], a["area"], a["iscrowd"], a["score"])
            for a in coco["annotations"]] == [(1, 1, 4, 200, 0, 0.5), (2, 1, 4, 200, 0, 0.5)]
    assert coco["categories"] == [{"id": 4, "name": "dog", "class": 3}]


def _metadata(root: Path, rows: list[tuple[str, int, tuple[float, ...]]]) -> Path:
    root.mkdir()
    (root / "image_ids.txt").write_text("".join(f"{i}\n" for i, _, _ in rows))
    (root / "class_labels.txt").write_text("".join(f"{i},{c}\n" for i, c, _ in rows))
    (root / "localization.txt").write_text("".join(f"{i},{','.join(map(str, b))}\n" for i, _, b in rows))
    return root


def test_coco_instances_file_loads_in_coco_readers_and_is_scored(tmp_path, lite0):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from torchvision.datasets import CocoDetection

    # true boxes: the cat where lite0 finds it (about [81, 68, 411, 300], class 285), the coffee somewhere else
    meta = _metadata(tmp_path / "meta", [("images/cat.jpg", 285, (80, 60, 410, 300)),
                                        ("images/coffee.jpg", 0, (0, 0, 40, 40))])
    out = tmp_path / "out"
    res = run("localize", CAT, COFFEE, ROCKET, "--format", "coco-instances", "--out", out, "--metadata", meta, *QUICK)
    assert res.exit_code == 0, res.output
    coco = COCO(str(out / "instances.json"))
    assert json.loads(res.stdout) == json.loads((out / "instances.json").read_text())  # stdout: the same file
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [coco.imgs[i]["file_name"] for i in sorted(coco.imgs)] == [CAT, COFFEE, ROCKET]
    assert [(coco.imgs[i]["width"], coco.imgs[i]["height"]) for i in sorted(coco.imgs)] == [
        (r["width"], r["height"]) for r in rows]
    assert len(coco.cats) == 1000 and coco.cats[286] == {"id": 286, "name": "Egyptian cat", "class": 285}
    for ann, r in zip(coco.loadAnns(sorted(coco.anns)), rows, strict=True):
        x0, y0, x1, y1 = r["box"]
        assert ann["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=0.011)
        assert ann["category_id"] == r["class"] + 1 and ann["score"] == r["score"] and ann["iscrowd"] == 0
    image, target = CocoDetection(root="/", annFile=str(out / "instances.json"))[0]
    assert image.size == (451, 300) and target[0]["bbox"] == coco.anns[1]["bbox"]
    # the rocket is not in the metadata: left out; the cat's box hits, the coffee's misses
    report = json.loads((out / "pseudo_boxes.json").read_text())
    assert report["images"] == 2 and report["not_listed"] == 1
    assert report["any_class"]["true_boxes"] == 2 and report["any_class"]["detections"] == 2
    assert report["any_class"]["by_score"][0] == {"score_threshold": min(r["score"] for r in rows[:2]), "boxes": 2,
                                                  "precision": 0.5, "recall": 0.5}
    assert report["own_class"]["best_f1"]["recall"] == 0.5  # the cat's class is 285: its own class too
    assert "AP50" in res.stderr and "1 images it does not list left out" in res.stderr
    assert (out / "pseudo_boxes.png").stat().st_size > 10_000


def test_multilabel_cli_rows_resume_and_names(tmp_path):
    out = tmp_path / "out"
    # lite0's sigmoid scores of the cat: several classes above 0.99, none of the other photos above 0.99999
    res = run("localize", CAT, COFFEE, "--multilabel", "--score-threshold", "0.99", "--max-classes", "3", "--out",
              out, "--json", "--quiet", "--workers", "0")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    cat = [r for r in rows if r["image"] == CAT]
    assert len(cat) == 3 and all(r["score"] > 0.99 for r in cat)
    assert [r["score"] for r in cat] == sorted((r["score"] for r in cat), reverse=True)
    assert {r["overlay"] for r in cat} == {f"overlays/cat.class{r['class']}.png" for r in cat}
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["multilabel"] == [0.99, 3]
    none = tmp_path / "none"
    res = run("localize", CAT, COFFEE, "--multilabel", "--score-threshold", "0.99999", "--out", none, "--format",
              "table", "--quiet", "--workers", "0")
    assert res.exit_code == 0, res.output
    assert res.stdout.count("no class scores above 0.99999") == 2
    journal = [json.loads(line) for line in (none / "results.jsonl").read_text().splitlines()]
    assert [(r["image"], r["class"], r["boxes"], r["width"]) for r in journal] == [(CAT, None, [], 451),
                                                                                  (COFFEE, None, [], 600)]
    assert "2 images had no class above the score threshold: cat.jpg, coffee.jpg" in (none / "index.html").read_text()
    # resumed: both images are done, nothing is redone or written twice
    res = run("localize", CAT, COFFEE, "--multilabel", "--score-threshold", "0.99999", "--out", none, "--resume",
              "--json", "--quiet", "--workers", "0")
    assert res.exit_code == 0, res.output
    assert res.stdout == "" and (none / "results.jsonl").read_text().count("\n") == 2
    # the settings are compared on resume: another threshold is another run
    res = run("localize", CAT, "--multilabel", "--score-threshold", "0.9", "--out", none, "--resume", *QUICK)
    assert res.exit_code == 2 and "multilabel: [0.99999, 100] then, [0.9, 100] now" in res.output


@pytest.mark.parametrize("args, message", [
    (("--multilabel", "--topk", "2"), "--multilabel localizes every class above --score-threshold: leave out"),
    (("--score-threshold", "0.3"), "--score-threshold needs --multilabel"),
    (("--max-classes", "3"), "--max-classes needs --multilabel"),
    (("--multilabel", "--score-threshold", "1.5"), "--score-threshold 1.5: give a sigmoid score in [0, 1)"),
    (("--multilabel", "--onnx", "m.onnx"), "--onnx files score classes by softmax"),
])
def test_multilabel_usage_errors_are_one_line(args, message):
    res = run("localize", CAT, *args)
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_metadata_without_boxes_or_missing_is_one_line(tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "image_ids.txt").write_text("cat.jpg\n")
    (bare / "class_labels.txt").write_text("cat.jpg,3\n")
    res = run("localize", CAT, "--metadata", bare, *QUICK)
    assert res.exit_code == 2 and "holds no boxes" in res.output and "Traceback" not in res.output
    res = run("localize", CAT, "--metadata", tmp_path / "nowhere", *QUICK)
    assert res.exit_code == 2 and "image_ids.txt" in res.output and "Traceback" not in res.output


def test_pseudo_boxes_on_real_coco_photos(tmp_path):
    """Every box of a run on the COCO photos is scored, and the numbers follow from the journal."""
    coco = data_dir("coco-masks")
    images = sorted(str(p) for p in (coco / "images").rglob("*.jpg"))[:12]
    out = tmp_path / "out"
    res = run("localize", *images, "--metadata", coco, "--out", out, "--format", "coco-instances", *QUICK)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    from camloc.data.metadata import read_dataset

    quality = pseudo_box_quality(rows, read_dataset(coco), str(coco))
    report = json.loads((out / "pseudo_boxes.json").read_text())
    assert report == json.loads(json.dumps(quality.to_dict()))
    assert report["images"] == len(images) and report["any_class"]["detections"] == len(images)
    assert 0 < report["any_class"]["ap50"] < 1
