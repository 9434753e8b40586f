"""Models by name, offline weights, checkpoints and the network-failure message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import timm
import torch

import camloc
from camloc import CheckpointError, ModelError
from camloc.models.registry import resolve_name

from .conftest import EXAMPLES


def test_names_resolve():
    assert resolve_name("efficientnet_lite0") == ("offline", "efficientnet_lite0")
    assert resolve_name("resnet50") == ("timm", "resnet50")
    assert resolve_name("convnext_tiny.fb_in1k") == ("timm", "convnext_tiny.fb_in1k")
    assert resolve_name("tv/resnet50") == ("torchvision", "resnet50")
    assert resolve_name("torchvision/googlenet") == ("torchvision", "googlenet")
    assert resolve_name("googlenet") == ("torchvision", "googlenet")


def test_unknown_name_lists_closest():
    with pytest.raises(ModelError, match="closest: resnet50") as err:
        resolve_name("resnet_50")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="unknown model"):
        resolve_name("tv/not_a_model")


def test_offline_default_is_pretrained_and_classifies_the_cat(lite0):
    results = camloc.boxes(lite0, [str(EXAMPLES / "cat.jpg")], topk=5)[0]
    top5, r = [x.class_index for x in results], results[0]
    assert set(top5) & {281, 282, 283, 284, 285}  # the domestic cats
    assert r.label in ("tabby", "tiger cat", "Egyptian cat") and r.exact


def test_checkpoint_round_trip_and_wrong_architecture(tmp_path):
    model = camloc.load_model("resnet18", pretrained=False, num_classes=10)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    loaded = camloc.load_model("resnet18", checkpoint=path, num_classes=10)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True))
    with pytest.raises(CheckpointError, match="does not fit resnet34") as err:
        camloc.load_model("resnet34", checkpoint=path, num_classes=10)
    assert str(path) in str(err.value) and "missing keys" in str(err.value)
    with pytest.raises(CheckpointError, match="--num-classes 10"):
        camloc.load_model("resnet18", checkpoint=path)


def test_ddp_prefix_is_stripped(tmp_path):
    model = camloc.load_model("resnet18", pretrained=False, num_classes=3)
    path = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    camloc.load_model("resnet18", checkpoint=path, num_classes=3)


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


def test_torchvision_download_failure_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: the real download is attempted
    try:
        model = camloc.load_model("tv/resnet18")
    except ModelError as err:
        msg = str(err)
        assert "resnet18" in msg and "--checkpoint" in msg and "efficientnet_lite0" in msg and "\n" not in msg
    else:  # this machine can reach the hub: then the weights are real
        assert isinstance(model, torch.nn.Module)


def test_timm_download_failure_offline(tmp_path):
    code = (
        "import camloc\n"
        "try:\n"
        "    camloc.load_model('resnet18')\n"
        "except camloc.ModelError as e:\n"
        "    print('ERR', e)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "ERR could not fetch pretrained weights for 'resnet18'" in out.stdout, out.stderr[-2000:]


def test_list_models():
    names = camloc.list_models("resnet5*")
    assert "resnet50" in names and "efficientnet_lite0" in camloc.list_models("efficientnet_lite*")
    assert "torchvision/resnet50" in camloc.list_models("torchvision/*")
