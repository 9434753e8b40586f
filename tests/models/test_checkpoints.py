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


def broken_checkpoints(folder) -> dict[str, tuple]:
    """Files given as --checkpoint that hold no loadable checkpoint: ``{name: (path, words of the message)}``."""
    import os
    import pickle
    import zipfile

    state = {"weight": torch.arange(4096.0)}
    torch.save(state, folder / "good.pt")
    torch.save(state, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    whole, legacy = (folder / "good.pt").read_bytes(), (folder / "legacy.pt").read_bytes()
    with zipfile.ZipFile(folder / "other.zip", "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")
    files = {
        "random.pt": (os.urandom(4096), ("is not a camloc/PyTorch checkpoint", "torch.save")),
        "empty.pt": (b"", ("is empty (0 bytes)", "not a camloc/PyTorch checkpoint")),
        "half.pt": (whole[: len(whole) // 2], ("truncated or corrupt PyTorch checkpoint", "copy it again in full")),
        "short.pt": (whole[:-7], ("truncated or corrupt PyTorch checkpoint",)),
        "legacy_half.pt": (legacy[: len(legacy) // 2], ("truncated PyTorch checkpoint", "copy it again in full")),
        "legacy_head.pt": (legacy[:5], ("truncated PyTorch checkpoint",)),
        "plain.pkl": (pickle.dumps({"weight": [1.0, 2.0]}), ("is not a camloc/PyTorch checkpoint",)),
        "notes.txt": (b"weights: 1 2 3\n", ("is not a camloc/PyTorch checkpoint",)),
        "other.zip": ((folder / "other.zip").read_bytes(), ("zip archive but not a camloc/PyTorch checkpoint",)),
    }
    out = {}
    for name, (data, words) in files.items():
        (folder / name).write_bytes(data)
        out[name] = (folder / name, words)
    return out


def test_random_truncated_and_empty_files_are_told_apart(tmp_path):
    """Not "pickles code" for random bytes: what the file is, in words, and what to do; one line each."""
    from camloc.models.checkpoints import read_checkpoint

    for name, (path, words) in broken_checkpoints(tmp_path).items():
        with pytest.raises(CheckpointError) as err:
            read_checkpoint(path)
        msg = str(err.value)
        assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
        assert all(w in msg for w in words), (name, msg)
        assert "pickles code" not in msg and "Error" not in msg, (name, msg)  # no Python type names
    assert torch.equal(read_checkpoint(tmp_path / "good.pt")["weight"], torch.arange(4096.0))
    assert torch.equal(read_checkpoint(tmp_path / "legacy.pt")["weight"], torch.arange(4096.0))


def test_broken_checkpoints_on_the_command_line_are_one_line(tmp_path):
    from click.testing import CliRunner

    from camloc.cli import main

    from ..helpers import CAT, synthetic_split

    (tmp_path / "split").mkdir()
    meta, images, _ = synthetic_split(tmp_path / "split")
    broken = broken_checkpoints(tmp_path)
    for name in ("random.pt", "empty.pt", "half.pt", "legacy_half.pt"):
        path, words = broken[name]
        for args in (["localize", CAT], ["evaluate", "--metadata", str(meta), "--images", str(images), "--quiet"]):
            res = CliRunner().invoke(main, [*args, "--checkpoint", str(path), "--model", "resnet18"])
            lines = res.stderr.strip().splitlines()
            assert res.exit_code == 2 and len(lines) == 1, (name, args[0], res.stderr, res.exception)
            assert lines[0].startswith(f"camloc: error: {path}: ") and all(w in lines[0] for w in words), lines[0]
