"""The pooling layers camloc adds: TAP's exact values against the formula, GAP, pools by name."""

from __future__ import annotations

import pytest
import torch

import camloc
from camloc.models.layers.pooling import GlobalAvgPool2d, ThresholdedAvgPool2d, make_pool


def tap_direct(x: torch.Tensor, theta: float) -> torch.Tensor:
    """TAP as docs/protocols.md ("TAP") states it, written out with loops."""
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


def test_tap_layer_on_the_documented_channel():
    channel = [[0.0, 1.0], [2.0, 4.0]]
    x = torch.tensor([[channel, [[0.0, 0.0], [0.0, 0.0]], [[-1.0, -2.0], [-3.0, -4.0]]]])  # 1 x 3 x 2 x 2
    pool = camloc.ThresholdedAvgPool2d(0.4)
    # thr = 0.4 x 4 = 1.6: kept 2 and 4 -> 3.0; all zero -> 0; all negative: thr -0.4, nothing kept -> 0
    assert pool(x).tolist() == [[3.0, 0.0, 0.0]]
    assert camloc.ThresholdedAvgPool2d(0.0)(x)[0, 0].item() == pytest.approx(7.0 / 3.0)  # 1, 2, 4: no zero
    assert GlobalAvgPool2d()(x)[0, 0].item() == pytest.approx(7.0 / 4.0)  # GAP counts the zero
    assert camloc.ThresholdedAvgPool2d(0.5)(x)[0, 0].item() == 4.0  # thr 2.0, strict: 2 is dropped
    assert camloc.ThresholdedAvgPool2d(1.0)(x)[0, 0].item() == 0.0  # nothing exceeds the maximum
    assert make_pool("tap", 0.4)(x).tolist() == pool(x).tolist() and isinstance(make_pool("gap"), GlobalAvgPool2d)


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
    # d p_c / d F = kept / count(kept): the mask itself carries no gradient
    kept = (x > 0.1 * x.amax((2, 3), keepdim=True)).float()
    assert torch.allclose(x.grad, kept / kept.sum((2, 3), keepdim=True).clamp_min(1))
    hand = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]], requires_grad=True)
    ThresholdedAvgPool2d(0.4)(hand).sum().backward()
    assert hand.grad.tolist() == [[[[0.0, 0.0], [0.5, 0.5]]]]
    unflat = ThresholdedAvgPool2d(0.1, flatten=False)(x)
    assert unflat.shape == (2, 3, 1, 1) and torch.equal(unflat.flatten(1), y)
    with pytest.raises(ValueError):
        make_pool("max")
    with pytest.raises(ValueError):
        ThresholdedAvgPool2d(1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU on this machine")
def test_tap_on_cuda():
    x = torch.relu(torch.randn(4, 8, 7, 7, device="cuda"))
    assert torch.allclose(ThresholdedAvgPool2d(0.1)(x).cpu(), tap_direct(x.cpu(), 0.1), atol=1e-5)
