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
    assert res.exit_code == 2 and res.stderr == "camloc: error: --plots needs --out DIR\n"


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


def test_a_checkpoint_is_recorded_as_its_own_architecture(tmp_path):
    """``--checkpoint`` without ``--model``: result.json names the checkpoint's model, not the --model default."""
    import dataclasses

    import torch

    from camloc.models.checkpoints import describe
    from camloc.models.config import model_config
    from camloc.models.wsol import build_wsol

    from ..helpers import two_class_split

    two_class_split(tmp_path)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_wsol("smallcnn", 2, "gap", 0.0, pretrained=False)
    cfg = dataclasses.replace(model_config(model), train_size=(72, 64))
    ckpt = tmp_path / "last.pt"
    torch.save({**describe(cfg, 2), "build": {"builder": "wsol"}, "state_dict": model.state_dict()}, ckpt)
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(tmp_path / "meta"), "--images",
                                    str(tmp_path / "images"), "--checkpoint", str(ckpt), "--quiet", "--json",
                                    "--out", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "eval" / "result.json").read_text())
    assert saved["dataset"]["model"] == "smallcnn_gap" and saved["dataset"]["checkpoint"] == str(ckpt)
    # trained at 64 px, evaluated at 64 px, and said so (not a silent 224)
    assert saved["preprocess"]["input_size"] == [64, 64] and saved["preprocess"]["resize_size"] == [72, 72]
    assert saved["warnings"] == ["the model was trained at 64x64 (resize 72): the rethinking protocol's transform "
                                 "is taken at that size, 64x64, not at 224x224"]
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(tmp_path / "meta"), "--images",
                                    str(tmp_path / "images"), "--model", "efficientnet_lite1", "--quiet", "--limit", "2"])
    assert "camloc: warning: the model's own input is 240x240, the rethinking protocol's 224x224" in res.stderr
    assert "; input 224x224 (center crop);" in res.stdout


def test_cli_evaluate_faithfulness_adds_four_columns_per_row(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    args = ["evaluate", "--metadata", str(meta), "--images", str(images), "--quiet", "--limit", "3",
            "--variants", "cam,nwc", "--cam-class", "top1", "--faithfulness", "--faithfulness-steps", "2"]
    res = CliRunner().invoke(main, args + ["--json", "--out", str(tmp_path / "eval"), "--gallery-images", "0"])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "eval" / "result.json").read_text())
    assert saved["faithfulness"]["steps"] == 2 and saved["faithfulness"]["step"] == 224 * 112
    for row in ("cam", "nwc"):
        got = saved["variants"][row]
        assert 0.0 <= got["deletion"] <= 1.0 and 0.0 <= got["insertion"] <= 1.0
        assert 0.0 <= got["average_drop"] <= 100.0 and got["increase"] in (0.0, 100 / 3, 200 / 3, 100.0)
    assert json.loads(res.stdout)["variants"] == saved["variants"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    header = res.stdout.splitlines()[1].split()
    assert header[-4:] == ["deletion", "insertion", "average_drop", "increase"] and "gt_known_loc" in header
    assert all(len(line.split()) == len(header) for line in res.stdout.splitlines()[2:])  # a number per column
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(meta), "--faithfulness-steps", "4"])
    assert res.exit_code == 2 and res.stderr == "camloc: error: --faithfulness-steps needs --faithfulness\n"
