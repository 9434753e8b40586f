"""Exact CAM values on tiny models, and the mean(M) + b = logit invariant for every pooled form."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from camloc import CAMExtractor, ModelError

from ..helpers import MLPHead, Tiny

X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 0.0]]]])  # 1 x 2 x 2 x 2
W = torch.tensor([[1.0, -1.0], [0.5, 2.0]])
B = torch.tensor([0.1, -0.2])


def test_exact_values_by_hand():
    ex = CAMExtractor(Tiny(W, B))
    out = ex(X, classes=[[0, 1]], nwc=False)
    assert out.exact and out.head.pool == "avg" and out.head.feature_layer == "features"
    assert torch.allclose(out.maps[0, 0], torch.tensor([[1.0, 1.0], [3.0, 4.0]]))
    assert torch.allclose(out.maps[0, 1], torch.tensor([[0.5, 3.0], [1.5, 2.0]]))
    assert torch.allclose(out.bias[0], B)
    # logit 0 = 1 * 2.5 - 1 * 0.25 + 0.1 = 2.35 = mean(M_0) + b_0
    assert torch.allclose(out.logits[0], torch.tensor([2.35, 0.5 * 2.5 + 2 * 0.25 - 0.2]))


def test_nwc_clamps_negative_weights_in_map_only():
    ex = CAMExtractor(Tiny(W, B))
    out = ex(X, classes=0, nwc=True)
    assert torch.allclose(out.maps[0, 0], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # the -1 weight dropped
    assert torch.allclose(out.logits[0, 0], torch.tensor(2.35))  # logits unchanged


def test_relu_before_pool_is_recognised():
    x = X.clone()
    x[0, 1, 1, 1] = -5.0  # a negative feature that the head's ReLU removes
    out = CAMExtractor(Tiny(W, B, pool="reluavg"))(x, classes=0, nwc=False)
    assert out.head.relu and out.exact
    assert torch.allclose(out.maps[0, 0], torch.tensor([[1.0, 1.0], [3.0, 4.0]]))


def test_max_pool_head_puts_max_term_at_argmax():
    out = CAMExtractor(Tiny(W, B, pool="max"))(X, classes=0, nwc=False)
    assert out.head.pool == "max"
    # W0 . max = 1 * 4 - 1 * 1; placed x4 (H W) at each channel's arg-max
    expected = torch.tensor([[0.0, -4.0], [0.0, 16.0]])
    assert torch.allclose(out.maps[0, 0], expected)
    assert torch.allclose(out.maps.mean((2, 3)) + out.bias, out.logits.gather(1, out.classes))


@pytest.mark.parametrize("pool", ["avg", "max", "avgmax", "catavgmax"])
def test_timm_pool_types_are_exact(pool):
    model = timm.create_model("resnet18", num_classes=10, global_pool=pool)
    x = torch.randn(2, 3, 96, 96)
    out = CAMExtractor(model)(x, topk=3, nwc=False)
    assert out.exact and out.head.pool == pool
    recon = out.maps.mean((2, 3)) + out.bias
    assert torch.allclose(recon, out.logits.gather(1, out.classes), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("norm", [nn.LayerNorm(2), nn.BatchNorm1d(2)])
def test_norm_after_pooling_folds_into_weights(norm):
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.5, -0.5]))
        norm.bias.copy_(torch.tensor([0.2, 0.3]))
        if isinstance(norm, nn.BatchNorm1d):
            norm.running_mean.copy_(torch.tensor([1.0, -1.0]))
            norm.running_var.copy_(torch.tensor([2.0, 0.5]))
    model = Tiny(W, B, norm=norm)
    x = torch.randn(3, 2, 4, 4)
    out = CAMExtractor(model)(x, topk=2, nwc=False)
    assert out.exact and out.head.norm == "norm"
    recon = out.maps.mean((2, 3)) + out.bias
    assert torch.allclose(recon, out.logits.gather(1, out.classes), rtol=1e-5, atol=1e-5)


def test_gradient_method_equals_exact_cam_on_gap_linear_head():
    model = timm.create_model("resnet18", num_classes=7)
    x = torch.randn(2, 3, 64, 64)
    exact = CAMExtractor(model)(x, topk=2, nwc=True)
    grad = CAMExtractor(model, method="gradient")(x, topk=2, nwc=True)
    assert exact.exact and not grad.exact
    assert torch.equal(exact.classes, grad.classes)
    assert torch.allclose(exact.maps, grad.maps, rtol=1e-4, atol=1e-5)


def plain_autograd_maps(model: MLPHead, x: torch.Tensor, classes: torch.Tensor, nwc: bool) -> torch.Tensor:
    """The gradient map written out: F by the features alone, d logit_k / d F by autograd through the
    head alone, ``w_c = sum_xy grad``, ``M = sum_c w_c F_c``."""
    feats = model.features(x).detach().requires_grad_(True)
    logits = model.head(feats)
    maps = []
    for j in range(classes.shape[1]):
        (grad,) = torch.autograd.grad(logits.gather(1, classes[:, j:j + 1]).sum(), feats, retain_graph=True)
        w = grad.sum((2, 3))  # B x C
        w = w.clamp_min(0) if nwc else w
        maps.append((w[:, :, None, None] * feats.detach()).sum(1))
    return torch.stack(maps, 1)


def test_mlp_head_gives_gradient_maps_and_refuses_exact():
    model = MLPHead(num_classes=4).eval()
    x = torch.randn(2, 3, 16, 16)
    out = CAMExtractor(model)(x)
    assert not out.exact and out.bias is None and out.maps.shape == (2, 1, 16, 16)
    assert out.head.feature_layer == "features" and out.head.pool == "gradient"
    with torch.no_grad():
        assert torch.equal(out.classes[:, 0], model(x).argmax(1))
    with pytest.raises(ModelError, match="TAP"):
        CAMExtractor(model)(x, require_exact=True)


@pytest.mark.parametrize("nwc", [False, True])
def test_gradient_maps_equal_plain_autograd(nwc):
    model = MLPHead(num_classes=4).eval()
    x = torch.randn(3, 3, 12, 12)
    out = CAMExtractor(model)(x, topk=3, nwc=nwc)
    assert not out.exact and out.maps.shape == (3, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(out.classes, model(x).topk(3, dim=1).indices)
    reference = plain_autograd_maps(model, x, out.classes, nwc)
    assert reference.abs().max() > 1e-3  # a map that says something
    assert torch.allclose(out.maps, reference, rtol=1e-5, atol=1e-6)
    if nwc:  # clamping changed something, else this case would test nothing new
        assert not torch.allclose(reference, plain_autograd_maps(model, x, out.classes, False))


def test_exact_head_under_inference_mode():
    model = timm.create_model("resnet18", num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        out = CAMExtractor(model)(x, nwc=False)
    assert out.exact
    assert torch.allclose(out.maps.mean((2, 3)) + out.bias, out.logits.gather(1, out.classes), atol=1e-4)


def test_model_changed_after_analysis_is_analysed_again():
    model = Tiny(W, B)
    ex = CAMExtractor(model)
    ex(X)
    assert ex.head.pool == "avg"
    model.pool = "max"
    out = ex(X, classes=0, nwc=False)
    assert out.head.pool == "max"
    assert torch.allclose(out.maps.mean((2, 3)) + out.bias, out.logits[:, :1])


def test_vit_maps_its_patch_grid_and_a_model_without_a_grid_is_refused():
    model = timm.create_model("vit_tiny_patch16_224", num_classes=3, img_size=32, patch_size=16)
    out = CAMExtractor(model)(torch.randn(1, 3, 32, 32))  # tests/cam/test_transformers.py has the details
    assert out.maps.shape == (1, 1, 2, 2) and not out.exact and out.head.reason == "class token"
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 3))
    with pytest.raises(ModelError, match="no spatial feature map"):
        CAMExtractor(flat)(torch.randn(1, 3, 32, 32))


def test_explicit_layers_and_unknown_names():
    model = timm.create_model("resnet18", num_classes=5)
    out = CAMExtractor(model, feature_layer="layer3")(torch.randn(1, 3, 64, 64))
    assert out.maps.shape[-1] == 4 and not out.exact  # layer4 sits between: gradient map
    with pytest.raises(ModelError, match="layer4"):
        CAMExtractor(model, feature_layer="layer_4")
