"""TAP: exact values against the formula, and retrofitted heads that the extractor treats as exact."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

from camloc import CAMExtractor
from camloc.models.layers.pooling import GlobalAvgPool2d, ThresholdedAvgPool2d, make_pool
from camloc.models.retrofit import CAMHeadModel, retrofit

from .test_model_state import assert_same, snapshot


def tap_direct(x: torch.Tensor, theta: float) -> torch.Tensor:
    """PROTOCOLS.md section 1 written out with loops."""
    b, c = x.shape[:2]
    out = torch.zeros(b, c)
    for i in range(b):
        for j in range(c):
            f = x[i, j].flatten().tolist()
            thr = theta * max(f)
            kept = [v for v in f if v > thr]
            out[i, j] = sum(kept) / max(len(kept), 1)
    return out


def test_tap_values_by_hand():
    x = torch.tensor([[[[0.0, 2.0], [1.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    assert ThresholdedAvgPool2d(0.3)(x).tolist() == [[3.0, 0.0]]  # thr 1.2: keeps 2 and 4; zero channel -> 0
    assert ThresholdedAvgPool2d(0.0)(x).tolist() == [[pytest.approx(7.0 / 3.0), 0.0]]  # strictly positive only
    assert GlobalAvgPool2d()(x).tolist() == [[7.0 / 4.0, 0.0]]  # theta 0 is not GAP


@pytest.mark.parametrize("theta", [0.0, 0.1, 0.5, 0.99])
def test_tap_matches_direct_formula(theta):
    x = torch.relu(torch.randn(3, 5, 4, 6))
    x[0, 1] = 0.0
    x[1, 2] = 1.0  # constant channel: strict > keeps all pixels when theta < 1
    assert torch.allclose(ThresholdedAvgPool2d(theta)(x), tap_direct(x, theta), atol=1e-6)


def test_tap_gradients_flow_and_shapes():
    x = torch.relu(torch.randn(2, 3, 5, 5)).requires_grad_(True)
    y = ThresholdedAvgPool2d(0.1)(x)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert ThresholdedAvgPool2d(0.1, flatten=False)(x).shape == (2, 3, 1, 1)
    with pytest.raises(ValueError):
        make_pool("max")
    with pytest.raises(ValueError):
        ThresholdedAvgPool2d(1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU on this machine")
def test_tap_on_cuda():
    x = torch.relu(torch.randn(4, 8, 7, 7, device="cuda"))
    assert torch.allclose(ThresholdedAvgPool2d(0.1)(x).cpu(), tap_direct(x.cpu(), 0.1), atol=1e-5)


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


def test_vgg_gets_the_papers_head():
    model = torchvision.models.vgg11(num_classes=4).eval()
    r = retrofit(model, "tap", 0.1, input_size=(96, 96))
    assert r.feature_layer == "features.19"  # the ReLU before pool5
    conv = r.per_location[0]
    assert isinstance(conv, nn.Conv2d) and (conv.in_channels, conv.out_channels, conv.kernel_size) == (512, 1024, (3, 3))
    assert r.fc.in_features == 1024
    assert isinstance(r.backbone.classifier, nn.Identity)  # the 120M-parameter MLP is gone
    assert r(torch.randn(1, 3, 96, 96)).shape == (1, 4)
