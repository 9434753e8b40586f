"""Retrofitted TAP / GAP heads: logits kept where they can be, exact maps for the extractor, the
paper's VGG head, and the user's model left exactly as it was."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

import camloc
from camloc import CAMExtractor
from camloc.cam.pooling import tap
from camloc.models.retrofitting import CAMHeadModel, retrofit

from ..helpers import GapLinear, assert_same, hooks_left, snapshot


def test_gap_retrofit_keeps_logits_and_leaves_the_model_alone():
    model = timm.create_model("resnet18", num_classes=7).eval()
    before = snapshot(model)
    r = retrofit(model, "gap", input_size=(96, 96))
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(r(x), model(x), atol=1e-5)
    assert_same(before, snapshot(model))
    assert sum(p.numel() for p in r.parameters()) == sum(p.numel() for p in model.parameters())


def test_densenet_gap_retrofit_applies_the_heads_relu():
    model = torchvision.models.densenet121(num_classes=5).eval()
    r = retrofit(model, "gap", input_size=(96, 96))
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert r.relu and torch.allclose(r(x), model(x), atol=1e-5)


@pytest.mark.parametrize("lib,name", [("timm", "efficientnet_lite0"), ("tv", "mobilenet_v3_small"),
                                      ("timm", "mobilenetv3_small_050"), ("tv", "vgg11"), ("timm", "convnext_atto")])
def test_tap_retrofit_is_exact_for_the_extractor(lib, name):
    model = (timm.create_model(name, num_classes=6) if lib == "timm"
             else torchvision.models.get_model(name, num_classes=6)).eval()
    r = retrofit(model, "tap", 0.1, input_size=(96, 96))
    x = torch.randn(2, 3, 96, 96)
    out = CAMExtractor(r)(x, topk=2, nwc=False, require_exact=True)
    assert out.exact and out.head.pool == "tap" and out.head.theta_tap == 0.1
    # the paper's CAM: classifier weights on the raw (unthresholded) features, no bias
    feats = r.forward_features(x)
    w = r.fc.weight[out.classes]  # B x k x C
    assert torch.allclose(out.maps, torch.einsum("bkc,bchw->bkhw", w, feats), atol=1e-4)
    assert isinstance(r, CAMHeadModel)
    # and the logits are the classifier on TAP of those features, by the formula
    with torch.no_grad():
        assert torch.allclose(r(x), r.fc(tap(feats, 0.1)), atol=1e-5)
        assert torch.allclose(out.logits, r(x), atol=1e-5)


def test_vgg_gets_the_papers_head():
    model = torchvision.models.vgg11(num_classes=4).eval()
    r = retrofit(model, "tap", 0.1, input_size=(96, 96))
    assert r.feature_layer == "features.19"  # the ReLU before pool5
    conv = r.per_location[0]
    assert isinstance(conv, nn.Conv2d) and (conv.in_channels, conv.out_channels, conv.kernel_size) == (512, 1024, (3, 3))
    assert r.fc.in_features == 1024
    assert isinstance(r.backbone.classifier, nn.Identity)  # the 120M-parameter MLP is gone
    assert r(torch.randn(1, 3, 96, 96)).shape == (1, 4)


@pytest.mark.parametrize("make", [lambda: timm.create_model("resnet18", num_classes=7),
                                  lambda: timm.create_model("mobilenetv3_small_050", num_classes=7),
                                  lambda: torchvision.models.mobilenet_v3_small(num_classes=7), lambda: GapLinear(7)],
                         ids=["resnet18", "mobilenetv3", "tv-mobilenetv3", "tiny"])
def test_retrofit_leaves_the_users_model_unchanged_and_hook_free(make):
    model = make()
    model.train()
    list(model.modules())[2].eval()  # mixed training flags must survive as they were
    assert hooks_left(model) == {}
    before = snapshot(model)  # state_dict values, flags, requires_grad, .grad, hooks, attributes
    r = retrofit(model, "tap", 0.1, input_size=(64, 64), num_classes=3)
    assert_same(before, snapshot(model))
    assert not hasattr(model, "camloc_cfg")  # a user's model is never given attributes
    assert hooks_left(model) == {} and hooks_left(r) == {}
    # running and mapping the retrofitted model leaves no hook on either (its backbone may be hooked per call)
    x = torch.randn(2, 3, 64, 64)
    out = CAMExtractor(r)(x, require_exact=True)
    assert out.exact and hooks_left(r) == {} and hooks_left(model) == {}
    assert_same(before, snapshot(model))
    # nothing shared: training the copy cannot move the user's weights
    ours = {p.data_ptr() for p in model.parameters()}
    assert not ours & {p.data_ptr() for p in r.parameters()}
    with torch.no_grad():
        for p in r.parameters():
            p.add_(1.0)
    assert_same(before, snapshot(model))


def test_retrofit_result_knows_its_head():
    r = retrofit(timm.create_model("resnet18", num_classes=5), "tap", 0.25, input_size=(64, 64))
    cfg = camloc.model_config(r)
    assert (cfg.pool, cfg.theta_tap) == ("tap", 0.25) and r.pool.theta == 0.25
    g = retrofit(timm.create_model("resnet18", num_classes=5), "gap", input_size=(64, 64))
    assert (camloc.model_config(g).pool, camloc.model_config(g).theta_tap) == ("gap", None)
