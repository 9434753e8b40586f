"""`camloc export` and `camloc localize --onnx`: the file's results are the torch path's, bad requests one line."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from camloc.cli import main

from ..helpers import CAT, COFFEE


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def rows(res) -> list[dict]:
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_export_then_localize_gives_the_torch_paths_results(tmp_path):
    target = tmp_path / "lite0.onnx"
    res = run("export", "efficientnet_lite0", "--topk", "2", "--out", target)
    assert res.exit_code == 0, res.output
    assert f"wrote {target}" in res.output and "top-2, 0.35 x p90, NWC on, input 224x224" in res.output
    assert "onnxruntime matches torch" in res.output
    got = rows(run("localize", "--onnx", target, CAT, COFFEE, "--topk", "2", "--json", "--out", tmp_path / "out"))
    want = rows(run("localize", CAT, COFFEE, "--topk", "2", "--json"))
    assert [(r["image"], r["class"], r["label"], r["model"]) for r in got] == \
           [(r["image"], r["class"], r["label"], r["model"]) for r in want]
    for a, b in zip(got, want, strict=True):
        assert np.abs(np.subtract(a["box"], b["box"])).max() <= 1.0
        assert {k: a[k] for k in ("region", "region_mode", "standard", "nwc", "method")} == \
               {k: b[k] for k in ("region", "region_mode", "standard", "nwc", "method")}
    out = tmp_path / "out"
    assert (out / "index.html").is_file() and len(list((out / "overlays").glob("*.png"))) == 4
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["onnx"] == str(target) and manifest["model"] == "efficientnet_lite0"
    again = run("localize", "--onnx", target, CAT, COFFEE, "--topk", "2", "--out", out, "--resume", "--json")
    assert again.exit_code == 0, again.output  # the same file and settings: resumable


def test_localize_onnx_refuses_what_the_file_decides(lite0_onnx):
    for extra, named in ((["--standard", "max"], "--standard"), (["--model", "resnet50"], "--model"),
                         (["--no-nwc"], "--nwc/--no-nwc"), (["--class", "3"], "--class"),
                         (["--resize", "crop", "--theta", "0.3"], "--theta, --resize")):
        res = run("localize", "--onnx", lite0_onnx, CAT, *extra)
        assert res.exit_code == 2
        assert "--onnx FILE carries its model and settings: leave out " + named + " (" in res.output
    res = run("localize", "--onnx", lite0_onnx, CAT, "--topk", "4")
    assert res.exit_code == 2 and "topk must be between 1 and 3" in res.output


def test_export_refusals_are_one_line(tmp_path):
    res = run("export", "efficientnet_lite0", "--standard", "li", "--out", tmp_path / "m.onnx")
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "'li' threshold iterates" in res.output
    res = run("export", "no_such_model", "--out", tmp_path / "m.onnx")
    assert res.exit_code == 2 and res.output.startswith("camloc: error: ")
    res = run("localize", "--onnx", tmp_path / "absent.onnx", CAT)
    assert res.exit_code == 2 and "absent.onnx: no such file" in res.output
    assert not (tmp_path / "m.onnx").exists()
