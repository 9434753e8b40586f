"""Local checkpoints: loaded safely (weights_only), checked against the architecture, DDP prefixes."""

from __future__ import annotations

import pytest
import timm
import torch

import camloc
from camloc import CheckpointError


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_checkpoint_round_trip_and_wrong_architecture(tmp_path):
    model = camloc.load_model("resnet18", pretrained=False, num_classes=10)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    loaded = camloc.load_model("resnet18", checkpoint=path, num_classes=10)
    assert same_weights(model, loaded)
    assert not same_weights(model, camloc.load_model("resnet18", pretrained=False, num_classes=10))  # not by chance
    with pytest.raises(CheckpointError, match="does not fit resnet34") as err:
        camloc.load_model("resnet34", checkpoint=path, num_classes=10)
    assert str(path) in str(err.value) and "missing keys" in str(err.value)
    with pytest.raises(CheckpointError, match="--num-classes 10"):
        camloc.load_model("resnet18", checkpoint=path)


def test_ddp_prefix_is_stripped(tmp_path):
    model = camloc.load_model("resnet18", pretrained=False, num_classes=3)
    path = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    loaded = camloc.load_model("resnet18", checkpoint=path, num_classes=3)
    assert same_weights(model, loaded) and not loaded.training


def test_unsafe_and_broken_checkpoints(tmp_path):
    unsafe = tmp_path / "pickled.pth"
    torch.save({"model": timm.create_model("resnet18", num_classes=2)}, unsafe)  # a whole module: pickled code
    with pytest.raises(CheckpointError, match="weights_only"):
        camloc.load_model("resnet18", checkpoint=unsafe, num_classes=2)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pth"):
        camloc.load_model("resnet18", checkpoint=text)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        camloc.load_model("resnet18", checkpoint=tmp_path / "missing.pth")
