"""A trained checkpoint records the resize and crop of its run, and everything that reads it preprocesses that way:
the in-training evaluation, camloc.load_model's Localizer, ``camloc localize`` and ``camloc evaluate``."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import camloc
from camloc.cli import main
from camloc.data.transforms import rethinking_crop, wsol_resize
from camloc.eval import evaluation
from camloc.eval.batches import protocol_preprocess
from camloc.models.checkpoints import config_of_checkpoint, describe, read_checkpoint
from camloc.models.config import ModelConfig, at_train_size, attach, model_config, trained_preprocess
from camloc.train.config import TrainConfig
from camloc.train.loop import train

from ..helpers import two_class_split


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One epoch of a random-init smallcnn at resize 72, crop 64, evaluated on its split, and the input sizes the
    in-training evaluation fed the network (``(protocol transform, batch shape)`` per batch)."""
    root = tmp_path_factory.mktemp("ckpt_pre")
    two_class_split(root)
    cfg = TrainConfig(arch="smallcnn", pretrained=False, train_metadata=str(root / "meta"),
                      train_images=str(root / "images"), val_metadata=str(root / "meta"),
                      val_images=str(root / "images"), resize=72, crop=64, batch_size=4, epochs=1, workers=0,
                      eval_variants=["cam"], plots=False, out=str(root / "run"))
    seen = []
    original = evaluation.sample_batches

    def spy(samples, images, pre, *args):
        for chunk in original(samples, images, pre, *args):
            seen.append((pre, tuple(chunk.x.shape)))
            yield chunk

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "sample_batches", spy)
        model = train(cfg, progress=False, log=lambda line: None)
    return root, model, seen


class InputSizes:
    """The spatial size of every 3-channel input a convolution sees while it is installed (all modules)."""

    def __enter__(self):
        self.sizes: list[tuple[int, int]] = []

        def hook(module, args):
            if isinstance(module, nn.Conv2d) and module.in_channels == 3:
                self.sizes.append(tuple(args[0].shape[-2:]))

        self.handle = nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_the_checkpoint_records_the_run_geometry(run):
    root, _, _ = run
    saved = read_checkpoint(root / "run" / "last.pt")
    assert saved["preprocess"]["input_size"] == [64, 64] and saved["preprocess"]["resize_size"] == [72, 72]
    assert saved["preprocess"]["mode"] == "crop" and saved["train_size"] == [72, 64]
    assert saved["train_config"]["resize"] == 72 and saved["train_config"]["crop"] == 64


def test_the_in_training_evaluation_uses_it(run):
    _, _, seen = run
    sizes = {(p.mode, p.input_size, p.resize_size, shape[-2:]) for p, shape in seen}
    # the rethinking protocol: resize 72 x 72, center crop 64; wsolevaluation: the whole image to 64 x 64
    assert sizes == {("crop", (64, 64), (72, 72), (64, 64)), ("resize", (64, 64), None, (64, 64))}


def test_load_model_and_the_localizer_use_it(run):
    root, model, _ = run
    loaded = camloc.load_model(str(root / "run" / "last.pt"))
    assert model_config(loaded).train_size == (72, 64)
    recorded = model_config(loaded).preprocess
    assert recorded == trained_preprocess(model_config(model).preprocess, 72, 64)
    assert (recorded.input_size, recorded.mode, recorded.resize_size) == ((64, 64), "crop", (72, 72))
    assert camloc.Localizer(loaded, resize="crop").preprocess == recorded  # the checkpoint's own view
    assert camloc.Localizer(loaded).preprocess.input_size == (64, 64)  # and the whole image, at that size
    with InputSizes() as seen, torch.no_grad():
        (r,) = camloc.boxes(loaded, [str(root / "images" / "0.png")])
    assert r.exact and seen.sizes and set(seen.sizes) == {(64, 64)}
    assert protocol_preprocess("wsolevaluation", loaded).input_size == (64, 64)


def test_localize_and_evaluate_from_the_checkpoint_use_it(run):
    root, _, _ = run
    ckpt, image = str(root / "run" / "last.pt"), str(root / "images" / "0.png")
    with InputSizes() as seen:
        res = CliRunner().invoke(main, ["localize", "--checkpoint", ckpt, image, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[0])["image"].endswith("0.png")
    assert seen.sizes and set(seen.sizes) == {(64, 64)}
    for protocol in ("rethinking", "wsolevaluation"):
        with InputSizes() as seen:
            res = CliRunner().invoke(main, ["evaluate", "--checkpoint", ckpt, "--metadata", str(root / "meta"),
                                            "--images", str(root / "images"), "--protocol", protocol,
                                            "--variants", "cam", "--json", "--quiet"])
        assert res.exit_code == 0, res.output
        assert seen.sizes and set(seen.sizes) == {(64, 64)}, protocol


def test_a_model_camloc_did_not_train_keeps_the_protocol_size():
    plain = nn.Conv2d(3, 4, 3)
    assert at_train_size(rethinking_crop(), plain) == rethinking_crop()
    assert at_train_size(wsol_resize(), plain) == wsol_resize()
    trained = attach(nn.Conv2d(3, 4, 3), ModelConfig(train_size=(256, 224)))
    assert at_train_size(rethinking_crop(), trained) == rethinking_crop()  # the default run: the protocols' own
    assert at_train_size(wsol_resize(), trained) == wsol_resize()


def test_describe_round_trips_train_size_and_older_files_have_none():
    cfg = ModelConfig(arch="smallcnn", pool="gap", train_size=(72, 64))
    state = describe(cfg, 2)
    assert state["train_size"] == [72, 64] and config_of_checkpoint(state).train_size == (72, 64)
    older = {k: v for k, v in state.items() if k != "train_size"}
    assert config_of_checkpoint(older).train_size is None
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
