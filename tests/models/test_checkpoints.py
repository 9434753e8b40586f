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


def test_a_camloc_checkpoint_names_its_model_and_a_contradicting_name_is_refused(tmp_path):
    """--checkpoint used to override --model in silence: now the model may be left out, and a
    name that is neither the checkpoint's model nor its architecture is one clear error."""
    from click.testing import CliRunner

    from camloc.cli import main
    from camloc.models.checkpoints import describe
    from camloc.models.config import model_config
    from camloc.models.registry import create_model
    from camloc.models.retrofitting import retrofit

    from ..helpers import CAT

    torch.manual_seed(0)
    model = retrofit(create_model("resnet10t", pretrained=False), "tap", 0.1, num_classes=3)
    path = tmp_path / "r10_tap.pt"
    torch.save({**describe(model_config(model), 3), "build": {"builder": "retrofit"},
                "state_dict": model.state_dict()}, path)
    for name in (None, "resnet10t", "resnet10t_tap"):  # left out, the architecture, the checkpoint's own name
        assert same_weights(camloc.load_model(name, checkpoint=path), model)
    with pytest.raises(camloc.ModelError) as err:
        camloc.load_model("resnet50", checkpoint=path)
    msg = str(err.value)
    assert "'resnet50' does not match" in msg and "resnet10t_tap" in msg and "\n" not in msg
    run = CliRunner().invoke
    res = run(main, ["localize", CAT, "--checkpoint", str(path), "--json"])  # the default --model does not clash
    assert res.exit_code == 0, res.output
    res = run(main, ["localize", CAT, "--checkpoint", str(path), "--model", "efficientnet_lite0", "--json"])
    assert res.exit_code == 2 and "does not match" in res.stderr and res.stderr.count("\n") == 1
