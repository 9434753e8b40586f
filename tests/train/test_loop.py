"""The training loop: every architecture x method x pooling steps, resume = uninterrupted, DDP = one
process, bf16 on CPU, SyncBN, the checkpoint into camloc.boxes, schedules and lr rules by value,
and bad configs refused with one line before any work."""

from __future__ import annotations

import copy
import math
import os
import socket

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import camloc
from camloc.cli import main
from camloc.models.checkpoints import read_checkpoint
from camloc.models.layers.adl import ADL
from camloc.models.layers.has import HideAndSeek
from camloc.models.layers.pooling import make_pool
from camloc.models.wsol import ARCHITECTURES
from camloc.train.config import TrainConfig, load_config
from camloc.train.loop import build_model, lr_factor, param_groups, train
from camloc.utils.errors import ModelError, UsageError

from ..helpers import assert_same_runs, two_class_split


def tiny_run(tmp_path, **kw) -> TrainConfig:
    """A random-init resnet10t on eight 160 x 120 pictures, 64 px crops, two steps an epoch."""
    if not (tmp_path / "meta").is_dir():
        two_class_split(tmp_path)
    base = dict(arch="resnet10t", pretrained=False, train_metadata=str(tmp_path / "meta"),
                train_images=str(tmp_path / "images"), batch_size=4, epochs=2, resize=72, crop=64, workers=0,
                schedule="constant", lr=0.05, selection="last", plots=False, out=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)


def quiet(cfg: TrainConfig):
    return train(cfg, progress=False, log=lambda m: None)


METHODS = ("cam", "has", "adl")


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_method_and_pool_takes_two_finite_steps(arch):
    built = {}
    for adl in (False, True):  # built once each; the pool and HaS do not change the weights
        cfg = TrainConfig(arch=arch, pretrained=False, adl=adl)
        torch.manual_seed(0)
        built[adl] = build_model(cfg, 3)
        assert built[adl][2]["builder"] == "wsol" and built[adl][1]
        assert sum(isinstance(m, ADL) for m in built[adl][0].modules()) == (len(ARCHITECTURES[arch].adl_positions)
                                                                             if adl else 0)
    for pool in ("gap", "tap"):
        for method in METHODS:
            original, new_layers, _ = built[method == "adl"]
            model = copy.deepcopy(original)
            model.pool = make_pool(pool, 0.1)
            cfg = TrainConfig(arch=arch, lr_rule="new_layers")
            opt = torch.optim.SGD(param_groups(model, cfg, new_layers), lr=0.01)
            has = HideAndSeek(16, 0.5).train() if method == "has" else None
            model.train()
            before = model.fc.weight.detach().clone()
            for _ in range(2):
                x = torch.randn(2, 3, 64, 64)
                loss = nn.functional.cross_entropy(model(has(x) if has else x), torch.tensor([0, 2]))
                assert torch.isfinite(loss), (arch, pool, method)
                opt.zero_grad()
                loss.backward()
                opt.step()
            assert not torch.equal(before, model.fc.weight), (arch, pool, method)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    straight = tiny_run(tmp_path, has=True, has_patch=16, out=str(tmp_path / "a"))
    quiet(straight)
    first = tiny_run(tmp_path, has=True, has_patch=16, out=str(tmp_path / "b"), epochs=1)
    quiet(first)
    quiet(first.replace(epochs=2, resume=True))
    assert read_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 2
    assert_same_runs(tmp_path / "a", tmp_path / "b")


def test_resume_refuses_another_run(tmp_path):
    cfg = tiny_run(tmp_path, epochs=1)
    quiet(cfg)
    with pytest.raises(camloc.CheckpointError, match="cannot resume"):
        quiet(cfg.replace(pool="tap", resume=True, epochs=2))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, values: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(TrainConfig(**values), progress=False, log=lambda m: None)


@pytest.mark.slow
def test_ddp_on_two_processes_equals_one_process_with_the_same_global_batch(tmp_path):
    # timm vgg11 has no batch statistics: the paper's VGG head is retrofitted (conv 1024, GAP, fc)
    common = dict(arch="vgg11", crop=32, resize=40, epochs=2, lr=0.01, momentum=0.9)
    one = tiny_run(tmp_path, batch_size=4, out=str(tmp_path / "one"), **common)
    torch.set_num_threads(1)
    quiet(one)
    two = tiny_run(tmp_path, batch_size=2, out=str(tmp_path / "two"), **common)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), two.to_dict()), nprocs=2, join=True)
    a, b = read_checkpoint(tmp_path / "one" / "last.pt"), read_checkpoint(tmp_path / "two" / "last.pt")
    moved = 0.0
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], rtol=1e-4, atol=1e-6), key
    start = build_model(one, 2)[0].state_dict()  # the same seed builds the same initial weights
    moved = max(float((start[k] - v).abs().max()) for k, v in a["state_dict"].items() if v.is_floating_point())
    assert moved > 1e-4  # the runs trained, so equality is not the initial weights twice
    assert math.isclose(a["history"][-1]["loss"], b["history"][-1]["loss"], rel_tol=1e-4)


def test_bf16_autocast_and_syncbn_run_on_the_cpu(tmp_path):
    model = quiet(tiny_run(tmp_path, amp="bf16", sync_bn=True, epochs=1))
    saved = read_checkpoint(tmp_path / "run" / "last.pt")
    assert math.isfinite(saved["history"][0]["loss"])
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())


def test_checkpoint_loads_into_camloc_boxes_and_localize(tmp_path):
    two_class_split(tmp_path)
    cfg = tiny_run(tmp_path, pool="tap", theta_tap=0.1, val_metadata=str(tmp_path / "meta"),
                   val_images=str(tmp_path / "images"), selection="wsolevaluation", register="tiny_tap",
                   eval_variants=["cam"])
    os.environ["CAMLOC_HOME"] = str(tmp_path / "home")
    try:
        model = quiet(cfg)
        best = tmp_path / "run" / "best.pt"
        saved = read_checkpoint(best)
        assert saved["best"]["metric"] == "val/wsolevaluation/cam/maxboxacc_v2"
        assert "val/rethinking/cam/gt_known_loc" in saved["history"][-1]
        loaded = camloc.load_model(str(best))
        by_name = camloc.load_model("tiny_tap")
        image = str(tmp_path / "images" / "0.png")
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.allclose(loaded(x), by_name(x))
        (r,) = camloc.boxes(loaded, [image])
        assert r.exact and camloc.model_config(loaded).pool == "tap"
        res = CliRunner().invoke(main, ["localize", image, "--model", str(best), "--json"])
        assert res.exit_code == 0, res.output
        if saved["best"]["epoch"] == 2:  # the kept epoch is the last one: same weights as the returned model
            with torch.no_grad():
                assert torch.allclose(loaded(x), model(x), atol=1e-5)
    finally:
        del os.environ["CAMLOC_HOME"]


def test_schedules_by_value():
    cfg = TrainConfig(epochs=40, step_size=30, lr_decay=0.1)
    assert [lr_factor(cfg.replace(schedule="step"), e) for e in (0, 29, 30)] == [1.0, 1.0, 0.1]
    assert [lr_factor(cfg.replace(schedule="wsol_step"), e) for e in (0, 28, 29)] == [1.0, 1.0, 0.1]
    multi = cfg.replace(schedule="multistep", milestones=[60, 120, 180], epochs=200)
    assert [round(lr_factor(multi, e), 6) for e in (59, 60, 120, 199)] == [1.0, 0.1, 0.01, 0.001]
    assert lr_factor(cfg.replace(schedule="cosine"), 20) == pytest.approx(0.5)
    assert lr_factor(cfg.replace(schedule="constant", warmup_epochs=3), 0) == pytest.approx(0.25)


def test_lr_rules_by_value():
    cfg = TrainConfig(arch="vgg16", pretrained=False, lr=0.01)
    model, new_layers, _ = build_model(cfg, 5)
    n_new = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("per_location", "fc")))
    groups = param_groups(model, cfg.replace(lr_rule="new_layers"), new_layers)
    assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.1)]
    assert sum(p.numel() for p in groups[1]["params"]) == n_new
    frozen = param_groups(model, cfg.replace(lr_rule="backbone_lr", backbone_lr_scale=0.0), new_layers)
    assert len(frozen) == 1 and sum(p.numel() for p in frozen[0]["params"]) == n_new


@pytest.mark.parametrize("args,needle", [
    (["lr=abc"], "lr='abc' is not a float"),
    (["lrr=0.1"], "did you mean lr"),
    (["train_metadata=/no/such/folder"], "train_metadata=/no/such/folder: no such folder"),
    (["pool=max"], "pool='max' is not one of gap, tap"),
    (["epochs=0"], "epochs=0 must be at least 1"),
])
def test_bad_config_is_one_line_before_any_work(args, needle):
    res = CliRunner().invoke(main, ["train", *args])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], res.output


def test_a_method_that_does_not_fit_the_architecture(tmp_path):
    with pytest.raises(UsageError, match="adl_positions="):
        quiet(tiny_run(tmp_path, adl=True))
    with pytest.raises(ModelError, match="layer"):
        quiet(tiny_run(tmp_path, adl=True, adl_positions=["backbone.layer9"]))
    with pytest.raises(UsageError, match="has_patch"):
        load_config(None, [f"train_metadata={tmp_path / 'meta'}", "has=true", "has_patch=300"])
    with pytest.raises(UsageError, match="arch=smallcnn has no ImageNet weights.*pretrained=false"):
        load_config(None, [f"train_metadata={tmp_path / 'meta'}", "arch=smallcnn"])
    cfg = load_config(None, [f"train_metadata={tmp_path / 'meta'}", "arch=smallcnn", "pretrained=false"])
    assert cfg.arch == "smallcnn"


@pytest.mark.slow
def test_real_photos_with_the_pretrained_offline_model(tmp_path):
    """efficientnet_lite0's ImageNet weights (offline), HaS and ADL, on 8 CUB photos: a step, a checkpoint,
    and boxes from it."""
    from ..conftest import data_dir

    root = data_dir("cub-train")
    cfg = TrainConfig(arch="efficientnet_lite0", pretrained=True, train_metadata=str(root), batch_size=4, epochs=1,
                      resize=128, crop=112, workers=0, has=True, adl=True, adl_positions=["backbone.blocks.5"],
                      selection="last", plots=False, out=str(tmp_path / "run"), lr=0.001)
    ids = (root / "image_ids.txt").read_text().split()[:8]
    subset = tmp_path / "meta"
    subset.mkdir()
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        lines = [line for line in (root / name).read_text().splitlines() if line.split(",")[0] in ids]
        (subset / name).write_text("\n".join(lines))
    model = quiet(cfg.replace(train_metadata=str(subset), train_images=str(root)))
    saved = read_checkpoint(tmp_path / "run" / "last.pt")
    assert math.isfinite(saved["history"][0]["loss"]) and saved["build"]["adl"]
    loaded = camloc.load_model(str(tmp_path / "run" / "last.pt"))
    (r,) = camloc.boxes(loaded, [str(root / ids[0])])
    assert r.exact and 0 <= r.box[0] < r.box[2] <= r.width
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
