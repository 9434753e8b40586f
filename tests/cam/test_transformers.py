"""Token grids and channels-last maps as feature maps: ViT, DeiT, register tokens, dynamic sizes, Swin.

* a head that averages the patch tokens and is affine (timm ``global_pool="avg"``, ``fc_norm``
  folded) gives the exact CAM: ``mean_hw(M_k) + b_k = logit_k`` to a tight tolerance;
* a head that reads the class token gives ``exact=False`` gradient maps over the patch grid, taken
  before the last attention (the final norm acts token by token, so the last tokens' patch gradient
  is zero), equal to a plain autograd reference and named as such (``reason == "class token"``);
* prefix tokens (class, distillation, register) are dropped by count, the grid follows the model's
  own patch geometry, also at a dynamic, non-square input size;
* Swin's B x H x W x C maps are permuted, not misread as B x C x H x W;
* the user's model is left as it was, no hook remains, and ``camloc.boxes`` works end to end.

All models are timm architectures with random weights.
"""

from __future__ import annotations

import pytest
import timm
import torch

import camloc
from camloc import CAMExtractor, ModelError
from camloc.cam import analyze
from camloc.cam.heads import HeadSpec, as_grid, token_grid

from ..helpers import assert_same, hooks_left, noise_photo, snapshot


def vit(**kwargs) -> torch.nn.Module:
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, **kwargs).eval()


def relative_error(out) -> float:
    recon = out.maps.mean((2, 3)) + out.bias
    target = out.logits.gather(1, out.classes)
    return ((recon - target).abs().max() / target.abs().max()).item()


def token_reference(model, layer: str, prefix: int, grid: tuple[int, int], x, classes, nwc: bool) -> torch.Tensor:
    """Gradient maps by plain autograd over the whole model: ``g = d logit_k / d T`` at the layer's
    token output ``T`` (B x N x C), ``w_c = sum_{n >= prefix} g[n, c]``,
    ``M[i, j] = sum_c w_c T[prefix + i w + j, c]``."""
    kept = {}

    def keep(_m, _args, out):
        kept["T"] = out
        out.retain_grad()

    handle = model.get_submodule(layer).register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x = x.clone().requires_grad_(True)  # a graph even where no parameter asks for one
            logits = model(x)
            maps = []
            for j in range(classes.shape[1]):
                (g,) = torch.autograd.grad(logits.gather(1, classes[:, j:j + 1]).sum(), kept["T"], retain_graph=True)
                w = g[:, prefix:].sum(1)
                w = w.clamp_min(0) if nwc else w
                maps.append(torch.einsum("bc,bnc->bn", w, kept["T"][:, prefix:].detach()))
    finally:
        handle.remove()
    return torch.stack(maps, 1).view(x.shape[0], classes.shape[1], *grid)


def assert_close_maps(maps: torch.Tensor, reference: torch.Tensor) -> None:
    assert maps.shape == reference.shape
    scale = reference.abs().max().item()
    assert scale > 0
    assert torch.allclose(maps, reference, rtol=1e-4, atol=1e-5 * scale)


# -- as_grid ---------------------------------------------------------------------------------------


def test_as_grid_reshapes_tokens_and_channels_last_only():
    spec = HeadSpec("norm", "head", "avg", layout="tokens", prefix_tokens=2, grid=(3, 4))
    t = torch.randn(2, 14, 5, dtype=torch.float64, requires_grad=True)
    g = as_grid(spec, t)
    assert g.shape == (2, 5, 3, 4) and g.dtype == torch.float64
    assert torch.equal(g[1, :, 2, 1], t[1, 2 + 2 * 4 + 1])  # G[b, c, i, j] = T[b, p + i w + j, c]
    g.sum().backward()
    assert torch.equal(t.grad[:, :2], torch.zeros(2, 2, 5, dtype=torch.float64))  # prefix tokens dropped
    assert torch.equal(t.grad[:, 2:], torch.ones(2, 12, 5, dtype=torch.float64))
    nhwc = torch.randn(2, 3, 4, 5)
    assert torch.equal(as_grid(HeadSpec("norm", "fc", "avg", layout="nhwc"), nhwc), nhwc.permute(0, 3, 1, 2))
    nchw = torch.randn(2, 5, 3, 4)
    assert as_grid(HeadSpec("layer4", "fc", "avg"), nchw) is nchw


def test_token_grid_follows_the_input_size_and_refuses_a_count_that_does_not_fit():
    spec = HeadSpec("blocks.11", None, "gradient", layout="tokens", prefix_tokens=1, grid=(14, 14), stride=(16, 16))
    assert token_grid(spec, 197) == (14, 14)
    assert token_grid(spec, 141, (160, 224)) == (10, 14)
    assert token_grid(spec, 141, (224, 160)) == (14, 10)
    assert token_grid(spec, 141, (2, 3, 168, 232)) == (10, 14)  # a batch shape works too; floor
    with pytest.raises(ModelError, match="141 tokens.*pass input_size"):
        token_grid(spec, 141)
    fixed = HeadSpec("norm", "head", "avg", layout="tokens", prefix_tokens=1, grid=(14, 14))
    with pytest.raises(ModelError, match="not 1 prefix tokens plus the patch grid"):
        as_grid(fixed, torch.randn(1, 50, 8))


# -- exact: averaged patch tokens ------------------------------------------------------------------


@pytest.mark.slow
def test_avg_pooled_vit_with_fc_norm_is_exact():
    model = vit(global_pool="avg")
    assert isinstance(model.fc_norm, torch.nn.LayerNorm)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        reference = model(x)
    before = snapshot(model)
    out = CAMExtractor(model)(x, topk=3, nwc=False, require_exact=True)
    assert_same(before, snapshot(model))
    assert not hooks_left(model)
    head = out.head
    assert out.exact and (head.layout, head.prefix_tokens, head.grid) == ("tokens", 1, (14, 14))
    assert (head.feature_layer, head.classifier, head.pool, head.norm) == ("norm", "head", "avg", "fc_norm")
    assert head.kind == "exact"
    assert out.maps.shape == (2, 3, 14, 14)
    assert torch.allclose(out.logits, reference, rtol=1e-5, atol=1e-6)
    assert relative_error(out) <= 1e-5
    with torch.inference_mode():  # exact heads need no gradient
        again = CAMExtractor(model)(x, topk=3, nwc=False)
    assert torch.allclose(again.maps, out.maps, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_swin_channels_last_map_is_exact():
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=10).eval()
    x = torch.randn(2, 3, 224, 224)
    before = snapshot(model)
    out = CAMExtractor(model)(x, topk=2, nwc=False, require_exact=True)
    assert_same(before, snapshot(model))
    assert not hooks_left(model)
    assert out.exact and out.head.layout == "nhwc" and out.head.pool == "avg"
    assert out.maps.shape == (2, 2, 7, 7)
    assert relative_error(out) <= 1e-5
    # the map is the permuted B x H x W x C output, not a misread B x C x H x W
    kept = {}
    handle = model.get_submodule(out.head.feature_layer).register_forward_hook(lambda m, a, o: kept.update(F=o))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    assert kept["F"].shape == (2, 7, 7, model.num_features)
    weight = model.head.fc.weight[out.classes]  # B x k x C
    expected = torch.einsum("bkc,bhwc->bkhw", weight, kept["F"])
    assert torch.allclose(out.maps, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


# -- gradient: the class token ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("nwc", [False, True])
def test_class_token_vit_gives_gradient_maps_over_the_patch_grid(nwc):
    model = vit()
    x = torch.randn(2, 3, 224, 224)
    before = snapshot(model)
    out = CAMExtractor(model)(x, topk=2, nwc=nwc)
    assert_same(before, snapshot(model))
    assert not hooks_left(model)
    head = out.head
    assert not out.exact and out.bias is None
    assert (head.pool, head.reason, head.kind) == ("gradient", "class token", "gradient (class token)")
    assert head.feature_layer == "blocks.11.norm1"  # before the last attention, the only way patches reach it
    assert (head.layout, head.prefix_tokens, head.grid) == ("tokens", 1, (14, 14))
    reference = token_reference(model, "blocks.11.norm1", 1, (14, 14), x, out.classes, nwc)
    assert_close_maps(out.maps, reference)
    # why not the last tokens: their patch part has no gradient at all
    last = token_reference(model, "norm", 1, (14, 14), x, out.classes, nwc=False)
    assert torch.equal(last, torch.zeros_like(last))
    with pytest.raises(ModelError, match="not affine"):
        CAMExtractor(model)(x, require_exact=True)


@pytest.mark.slow
def test_distillation_token_is_a_prefix_token_and_read_by_the_head():
    model = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, num_classes=10).eval()
    x = torch.randn(2, 3, 224, 224)
    out = CAMExtractor(model)(x, topk=1, nwc=False)
    head = out.head
    assert (head.prefix_tokens, head.grid, head.reason) == (2, (14, 14), "class and distillation tokens")
    reference = token_reference(model, head.feature_layer, 2, (14, 14), x, out.classes, nwc=False)
    assert_close_maps(out.maps, reference)


@pytest.mark.slow
def test_register_tokens_are_dropped_from_the_grid():
    name = "vit_small_patch14_reg4_dinov2"
    assert name in timm.list_models("*reg4*")
    model = timm.create_model(name, pretrained=False, num_classes=10, img_size=112).eval()
    assert model.num_prefix_tokens == 5  # a class token and 4 registers
    x = torch.randn(2, 3, 112, 112)
    out = CAMExtractor(model)(x, topk=1, nwc=False)
    head = out.head
    assert (head.prefix_tokens, head.grid, head.reason) == (5, (8, 8), "class token")
    assert out.maps.shape == (2, 1, 8, 8)
    reference = token_reference(model, head.feature_layer, 5, (8, 8), x, out.classes, nwc=False)
    assert_close_maps(out.maps, reference)
    # averaged patch tokens with a register token: exact
    gap = timm.create_model("vit_pwee_patch16_reg1_gap_256", pretrained=False, num_classes=10, img_size=128).eval()
    out = CAMExtractor(gap)(torch.randn(2, 3, 128, 128), topk=2, nwc=False, require_exact=True)
    assert (out.head.prefix_tokens, out.head.grid, out.head.norm) == (1, (8, 8), "fc_norm")
    assert relative_error(out) <= 1e-5


@pytest.mark.slow
def test_dynamic_image_size_takes_the_grid_from_the_input():
    model = vit(dynamic_img_size=True)
    x = torch.randn(2, 3, 160, 224)
    extractor = CAMExtractor(model)
    out = extractor(x, topk=1, nwc=False)
    assert out.maps.shape == (2, 1, 10, 14) and out.head.stride == (16, 16) and out.head.reason == "class token"
    reference = token_reference(model, out.head.feature_layer, 1, (10, 14), x, out.classes, nwc=False)
    assert_close_maps(out.maps, reference)
    tall = extractor(torch.randn(1, 3, 224, 160), nwc=False)  # the analysis is reused, the grid is not
    assert tall.maps.shape == (1, 1, 14, 10)
    avg = vit(dynamic_img_size=True, global_pool="avg")
    out = CAMExtractor(avg)(x, topk=2, nwc=False, require_exact=True)
    assert out.maps.shape == (2, 2, 10, 14) and relative_error(out) <= 1e-5
    padded = vit(dynamic_img_size=True, dynamic_img_pad=True, global_pool="avg")
    odd = CAMExtractor(padded)(torch.randn(1, 3, 170, 200), nwc=False)  # padded up to whole patches
    assert odd.maps.shape == (1, 1, 11, 13) and relative_error(odd) <= 1e-5


@pytest.mark.slow
def test_boxes_end_to_end_on_vision_transformers():
    photo = noise_photo(200, 150)
    for model in (vit(), vit(global_pool="avg")):
        before = snapshot(model)
        results = camloc.boxes(model, photo, topk=2)[0]
        assert_same(before, snapshot(model))
        assert not hooks_left(model)
        for r in results:
            x0, y0, x1, y1 = r.box
            assert 0 <= x0 <= x1 <= 200 and 0 <= y0 <= y1 <= 150, r.box


def test_a_token_model_without_patch_geometry_is_read_by_its_token_count():
    """No ``patch_embed`` or ``num_prefix_tokens``: a class token and a 4 x 4 grid are found from 17 tokens."""

    class Tokens(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Conv2d(3, 8, 8, stride=8)
            self.cls = torch.nn.Parameter(torch.randn(1, 1, 8))
            self.mix = torch.nn.Linear(8, 8)
            self.norm = torch.nn.LayerNorm(8)
            self.fc = torch.nn.Linear(8, 5)

        def forward(self, x):
            t = self.embed(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], 1)
            t = self.norm(t + self.mix(t))
            return self.fc(t[:, 1:].mean(1))

    model = Tokens().eval()
    spec = analyze(model, torch.randn(2, 3, 32, 32))
    assert (spec.layout, spec.prefix_tokens, spec.grid, spec.feature_layer, spec.pool) == ("tokens", 1, (4, 4), "norm", "avg")
    out = CAMExtractor(model)(torch.randn(2, 3, 32, 32), nwc=False, require_exact=True)
    assert out.maps.shape == (2, 1, 4, 4) and relative_error(out) <= 1e-5


def test_channels_last_map_with_a_non_affine_head_gives_gradient_maps():
    """B x H x W x C features, then an MLP on the average: the gradient is permuted like the map."""

    class ChannelsLast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 4, stride=4)
            self.norm = torch.nn.LayerNorm(6)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))

        def forward(self, x):
            return self.mlp(self.norm(self.conv(x).permute(0, 2, 3, 1)).mean((1, 2)))

    model = ChannelsLast().eval()
    x = torch.randn(2, 3, 24, 32)
    out = CAMExtractor(model)(x, topk=2, nwc=False)
    assert (out.head.layout, out.head.feature_layer, out.head.reason) == ("nhwc", "norm", "not affine after pooling")
    kept = {}

    def keep(_m, _args, out):
        kept["F"] = out

    handle = model.norm.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(x.clone().requires_grad_(True))
            maps = []
            for j in range(2):
                (g,) = torch.autograd.grad(logits.gather(1, out.classes[:, j:j + 1]).sum(), kept["F"], retain_graph=True)
                maps.append(torch.einsum("bc,bhwc->bhw", g.sum((1, 2)), kept["F"].detach()))
    finally:
        handle.remove()
    assert_close_maps(out.maps, torch.stack(maps, 1))
    assert out.maps.shape == (2, 2, 6, 8)
