"""The extractor finds the feature map and head of many timm and torchvision classifiers by itself.

Random initialisation is enough for structure. For every exact architecture the invariant
``mean_hw(M_k) + b_k = logit_k`` must hold to a relative 1e-4; non-affine heads must say
``exact=False``, give the maps plain autograd gives, and refuse ``require_exact``.

The families covered, in both libraries where they exist: ResNet, ResNeXt, Wide ResNet, DenseNet,
EfficientNet (v1, v2, lite), MobileNet (v2 exact, v3 not), RegNet, Inception, MnasNet, ConvNeXt,
GoogLeNet, ShuffleNet, VGG (not exact).
"""

from __future__ import annotations

import re

import pytest
import timm
import torch
import torchvision

from camloc import CAMExtractor, ModelError

from ..helpers import gradient_reference

EXACT = [
    ("timm", "resnet18"),
    ("timm", "resnext26ts"),
    ("timm", "wide_resnet50_2"),
    ("timm", "densenet121"),
    ("timm", "efficientnet_b0"),
    ("timm", "efficientnet_lite0"),
    ("timm", "efficientnetv2_rw_t"),
    ("timm", "mobilenetv2_050"),
    ("timm", "regnetx_002"),
    ("timm", "inception_v3"),
    ("timm", "mnasnet_small"),
    ("timm", "convnext_atto"),
    ("tv", "resnet18"),
    ("tv", "resnext50_32x4d"),
    ("tv", "wide_resnet50_2"),
    ("tv", "densenet121"),
    ("tv", "efficientnet_b0"),
    ("tv", "efficientnet_v2_s"),
    ("tv", "mobilenet_v2"),
    ("tv", "regnet_y_400mf"),
    ("tv", "inception_v3"),
    ("tv", "googlenet"),
    ("tv", "shufflenet_v2_x0_5"),
    ("tv", "mnasnet0_5"),
    ("tv", "convnext_tiny"),
]
NOT_EXACT = [
    ("timm", "mobilenetv3_small_050"),
    ("timm", "vgg11"),
    ("tv", "mobilenet_v3_small"),
    ("tv", "vgg11"),
]


def build(lib: str, name: str) -> torch.nn.Module:
    if lib == "timm":
        return timm.create_model(name, num_classes=20).eval()
    extra = {"aux_logits": False, "init_weights": False} if name in ("inception_v3", "googlenet") else {}
    return torchvision.models.get_model(name, weights=None, num_classes=20, **extra).eval()


def batch_for(name: str) -> torch.Tensor:
    return torch.randn(2, 3, 160 if "inception" in name else 96, 160 if "inception" in name else 96)


@pytest.mark.slow
@pytest.mark.parametrize("lib,name", EXACT, ids=[f"{a}-{b}" for a, b in EXACT])
def test_exact_cam_invariant(lib, name):
    model = build(lib, name)
    x = batch_for(name)
    with torch.no_grad():
        reference = model(x)
    out = CAMExtractor(model)(x, topk=3, nwc=False, require_exact=True)
    assert out.exact, out.head
    assert out.maps.shape[-1] * out.maps.shape[-2] > 1
    assert torch.allclose(out.logits, reference, rtol=1e-4, atol=1e-5)
    recon = out.maps.mean((2, 3)) + out.bias
    target = out.logits.gather(1, out.classes)
    rel = ((recon - target).abs().max() / target.abs().max()).item()
    assert rel <= 1e-4, (out.head, rel)


@pytest.mark.slow
@pytest.mark.parametrize("lib,name", NOT_EXACT, ids=[f"{a}-{b}" for a, b in NOT_EXACT])
def test_non_affine_heads_give_gradient_maps(lib, name):
    model = build(lib, name)
    x = batch_for(name)
    out = CAMExtractor(model)(x, topk=2)
    assert not out.exact and out.bias is None
    assert out.maps.shape[:2] == (2, 2) and torch.isfinite(out.maps).all()
    with torch.no_grad():
        assert torch.equal(out.classes, model(x).topk(2, dim=1).indices)
    reference = gradient_reference(model, out.head.feature_layer, x, out.classes, nwc=True)
    assert out.maps.shape == reference.shape
    assert torch.allclose(out.maps, reference, rtol=1e-4, atol=1e-5 * reference.abs().max().item())
    with pytest.raises(ModelError, match="TAP"):
        CAMExtractor(model)(x, require_exact=True)


#: the families of the docstring, as patterns over the names of each library
EXACT_FAMILIES = ["resnet", "resnext", "wide_resnet", "densenet", "efficientnet", "efficientnet_?v2",
                  "mobilenet_?v2", "regnet", "inception", "mnasnet", "convnext"]
NOT_EXACT_FAMILIES = ["mobilenet_?v3", "vgg"]


def test_matrix_covers_every_family_in_both_libraries():
    """The parametrised tests above are the evidence; this keeps them honest: no family silently
    dropped from either library, no entry listed twice, none claimed both exact and not."""
    for lib in ("timm", "tv"):
        for families, entries in ((EXACT_FAMILIES, EXACT), (NOT_EXACT_FAMILIES, NOT_EXACT)):
            names = [n for a, n in entries if a == lib]
            missing = [f for f in families if not any(re.search(f, n) for n in names)]
            assert not missing, (lib, missing)
    assert len(set(EXACT)) == len(EXACT) and len(set(NOT_EXACT)) == len(NOT_EXACT)
    assert not set(EXACT) & set(NOT_EXACT)
    assert {("tv", "googlenet"), ("tv", "shufflenet_v2_x0_5"), ("timm", "efficientnet_lite0")} <= set(EXACT)
