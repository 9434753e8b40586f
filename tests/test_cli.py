"""`camloc localize` and `camloc models` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from camloc.cli import main

from .conftest import EXAMPLES

CAT = str(EXAMPLES / "cat.jpg")
COFFEE = str(EXAMPLES / "coffee.jpg")


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_localize_json_lines():
    res = run("localize", CAT, COFFEE, "--json")
    assert res.exit_code == 0, res.output
    lines = [json.loads(l) for l in res.stdout.splitlines()]
    assert [l["image"] for l in lines] == [CAT, COFFEE]
    for l in lines:
        assert {"image", "class", "label", "score", "box", "exact"} <= set(l)
        assert len(l["box"]) == 4 and l["exact"] is True
    assert lines[1]["label"] == "espresso"


def test_localize_table_and_options():
    res = run("localize", CAT, "--class", "285", "--no-nwc", "--standard", "max", "--theta", "0.3", "--format", "table")
    assert res.exit_code == 0, res.output
    header, row = res.stdout.splitlines()
    assert header.startswith("image\tclass") and "\t285\tEgyptian cat\t" in row


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
    import torch

    torch.save({"w": torch.zeros(3)}, path)
    res = run("localize", CAT, "--checkpoint", str(path))
    assert res.exit_code == 2 and "other.pth" in res.stderr


def test_models_command():
    res = run("models", "efficientnet_lite*")
    assert res.exit_code == 0 and "efficientnet_lite0\toffline" in res.stdout


def test_console_script_installed():
    out = subprocess.run([sys.executable, "-m", "camloc.cli", "localize", CAT, "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["image"] == CAT


def test_models_check_reports_cam_kind():
    res = run("models", "torchvision/mobilenet_v3_small", "--check")
    assert res.exit_code == 0 and res.stdout.strip() == "torchvision/mobilenet_v3_small\tdownload\tgradient"
    res = run("models", "resnet18", "--check")
    assert res.stdout.strip() == "resnet18\tdownload\texact"
    res = run("models", "vit_tiny_patch16_224", "--check")
    assert res.stdout.strip().endswith("\tnone")
    assert run("models", "*", "--check").exit_code == 2  # too many to build


def test_class_out_of_range_is_usage_error():
    res = run("localize", CAT, "--class", "1000")
    assert res.exit_code == 2 and "out of range" in res.stderr
