"""`camloc finetune` as a user runs it: an ImageFolder of class subfolders, a loadable checkpoint."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from PIL import Image

import camloc
from camloc.cli import main
from camloc.models.registry import load_finetuned

from ..helpers import hooks_left, two_class_split


@pytest.fixture
def split(tmp_path, monkeypatch):
    """Two classes of painted images and a random-init resnet18 checkpoint (no network needed)."""
    monkeypatch.setenv("CAMLOC_HOME", str(tmp_path / "home"))
    return tmp_path, two_class_split(tmp_path)


def test_image_folder_and_cli(split):
    tmp_path, ckpt = split
    folder = tmp_path / "folder"
    for c in ("red", "green"):
        (folder / c).mkdir(parents=True)
    for i in range(8):
        Image.open(tmp_path / "images" / f"{i}.png").save(folder / ("red" if i % 2 == 0 else "green") / f"{i}.png")
    res = CliRunner().invoke(main, ["finetune", "--model", "resnet18", "--checkpoint", str(ckpt), "--image-folder",
                                    str(folder), "--out", str(tmp_path / "f"), "--epochs", "1", "--batch-size", "4",
                                    "--backbone-lr-scale", "0", "--pool", "gap", "--quiet", "--workers", "0"])
    assert res.exit_code == 0, res.output
    model = load_finetuned(tmp_path / "f" / "last.pt")
    assert camloc.model_config(model).class_names == ("green", "red")
    assert camloc.model_config(model).pool == "gap" and model.fc.out_features == 2
    assert hooks_left(model) == {}


def test_out_is_a_folder_as_everywhere_else(split):
    tmp_path, ckpt = split
    res = CliRunner().invoke(main, ["finetune", "--model", "resnet18", "--checkpoint", str(ckpt), "--metadata",
                                    str(tmp_path / "meta"), "--out", str(tmp_path / "tuned.pth"), "--quiet"])
    assert res.exit_code == 2 and "give a folder" in res.stderr and res.stderr.count("\n") == 1


def test_each_epoch_is_one_line_as_in_camloc_train_and_json_goes_to_stdout(split):
    import json
    import re

    tmp_path, ckpt = split
    res = CliRunner().invoke(main, [
        "finetune", "--model", "resnet18", "--checkpoint", str(ckpt), "--metadata", str(tmp_path / "meta"), "--images",
        str(tmp_path / "images"), "--val-metadata", str(tmp_path / "meta"), "--val-images", str(tmp_path / "images"),
        "--out", str(tmp_path / "f"), "--epochs", "1", "--batch-size", "4", "--backbone-lr-scale", "0", "--workers",
        "0", "--no-register", "--json"])
    assert res.exit_code == 0, res.output
    lines = [line.split("\r")[-1] for line in res.stderr.split("\n") if line]  # a progress bar's last state
    (epoch,) = [line for line in lines if line.startswith("epoch ")]
    # the same form as camloc train's, with GT-known Loc on the val split (selection 'last')
    assert re.fullmatch(r"epoch 1/1  loss \d+\.\d{3}  acc \d+\.\d%  loc \d+\.\d%  \d+\.\d s", epoch), epoch
    assert "acc: training Top-1; loc: val/rethinking/cam/gt_known_loc; every metric in" in res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines()]  # stdout holds the records only
    assert [r["epoch"] for r in records] == [1]
    assert {"loss", "train_top1", "val/rethinking/cam/gt_known_loc", "val/wsolevaluation/nwc+pas/maxboxacc_v2"} <= \
        set(records[-1])
