"""`camloc models`: names by pattern, and with --check the kind of map each model gives."""

from __future__ import annotations

from click.testing import CliRunner

from camloc.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_models_command():
    res = run("models", "efficientnet_lite*")
    assert res.exit_code == 0 and "efficientnet_lite0\toffline" in res.stdout


def test_models_check_reports_cam_kind():
    res = run("models", "torchvision/mobilenet_v3_small", "--check")
    assert res.exit_code == 0 and res.stdout.strip() == "torchvision/mobilenet_v3_small\tdownload\tgradient"
    res = run("models", "resnet18", "--check")
    assert res.stdout.strip() == "resnet18\tdownload\texact"
    res = run("models", "vit_tiny_patch16_224", "--check")
    assert res.stdout.strip().endswith("\tnone")
    assert run("models", "*", "--check").exit_code == 2  # too many to build
