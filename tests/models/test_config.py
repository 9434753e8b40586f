"""What camloc remembers about a model: preprocessing from timm's pretrained_cfg, configs of its own
models, and nothing attached to a user's model."""

from __future__ import annotations

import math

import timm

import camloc
from camloc import ModelConfig, Preprocess

from ..helpers import GapLinear


def test_timm_preprocess_comes_from_pretrained_cfg(lite0):
    pre = camloc.preprocess_for(lite0)
    assert pre.input_size == (224, 224) and pre.mode == "crop" and pre.resize_size == 256
    assert pre.interpolation == "bicubic"
    assert camloc.preprocess_for(lite0, "resize").mode == "resize"
    cfg = camloc.model_config(lite0)
    assert (cfg.name, cfg.source) == ("efficientnet_lite0", "offline")


def test_users_model_gets_a_derived_config_and_no_attribute():
    model = timm.create_model("resnet18", num_classes=3)
    cfg = camloc.model_config(model)
    assert cfg.source == "user" and cfg.pool is None and cfg.class_names is None
    crop_pct, interpolation = model.pretrained_cfg["crop_pct"], model.pretrained_cfg["interpolation"]
    assert cfg.preprocess.resize_size == math.floor(224 / crop_pct) and cfg.preprocess.interpolation == interpolation
    assert not hasattr(model, "camloc_cfg")
    plain = camloc.model_config(GapLinear())  # no pretrained_cfg: the ImageNet defaults
    assert plain.preprocess == Preprocess() and not hasattr(GapLinear(), "camloc_cfg")


def test_config_round_trips_through_a_dict():
    cfg = ModelConfig(name="resnet18_tap", arch="resnet18", source="checkpoint",
                      preprocess=Preprocess((192, 160), "crop", (256, 256), interpolation="bicubic"),
                      class_names=("a", "b"), pool="tap", theta_tap=0.1)
    d = cfg.to_dict()
    assert d["class_names"] == ["a", "b"] and d["preprocess"]["resize_size"] == [256, 256]
    assert ModelConfig.from_dict(d) == cfg
