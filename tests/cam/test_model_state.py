"""camloc never changes a user's model: training flags, requires_grad, .grad, buffers, hooks."""

from __future__ import annotations

import pytest
import timm
import torch

import camloc
from camloc import CAMExtractor

from ..helpers import GapLinear, MLPHead, assert_same, hook_counts, hooks_left, prepared, snapshot


@pytest.mark.parametrize("name,method", [("resnet18", "auto"), ("resnet18", "gradient"), ("mobilenetv3_small_050", "auto")])
def test_model_left_as_it_was(name, method):
    model = prepared(name)
    before = snapshot(model)
    out = CAMExtractor(model, method=method)(torch.randn(2, 3, 64, 64), topk=2)
    assert out.maps.shape[:2] == (2, 2)
    assert_same(before, snapshot(model))
    assert torch.is_grad_enabled()


def test_model_left_as_it_was_when_forward_raises():
    model = prepared("resnet18")
    ex = CAMExtractor(model)
    ex(torch.randn(1, 3, 64, 64))  # analysed; now make the head fail
    before = snapshot(model)

    def boom(*_):
        raise RuntimeError("boom")

    handle = model.fc.register_forward_pre_hook(boom)
    before["hooks"] = hook_counts(model)
    for method in ("auto", "gradient"):
        with pytest.raises(RuntimeError, match="boom"):
            CAMExtractor(model, method=method)(torch.randn(1, 3, 64, 64))
        assert_same(before, snapshot(model))
        assert torch.is_grad_enabled()
    handle.remove()


def test_grad_mode_restored_under_no_grad():
    model = timm.create_model("mobilenetv3_small_050", num_classes=4)
    with torch.no_grad():
        out = CAMExtractor(model)(torch.randn(1, 3, 64, 64))
        assert not torch.is_grad_enabled()
    assert not out.exact


def test_gradient_maps_refused_under_inference_mode():
    model = timm.create_model("mobilenetv3_small_050", num_classes=4)
    with torch.inference_mode(), pytest.raises(camloc.ModelError, match="inference_mode"):
        CAMExtractor(model)(torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("make", [GapLinear, MLPHead, lambda: timm.create_model("mobilenetv3_small_050", num_classes=4)],
                         ids=["exact", "gradient", "timm-gradient"])
def test_no_hook_left_after_analyze_and_extraction(make):
    model = make().train()
    x = torch.randn(2, 3, 32, 32)
    assert hooks_left(model) == {}  # a fresh model has none: what follows is camloc's doing
    before = snapshot(model)
    spec = camloc.analyze(model, x)
    assert spec.feature_layer and hooks_left(model) == {}
    for method in ("auto", "gradient"):
        extractor = CAMExtractor(model, method=method)
        extractor(x, topk=2)
        extractor(x, classes=[0, 1])  # the second batch takes the analysed path
        assert hooks_left(model) == {}, method
    assert_same(before, snapshot(model))


def test_no_hook_left_when_the_forward_pass_raises():
    model = GapLinear()
    calls = []

    def fail_once(*_):
        calls.append(1)
        raise RuntimeError("boom")

    handle = model.fc.register_forward_pre_hook(fail_once)
    for method in ("auto", "gradient"):
        with pytest.raises(RuntimeError, match="boom"):
            CAMExtractor(model, method=method)(torch.randn(1, 3, 16, 16))
    with pytest.raises(RuntimeError, match="boom"):
        camloc.analyze(model, torch.randn(1, 3, 16, 16))
    handle.remove()
    assert len(calls) == 3 and hooks_left(model) == {}
