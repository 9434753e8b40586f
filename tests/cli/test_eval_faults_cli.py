"""Bad items at the command line: failed images are listed on stderr, counted in the table and the JSON,
and give exit code 1; label-space warnings are one line on stderr; box convention and metrics by name."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from camloc.cli import main

from ..helpers import synthetic_split, write_split


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_evaluate_lists_counts_and_exits_1_on_a_corrupt_image(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    (images / "3.png").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    common = ["evaluate", "--metadata", str(meta), "--images", str(images), "--quiet", "--cam-class", "top1",
              "--variants", "cam"]
    res = run(*common)
    assert res.exit_code == 1, res.output
    assert "camloc: failed: 3.png: " in res.stderr and "Traceback" not in res.output
    assert "6 images, 1 failed" in res.stdout and "\ncam " in res.stdout
    res = run(*common, "--json", "--protocol", "wsolevaluation", "--interval", "0.01")
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert [f["image_id"] for f in out["failed"]] == ["3.png"] and out["dataset"]["failed"] == 1
    assert out["dataset"]["n"] == 6
    ok = run("evaluate", "--metadata", str(meta), "--images", str(tmp_path / "masks"), "--quiet", "--cam-class",
             "top1", "--variants", "cam", "--limit", "3")
    assert ok.exit_code == 0, ok.output
    assert "3 images, 0 failed" in ok.stdout


def test_calibrate_exits_1_and_still_saves(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    (images / "5.png").write_bytes(b"")
    out = tmp_path / "c"
    res = run("calibrate", "--metadata", str(meta), "--images", str(images), "--quiet", "--out", str(out),
              "--percentiles", "100", "--cam-class", "top1", "--box-convention", "authors-cub")
    assert res.exit_code == 1, res.output
    assert "camloc: failed: 5.png: " in res.stderr and "1 failed" in res.stdout
    saved = json.loads((out / "calibration.json").read_text())
    assert saved["failed"][0]["image_id"] == "5.png" and saved["box_convention"] == "authors-cub"


def test_score_missing_map_is_a_listed_miss_with_exit_1(tmp_path):
    meta, images, masks = synthetic_split(tmp_path)
    maps = tmp_path / "maps"
    maps.mkdir()
    for i in range(6):
        if i != 2:
            m = np.asarray(Image.open(masks / f"{i}.png").convert("L").resize((224, 224)), np.float64) / 255.0
            np.save(maps / f"{i}.png.npy", m)
    res = run("score", "--metadata", str(meta), "--scoremaps", str(maps), "--masks", str(masks), "--interval", "0.01",
              "--quiet", "--json")
    assert res.exit_code == 1, res.output
    assert "camloc: failed: 2.png: " in res.stderr
    out = json.loads(res.stdout)
    assert [f["image_id"] for f in out["failed"]] == ["2.png"]
    row = out["variants"]["maps"]
    assert row["maxboxacc_v2"] == 500 / 6 and "pxap" in row
    assert "maxboxacc" not in row  # V1 only when asked for: --metrics
    assert out["settings"]["metrics"] == ["maxboxacc_v2", "pxap"]
    res = run("score", "--metadata", str(meta), "--scoremaps", str(maps), "--masks", str(masks), "--interval", "0.01",
              "--quiet", "--json",
              "--metrics", "maxboxacc")
    assert set(json.loads(res.stdout)["variants"]["maps"]) >= {"maxboxacc"}
    assert "maxboxacc_v2" not in json.loads(res.stdout)["variants"]["maps"]
    bad = run("score", "--metadata", str(meta), "--scoremaps", str(maps), "--metrics", "maxboxacc,iou")
    assert bad.exit_code == 2 and "camloc: error: unknown metric iou" in bad.stderr


def test_evaluate_warns_about_a_label_space_on_stderr(tmp_path):
    images, meta = tmp_path / "images", tmp_path / "meta"
    images.mkdir()
    rows, boxes = [], []
    for i in range(32):  # white squares labelled 'tench' (ImageNet class 0): never efficientnet_lite0's top-1
        arr = np.zeros((48, 48, 3), np.uint8)
        arr[8 + i % 8:40, 10:38] = 255
        Image.fromarray(arr).save(images / f"{i}.png")
        rows.append((f"{i}.png", 0, 48, 48))
        boxes.append(f"{i}.png,10,{8 + i % 8},38,40")
    write_split(meta, rows, boxes)
    res = run("evaluate", "--metadata", str(meta), "--images", str(images), "--quiet", "--variants", "cam", "--json",
              "--box-convention", "authors-cub")
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if line.startswith("camloc: warning:")]
    assert len(lines) == 1 and "--cam-class top1" in lines[0]
    out = json.loads(res.stdout)
    assert out["warnings"] and out["settings"]["box_convention"] == "authors-cub"
    assert "Warning" not in res.stderr.replace("camloc: warning:", "")  # no Python warning text besides ours


def test_help_names_the_conventions_and_the_slow_metric():
    text = " ".join(run("evaluate", "--help").output.split())
    assert "--box-convention" in text and "x1 = x + w - 1" in text and "authors-cub" in text
    text = " ".join(run("score", "--help").output.split())
    assert "--metrics" in text and "slower" in text and "--images" in text
