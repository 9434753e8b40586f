"""The extractor finds the feature map and head of many timm and torchvision classifiers by itself.

Random initialisation is enough for structure.

* The architecture matrix (``benchmarks/architectures.py``: the list, and the classification
  ``docs/architectures.md`` is generated from): every entry is classified again here and must match
  the committed document line for line, exact heads to a relative 1e-4 on all classes; the list
  covers the families the README names.
* Below it, batches of two through :class:`CAMExtractor` itself: for every exact architecture the
  invariant ``mean_hw(M_k) + b_k = logit_k`` must hold to a relative 1e-4; non-affine heads must
  say ``exact=False``, give the maps plain autograd gives, and refuse ``require_exact``. The
  families covered, in both libraries where they exist: ResNet, ResNeXt, Wide ResNet, DenseNet,
  EfficientNet (v1, v2, lite), MobileNet (v2 exact, v3 not), RegNet, Inception, MnasNet, ConvNeXt,
  GoogLeNet, ShuffleNet, VGG (not exact).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import timm
import torch
import torchvision

from camloc import CAMExtractor, ModelError

from ..helpers import gradient_reference


def _load_matrix():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "architectures.py"
    spec = importlib.util.spec_from_file_location("camloc_architecture_matrix", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


MATRIX = _load_matrix()
DOCUMENTED = MATRIX.parse(MATRIX.DOC.read_text(encoding="utf-8"))
#: Families the matrix must cover, as patterns over its family names.
REQUIRED_FAMILIES = [
    "ResNet", "RegNet", "EfficientNet", "EfficientNetV2", "MobileNetV1", "MobileNetV2", "MobileNetV3",
    "MobileNetV4", "ConvNeXt", "ConvNeXtV2", "DenseNet", "Inception", "VGG", "ViT", "DeiT", "BEiT", "Swin",
    "SwinV2", "MaxViT", "CoAtNet", "EfficientFormer", "MobileViT", "FastViT", "EVA", "CaiT", "PiT",
]


#: The transformers families the matrix must cover.
REQUIRED_HF_FAMILIES = ["ResNet", "ConvNeXt", "EfficientNet", "MobileNetV2", "RegNet", "ViT", "DeiT", "Swin", "BEiT",
                        "DINOv2"]


@pytest.mark.parametrize("entries,required", [(MATRIX.MATRIX, REQUIRED_FAMILIES),
                                              (MATRIX.HF_MATRIX, REQUIRED_HF_FAMILIES)], ids=["timm", "transformers"])
def test_matrix_document_lists_every_entry_once_and_covers_the_families(entries, required):
    labels = [e.label for e in MATRIX.ENTRIES]
    assert len(set(labels)) == len(labels) and len(entries) >= len(required)
    assert [row[0] for row in DOCUMENTED] == labels, "docs/architectures.md is stale: python benchmarks/architectures.py"
    assert not [f for f in required if f not in {e.family for e in entries}]
    mine = [row for row in DOCUMENTED if row[0] in {e.label for e in entries}]
    kinds = [row[2] for row in mine]
    assert set(kinds) <= {"exact", "gradient", "impossible"} and {"exact", "gradient"} <= set(kinds)
    counts = {k: kinds.count(k) for k in ("exact", "gradient", "impossible")}
    summary = (f"{len(mine)} models, {len({row[1] for row in mine})} families: {counts['exact']} exact, "
               f"{counts['gradient']} gradient, {counts['impossible']} impossible.")
    assert summary in MATRIX.DOC.read_text(encoding="utf-8")
    assert all(row[3] for row in mine)  # every kind says why


@pytest.mark.slow
@pytest.mark.parametrize("entry", MATRIX.ENTRIES, ids=[e.label for e in MATRIX.ENTRIES])
def test_matrix_entry_is_classified_as_documented(entry):
    documented = dict((row[0], row) for row in DOCUMENTED)
    row = MATRIX.classify(entry)
    assert row.cells() == documented[entry.label], "docs/architectures.md is stale: python benchmarks/architectures.py"
    if row.kind == "exact":
        assert row.error is not None and row.error <= 1e-4, (entry.label, row.error)

EXACT = [
    ("timm", "wide_resnet50_2"),
    ("timm", "efficientnet_lite0"),
    ("timm", "efficientnetv2_rw_t"),
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
    dropped from either library (timm's exact ones may be in the architecture matrix instead), no
    entry listed twice, none claimed both exact and not."""
    in_matrix = [e.name for e in MATRIX.MATRIX if e.kwargs == {}]
    for lib in ("timm", "tv"):
        for families, entries in ((EXACT_FAMILIES, EXACT), (NOT_EXACT_FAMILIES, NOT_EXACT)):
            names = [n for a, n in entries if a == lib]
            if lib == "timm" and entries is EXACT:
                names += [n for n in in_matrix if dict((r[0], r[2]) for r in DOCUMENTED)[n] == "exact"]
            missing = [f for f in families if not any(re.search(f, n) for n in names)]
            assert not missing, (lib, missing)
    assert len(set(EXACT)) == len(EXACT) and len(set(NOT_EXACT)) == len(NOT_EXACT)
    assert not set(EXACT) & set(NOT_EXACT)
    assert {("tv", "googlenet"), ("tv", "shufflenet_v2_x0_5"), ("timm", "efficientnet_lite0")} <= set(EXACT)
