"""camloc finetune on tiny data: checkpoints, resume, registration, loading by name."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from click.testing import CliRunner
from PIL import Image

import camloc
from camloc import CheckpointError, ModelError
from camloc.cli import main
from camloc.models.checkpoints import registered_path
from camloc.models.registry import load_finetuned
from camloc.train.finetune import FinetuneConfig, finetune
from camloc.models.checkpoints import read_checkpoint

from .test_evaluate import write_split


@pytest.fixture
def split(tmp_path, monkeypatch):
    """Two classes of painted images and a random-init resnet18 checkpoint (no network needed)."""
    monkeypatch.setenv("CAMLOC_HOME", str(tmp_path / "home"))
    images = tmp_path / "images"
    images.mkdir()
    rows, boxes = [], []
    rng = np.random.default_rng(0)
    for i in range(8):
        arr = np.zeros((120, 160, 3), np.uint8)
        arr[30:90, 40:120, i % 2] = 255
        arr += rng.integers(0, 20, arr.shape, dtype=np.uint8)
        Image.fromarray(arr).save(images / f"{i}.png")
        rows.append((f"{i}.png", i % 2, 160, 120))
        boxes.append(f"{i}.png,40,30,119,89")
    write_split(tmp_path / "meta", rows, boxes)
    ckpt = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), ckpt)
    return tmp_path, ckpt


def config(tmp_path, ckpt, **kw):
    base = dict(model="resnet18", checkpoint=str(ckpt), metadata=str(tmp_path / "meta"),
                images=str(tmp_path / "images"), out=str(tmp_path / "ft.pth"), epochs=2, batch_size=4,
                backbone_lr_scale=0.0, workers=0)
    base.update(kw)
    return FinetuneConfig(**base)


def test_frozen_finetune_writes_checkpoint_and_registers(split):
    tmp_path, ckpt = split
    model = finetune(config(tmp_path, ckpt, val_metadata=str(tmp_path / "meta"), val_images=str(tmp_path / "images")),
                     progress=False, log=lambda m: None)
    saved = read_checkpoint(tmp_path / "ft.pth")
    assert saved["format"] == "camloc-finetune-1" and saved["arch"] == "resnet18" and saved["pool"] == "tap"
    assert saved["num_classes"] == 2 and saved["epoch"] == 2 and len(saved["history"]) == 2
    assert "val_gt_known_loc" in saved["history"][-1] and saved["preprocess"]["input_size"] == [224, 224]
    assert registered_path("resnet18_tap").is_file()
    loaded = camloc.load_model("resnet18_tap")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
    (r,) = camloc.boxes(loaded, [str(tmp_path / "images" / "0.png")])
    assert r.exact and r.label in ("class 0", "class 1", "images")
    assert "resnet18_tap" in camloc.list_models("*_tap")


def test_frozen_backbone_is_unchanged_and_scaled_backbone_moves(split):
    tmp_path, ckpt = split
    frozen = finetune(config(tmp_path, ckpt, epochs=1, register=False), progress=False, log=lambda m: None)
    tuned = finetune(config(tmp_path, ckpt, epochs=1, register=False, backbone_lr_scale=0.1, out=str(tmp_path / "b.pth")),
                     progress=False, log=lambda m: None)
    original = torch.load(ckpt, weights_only=True)["conv1.weight"]
    assert torch.equal(frozen.backbone.conv1.weight, original)
    assert not torch.equal(tuned.backbone.conv1.weight, original)


def test_resume_continues_where_it_stopped(split):
    tmp_path, ckpt = split
    finetune(config(tmp_path, ckpt, epochs=1, register=False), progress=False, log=lambda m: None)
    logs = []
    finetune(config(tmp_path, ckpt, epochs=2, resume=True, register=False), progress=False, log=logs.append)
    saved = read_checkpoint(tmp_path / "ft.pth")
    assert saved["epoch"] == 2 and [h["epoch"] for h in saved["history"]] == [1, 2]
    assert any("resuming" in m for m in logs)
    with pytest.raises(CheckpointError, match="cannot resume"):
        finetune(config(tmp_path, ckpt, pool="gap", resume=True), progress=False, log=lambda m: None)


def test_image_folder_and_cli(split):
    tmp_path, ckpt = split
    folder = tmp_path / "folder"
    for c in ("red", "green"):
        (folder / c).mkdir(parents=True)
    for i in range(8):
        Image.open(tmp_path / "images" / f"{i}.png").save(folder / ("red" if i % 2 == 0 else "green") / f"{i}.png")
    res = CliRunner().invoke(main, ["finetune", "--model", "resnet18", "--checkpoint", str(ckpt), "--image-folder",
                                    str(folder), "--out", str(tmp_path / "f.pth"), "--epochs", "1", "--batch-size", "4",
                                    "--backbone-lr-scale", "0", "--pool", "gap", "--quiet", "--workers", "0"])
    assert res.exit_code == 0, res.output
    model = load_finetuned(tmp_path / "f.pth")
    assert camloc.model_config(model).class_names == ("green", "red")


def test_unregistered_name_says_how_to_make_one(split):
    with pytest.raises(ModelError, match="camloc finetune --model vgg16 --pool tap"):
        camloc.load_model("vgg16_tap")
