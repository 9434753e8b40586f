"""camloc never changes a user's model: training flags, requires_grad, .grad, buffers, hooks."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

import camloc
from camloc import CAMExtractor


def snapshot(model: nn.Module):
    return {
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
    }


def assert_same(before, after):
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    for a, b in zip(before["grad"], after["grad"], strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    for k in before["state"]:
        assert torch.equal(before["state"][k], after["state"][k]), k
    assert before["hooks"] == after["hooks"]


def prepared(name):
    model = timm.create_model(name, num_classes=6)
    model.train()
    list(model.modules())[3].eval()  # mixed flags must come back as they were
    params = list(model.parameters())
    params[0].requires_grad_(False)
    params[-1].grad = torch.ones_like(params[-1])
    model.register_forward_hook(lambda *a: None)
    return model


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
    before["hooks"] = [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()]
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


def test_boxes_does_not_move_or_switch_user_model():
    model = prepared("resnet18")
    before = snapshot(model)
    camloc.boxes(model, torch.randn(2, 3, 64, 64))
    assert_same(before, snapshot(model))
