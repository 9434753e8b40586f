"""`camloc evaluate` and `camloc calibrate` as a user runs them (real data where present)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from camloc.cli import main

from ..conftest import data_dir
from ..helpers import synthetic_split


def test_cli_evaluate_json_and_plots(tmp_path):
    root = data_dir("imagenet-val")
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(root), "--limit", "24", "--json", "--quiet",
                                    "--protocol", "wsolevaluation", "--interval", "0.01", "--out", str(tmp_path),
                                    "--plots", "--save-maps", "--workers", "2"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["protocol"] == "wsolevaluation" and set(out["variants"]) == {"cam", "nwc", "pas", "nwc+pas"}
    assert {"top1_cls", "top5_cls", "maxboxacc_v2"} <= set(out["variants"]["cam"])
    assert "maxboxacc" not in out["variants"]["cam"]  # V1 only with --metrics maxboxacc (the field reports V2)
    assert out["settings"]["metrics"] == ["maxboxacc_v2", "pxap"] and out["failed"] == []
    assert (tmp_path / "maxboxacc_v2.png").stat().st_size > 1000 and not (tmp_path / "maxboxacc.png").exists()
    saved = json.loads((tmp_path / "result.json").read_text())  # the --out folder holds the result ...
    assert saved["variants"] == out["variants"] and set(saved["curves"]) == set(out["variants"])
    assert len(list((tmp_path / "maps" / "cam").rglob("*.npy"))) == 24  # ... and the maps camloc score reads
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(root), "--limit", "2", "--plots"])
    assert res.exit_code == 2 and "need --out DIR" in res.stderr


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


def test_cli_calibrate_then_evaluate_reports_both_splits(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    out = tmp_path / "calib"
    res = CliRunner().invoke(main, ["calibrate", "--metadata", str(meta), "--images", str(images), "--quiet",
                                    "--out", str(out), "--percentiles", "90,100"])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "calibration.json").read_text())
    assert saved["model"] == "efficientnet_lite0" and saved["n"] == 6 and saved["percentile"] in (90.0, 100.0)
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(meta), "--images", str(images), "--quiet",
                                    "--calibration", str(out), "--variants", "cam", "--limit", "3"])
    assert res.exit_code == 0, res.output
    assert "calibrated on" in res.stdout and "the SAME split" in res.stdout and "\ncalibrated " in res.stdout
    header, *rows = res.stdout.splitlines()[2:]
    assert header.split() == ["variant", "top1_cls", "top5_cls", "gt_known_loc", "top1_loc"]
    for row in rows:  # each number ends where its column's name ends
        assert all(row[header.index(k) + len(k) - 1].isdigit() and row[header.index(k) + len(k):][:1] in ("", " ")
                   for k in header.split()[1:])
    res = CliRunner().invoke(main, ["localize", str(images / "0.png"), "--calibration", str(out), "--json"])
    assert res.exit_code == 0, res.output  # localize takes the folder as well as the file
