"""camloc finetune on tiny data: the loss goes down, checkpoints, resume, registration, loading by name."""

from __future__ import annotations

import pytest
import torch

import camloc
from camloc import CheckpointError, ModelError
from camloc.models.checkpoints import read_checkpoint, registered_path
from camloc.train.finetuning import FinetuneConfig, finetune

from ..helpers import hooks_left, two_class_split


@pytest.fixture
def split(tmp_path, monkeypatch):
    """Two classes of painted images and a random-init resnet18 checkpoint (no network needed)."""
    monkeypatch.setenv("CAMLOC_HOME", str(tmp_path / "home"))
    return tmp_path, two_class_split(tmp_path)


def config(tmp_path, ckpt, **kw):
    base = dict(model="resnet18", checkpoint=ckpt and str(ckpt), metadata=str(tmp_path / "meta"),
                images=str(tmp_path / "images"), out=str(tmp_path / "ft"), epochs=2, batch_size=4,
                backbone_lr_scale=0.0, workers=0)
    base.update(kw)
    return FinetuneConfig(**base)


def test_frozen_finetune_writes_checkpoint_and_registers(split):
    tmp_path, ckpt = split
    model = finetune(config(tmp_path, ckpt, val_metadata=str(tmp_path / "meta"), val_images=str(tmp_path / "images")),
                     progress=False, log=lambda m: None)
    saved = read_checkpoint(tmp_path / "ft" / "last.pt")
    assert saved["format"] == "camloc-finetune-1" and saved["arch"] == "resnet18" and saved["pool"] == "tap"
    assert saved["num_classes"] == 2 and saved["epoch"] == 2 and len(saved["history"]) == 2
    validation = [k for k in saved["history"][-1] if k.startswith("val") and k.endswith("gt_known_loc")]
    assert validation and saved["preprocess"]["input_size"] == [224, 224]  # validated every epoch
    assert registered_path("resnet18_tap").is_file()
    loaded = camloc.load_model("resnet18_tap")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
    (r,) = camloc.boxes(loaded, [str(tmp_path / "images" / "0.png")])
    assert r.exact and r.label in ("class 0", "class 1")
    assert camloc.model_config(loaded).class_names == ("class 0", "class 1")
    assert "resnet18_tap" in camloc.list_models("*_tap")
    assert hooks_left(model) == {} and hooks_left(loaded) == {}


def test_finetune_lowers_the_loss(split):
    """The offline pretrained backbone tells red from green: a few epochs of the head must learn it."""
    tmp_path, _ = split
    model = finetune(config(tmp_path, None, model="efficientnet_lite0", epochs=3, register=False), progress=False,
                     log=lambda m: None)
    losses = [h["loss"] for h in read_checkpoint(tmp_path / "ft" / "last.pt")["history"]]
    assert len(losses) == 3 and all(0 < loss < 100 for loss in losses)  # finite
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.5 * losses[0], losses
    assert hooks_left(model) == {}
    assert not model.training  # handed back ready to use
    # the view it trained on (the center crop of its resize, as its checkpoint records), not the whole image
    results = camloc.boxes(model, [str(tmp_path / "images" / f"{i}.png") for i in range(8)], resize="crop")
    assert [r.class_index for r in results] == [i % 2 for i in range(8)]  # it learned the training images


def test_frozen_backbone_is_unchanged_and_scaled_backbone_moves(split):
    tmp_path, ckpt = split
    frozen = finetune(config(tmp_path, ckpt, epochs=1, register=False), progress=False, log=lambda m: None)
    tuned = finetune(config(tmp_path, ckpt, epochs=1, register=False, backbone_lr_scale=0.1, out=str(tmp_path / "b")),
                     progress=False, log=lambda m: None)
    original = torch.load(ckpt, weights_only=True)["conv1.weight"]
    assert torch.equal(frozen.backbone.conv1.weight, original)
    assert not torch.equal(tuned.backbone.conv1.weight, original)
    assert hooks_left(frozen) == {} and hooks_left(tuned) == {}


def test_resume_continues_where_it_stopped(split):
    tmp_path, ckpt = split
    finetune(config(tmp_path, ckpt, epochs=1, register=False), progress=False, log=lambda m: None)
    logs = []
    finetune(config(tmp_path, ckpt, epochs=2, resume=True, register=False), progress=False, log=logs.append)
    saved = read_checkpoint(tmp_path / "ft" / "last.pt")
    assert saved["epoch"] == 2 and [h["epoch"] for h in saved["history"]] == [1, 2]
    assert any("resuming" in m for m in logs)
    with pytest.raises(CheckpointError, match="cannot resume"):
        finetune(config(tmp_path, ckpt, pool="gap", resume=True), progress=False, log=lambda m: None)


def test_unregistered_name_says_how_to_make_one(split):
    with pytest.raises(ModelError, match="camloc finetune --model vgg16 --pool tap"):
        camloc.load_model("vgg16_tap")
