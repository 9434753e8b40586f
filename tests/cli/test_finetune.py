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
