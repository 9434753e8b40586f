"""`camloc evaluate --multilabel` as a user runs it: a multi-label split, a per-class table and its mean, JSON,
result.json, and the flags that do not apply refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from camloc.cli import main
from camloc.train.config import TrainConfig
from camloc.train.loop import train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A multi-label split (red square: class 0, green: class 1, some images with both) and a model trained on it
    for one epoch (its numbers are not the point: the table's layout and the result's keys are)."""
    root = tmp_path_factory.mktemp("multilabel")
    (root / "images").mkdir()
    meta = root / "meta"
    meta.mkdir()
    classes = [(0,), (1,), (0, 1), (1, 0)]
    labels, boxes = [], []
    for i, cs in enumerate(classes):
        arr = np.zeros((48, 48, 3), np.uint8)
        for c in cs:
            arr[10:30, 4 + 24 * c:20 + 24 * c, c] = 255
            boxes.append(f"{i}.png,{4 + 24 * c},10,{19 + 24 * c},29,{c}")
        Image.fromarray(arr).save(root / "images" / f"{i}.png")
        labels += [f"{i}.png,{c}" for c in cs]
    (meta / "image_ids.txt").write_text("".join(f"{i}.png\n" for i in range(len(classes))))
    (meta / "class_labels.txt").write_text("\n".join(labels))
    (meta / "image_sizes.txt").write_text("".join(f"{i}.png,48,48\n" for i in range(len(classes))))
    (meta / "localization.txt").write_text("\n".join(boxes))
    cfg = TrainConfig(arch="smallcnn", pretrained=False, multilabel=True, train_metadata=str(meta),
                      train_images=str(root / "images"), batch_size=2, epochs=1, resize=40, crop=32, workers=0,
                      selection="last", plots=False, out=str(root / "run"))
    train(cfg, progress=False, log=lambda m: None)
    return root


def evaluate(root, *args):
    return CliRunner().invoke(main, ["evaluate", "--metadata", str(root / "meta"), "--images", str(root / "images"),
                                     "--model", str(root / "run" / "last.pt"), "--quiet", *args])


def test_the_per_class_table_and_its_mean(run):
    res = evaluate(run, "--multilabel", "--variants", "cam,nwc")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("protocol rethinking; 4 images, 6 (image, class) pairs, 0 failed; per class")
    cam = lines[lines.index("cam") + 1:lines.index("cam") + 5]
    assert cam[0].split() == ["class", "images", "gt_known_loc"]
    assert [row.split()[:2] for row in cam[1:]] == [["0", "3"], ["1", "3"], ["mean"] + cam[3].split()[1:2]]
    values = [float(row.split()[-1]) for row in cam[1:]]
    assert values[2] == pytest.approx((values[0] + values[1]) / 2, abs=0.006)
    assert "nwc" in lines


def test_json_and_result_file(run, tmp_path):
    res = evaluate(run, "--multilabel", "--variants", "cam", "--protocol", "wsolevaluation", "--interval", "0.05",
                   "--json", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out["classes"]) == {"0", "1"} and out["classes"]["0"]["images"] == 3
    assert {"maxboxacc_v2", "maxboxacc_v2_per_delta"} <= set(out["mean"]["cam"])
    assert "top1_cls" not in out["classes"]["1"]["metrics"]["cam"]
    assert json.loads((tmp_path / "result.json").read_text())["mean"] == out["mean"]


@pytest.mark.parametrize("args, message", [
    (["--multilabel", "--faithfulness"], "camloc: error: --faithfulness does not apply to --multilabel (per-class "
                                         "results); leave it out\n"),
    (["--multilabel", "--cam-class", "top1"], "camloc: error: per-class localization maps each image's labelled "
                                              "classes: it needs cam_class 'gt', not 'top1' (drop --cam-class, or "
                                              "evaluate without --multilabel)\n"),
])
def test_what_does_not_apply_is_one_line(run, args, message):
    res = evaluate(run, *args)
    assert res.exit_code == 2 and res.stderr == message


def test_without_the_flag_the_split_is_refused_as_single_label(run):
    res = evaluate(run)
    assert res.exit_code == 2
    assert res.stderr.endswith("class_labels.txt:4: a second line for 2.png (the first is line 3); give each image "
                               "one line\n") and res.stderr.count("\n") == 1
