"""`camloc localize` as a user runs it: output, options, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from click.testing import CliRunner

import camloc
from camloc.cli import main
from camloc.eval.calibration import Calibration

from ..helpers import CAT, COFFEE


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_localize_json_lines(lite0):
    res = run("localize", CAT, COFFEE, "--json")
    assert res.exit_code == 0, res.output
    lines = [json.loads(l) for l in res.stdout.splitlines()]
    assert [l["image"] for l in lines] == [CAT, COFFEE]
    for l, r in zip(lines, camloc.boxes(lite0, [CAT, COFFEE]), strict=True):  # the notebook API's answer
        assert {"image", "class", "label", "score", "box", "exact", "region", "region_mode"} <= set(l)
        assert l == {**r.to_dict(), "model": "efficientnet_lite0"} and l["exact"] is True  # rows name their model
    assert lines[1]["label"] == "espresso"
    # the region seen by default: the whole 600 x 400 coffee
    assert lines[1]["region"] == [0.0, 0.0, 600.0, 400.0] and lines[1]["region_mode"] == "full"
    # with --resize crop: the coffee resized to 384 x 256, cropped at (80, 16): x 80 x 600/384 = 125 to
    # 304 x 600/384 = 475, y 16 x 400/256 = 25 to 375
    res = run("localize", COFFEE, "--json", "--resize", "crop")
    assert res.exit_code == 0, res.output
    (crop,) = [json.loads(l) for l in res.stdout.splitlines()]
    assert crop["region"] == [125.0, 25.0, 475.0, 375.0] and crop["region_mode"] == "crop"


def test_localize_table_and_options():
    res = run("localize", CAT, COFFEE, "--class", "285", "--no-nwc", "--standard", "max", "--theta", "0.3",
              "--format", "table", "--resize", "crop")
    assert res.exit_code == 0, res.output
    seen, header, *rows = res.stdout.splitlines()
    assert seen == ("model saw: center crop 224x224 of the image resized to 256 px on its shorter side "
                    "(crop_pct 0.875); seen: that region of each image, in its pixels")
    assert header.startswith("image ") and len(rows) == 2 and len(CAT) != len(COFFEE)
    # the columns line up: every value ends where its header ends (numbers) or starts where it starts (text)
    for row in rows:
        assert row[header.index("class"):header.index("class") + 5] == "  285"
        assert row[header.index("label"):].startswith("Egyptian cat ")
        assert row[header.index("score") - 2:header.index("score")] == "  " and row[header.index("score") + 1] == "."
        assert row.index("[") == header.index("box") and row.endswith("exact")
        assert row.index("exact") == header.index("map")
    # the region seen, in whole pixels: the cat's crop 93.96 .. 357.04 x 18.75 .. 281.25, the coffee's
    # 125 .. 475 x 25 .. 375
    assert rows[0][header.index("seen"):].startswith("[  94,   19,  357,  281]  ")
    assert rows[1][header.index("seen"):].startswith("[ 125,   25,  475,  375]  ")
    res = run("localize", CAT, "--resize", "full", "--format", "table")
    seen, header, row = res.stdout.splitlines()
    assert seen.startswith("model saw: the whole image, resized to 224x224; ")
    assert row[header.index("seen"):].startswith("whole image ") and row.endswith("exact")
    assert run("localize", CAT, "--format", "table").stdout == res.stdout  # the whole image is the default


def test_bad_file_is_reported_and_run_goes_on(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    res = run("localize", str(bad), CAT, "--json")
    assert res.exit_code == 1
    lines = [json.loads(l) for l in res.stdout.splitlines()]
    assert lines[0]["image"] == str(bad) and "error" in lines[0]
    assert lines[1]["image"] == CAT and "box" in lines[1]
    assert "broken.jpg" in res.stderr


def test_unknown_model_is_usage_error():
    res = run("localize", CAT, "--model", "efficientnet_lite")
    assert res.exit_code == 2
    assert "unknown model" in res.stderr and "efficientnet_lite0" in res.stderr


def test_conflicting_options():
    assert run("localize", CAT, "--class", "1", "--topk", "2").exit_code == 2
    assert run("localize", CAT, "--batch-size", "0").exit_code == 2


def test_wrong_checkpoint_is_usage_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"w": torch.zeros(3)}, path)
    res = run("localize", CAT, "--checkpoint", str(path))
    assert res.exit_code == 2 and "other.pth" in res.stderr


def test_console_script_installed():
    out = subprocess.run([sys.executable, "-m", "camloc.cli", "localize", CAT, "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["image"] == CAT


def test_class_out_of_range_is_usage_error():
    res = run("localize", CAT, "--class", "1000")
    assert res.exit_code == 2 and "out of range" in res.stderr


def test_localize_with_calibration(tmp_path, lite0):
    path = tmp_path / "c.json"
    Calibration(0.9, 100.0, False, 0.0, "x", "efficientnet_lite0", 1).save(path)
    (b,) = camloc.boxes(lite0, [CAT], nwc=False, standard="max", theta=0.9)
    res = run("localize", CAT, "--json", "--calibration", str(path))
    assert res.exit_code == 0 and json.loads(res.stdout)["box"] == [round(v, 2) for v in b.box]
    res = run("localize", CAT, "--json", "--calibration", str(tmp_path / "none.json"))
    assert res.exit_code == 2 and "no such calibration file" in res.stderr
