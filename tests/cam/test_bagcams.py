"""BagCAMs (camloc.cam.bagcams): hand-computed maps on a tiny GAP-linear model, the log-gradient
reference by autograd on a non-affine head, the degenerate case equal to CAM, invariants and errors."""

from __future__ import annotations

import pytest
import torch

from camloc.cam.bagcams import bagcams_map, bagcams_terms
from camloc.cam.gradients import head_gradients
from camloc.cam.heads import HeadSpec
from camloc.utils.errors import UsageError

from ..helpers import MLPHead, Tiny, assert_same, snapshot

# Tiny: features = the input, GAP over N = 2 locations, Linear. A_0 = (2, 0), A_1 = (0, 8): mean A = (1, 4).
X = torch.tensor([[[[2.0, 0.0]], [[0.0, 8.0]]]])
W = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, -1.0]])
B = torch.tensor([4.0, -4.0, 5.0, 3.0])
# logits z = W mean(A) + b = (1, -1, 2, 0); G_c = W[k, c] / 2 at both locations.
# class 0: g = G / 1 = (.5, -.5); P_0 = (1, 0), a_0 = 1.5; P_1 = (0, -4), a_1 = -1 -> M = (1.5, 0) + (0, 4).
# class 1: G = (-.5, .5), z = -1 -> g = (.5, -.5), the same as class 0 -> M = (1.5, 4).
# class 2: g = G / 2 = (.25, -.25); P_0 = (.5, 0), a_0 = 1.25; P_1 = (0, -2), a_1 = 0 -> M = (.625, 0).
# class 3: z = 0, no log-gradient -> M = 0.
EXPECTED = [[1.5, 4.0], [1.5, 4.0], [0.625, 0.0], [0.0, 0.0]]


def tiny_gradients(model: torch.nn.Module, x: torch.Tensor, classes: list[int]):
    spec = HeadSpec("features", "fc", "avg")
    pick = torch.tensor([classes]).expand(x.shape[0], -1)
    return head_gradients(model, model.features, spec, x, lambda logits: pick, refusal="no backward here")


def log_gradient_reference(acts: torch.Tensor, head: torch.nn.Module, k: int) -> torch.Tensor:
    """The authors' recipe computed directly: g = d log(z_k) / d A by autograd, then sum_c ReLU((1 + mean g A) g A)."""
    leaf = acts.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.log(head(leaf)[:, k]).sum(), leaf)  # log's gradient is 1 / z, also for z < 0
    p = g * acts
    return ((1 + p.mean(dim=(2, 3), keepdim=True)) * p).clamp_min(0).sum(dim=1)


def test_hand_computed_maps_on_a_tiny_model():
    model = Tiny(W, B)
    before = snapshot(model)
    got = tiny_gradients(model, X, [0, 1, 2, 3])
    assert got.logits.flatten().tolist() == [1.0, -1.0, 2.0, 0.0]
    maps = bagcams_map(got.acts, got.grads, got.logits.gather(1, got.classes))
    assert maps.shape == (1, 4, 1, 2) and maps.dtype == torch.float32
    assert maps[0, :, 0].tolist() == EXPECTED
    assert_same(before, snapshot(model))  # no .grad written, no flag or hook left


def test_hand_computed_terms_and_the_negative_channel_that_adds():
    grads = torch.tensor([0.5, -0.5]).view(1, 1, 2, 1, 1).expand(1, 1, 2, 1, 2)  # class 0 above
    products, factors = bagcams_terms(X, grads, torch.tensor([[1.0]]))
    assert products[0, 0, :, 0].tolist() == [[1.0, 0.0], [0.0, -4.0]]
    assert factors.flatten().tolist() == [1.5, -1.0]
    # Grad-CAM would give ReLU(.5 A_0 - .5 A_1) = (1, 0): channel 1 only ever subtracts there.
    assert bagcams_map(X, grads, torch.tensor([[1.0]]))[0, 0, 0].tolist() == [1.5, 4.0]


def test_matches_the_log_gradient_by_autograd_on_a_non_affine_head():
    torch.manual_seed(0)
    model = MLPHead(num_classes=4).eval()
    x = torch.randn(2, 3, 5, 6)
    spec = HeadSpec("features", None, "gradient")
    got = head_gradients(model, model.features, spec, x, lambda logits: torch.tensor([[0, 1, 2, 3]] * 2), "no")
    scores = got.logits.gather(1, got.classes)
    assert (scores > 0).any() and (scores < 0).any()  # both signs of the log's 1 / z are exercised
    maps = bagcams_map(got.acts, got.grads, scores)
    for k in range(4):
        want = log_gradient_reference(got.acts, model.head, k)
        torch.testing.assert_close(maps[:, k], want, rtol=1e-5, atol=1e-6)
    dropped_log = bagcams_map(got.acts, got.grads, torch.ones_like(scores))
    assert (dropped_log - maps).abs().max() > 1e-3  # the 1 / z matters: the reference can tell


def test_one_positive_channel_is_a_multiple_of_cam():
    torch.manual_seed(1)
    x = torch.rand(2, 1, 3, 4)
    model = Tiny(torch.tensor([[2.0]]), torch.tensor([1.0]))
    got = tiny_gradients(model, x, [0])
    maps = bagcams_map(got.acts, got.grads, got.logits.gather(1, got.classes))[:, 0]
    # G = 2 / 12, z = 2 mean(A) + 1, P = A / (6 z), a = 1 + mean(A) / (6 z): M = a A / (6 z).
    z = 2 * x.mean(dim=(1, 2, 3)) + 1
    factor = (1 + x.mean(dim=(1, 2, 3)) / (6 * z)) / (6 * z)
    torch.testing.assert_close(maps, factor[:, None, None] * x[:, 0], rtol=1e-6, atol=0)


def test_shape_dtype_non_negative_and_inputs_left_alone():
    torch.manual_seed(2)
    acts, grads, scores = torch.randn(2, 4, 3, 5), torch.randn(2, 3, 4, 3, 5), torch.randn(2, 3)
    copies = [t.clone() for t in (acts, grads, scores)]
    maps = bagcams_map(acts, grads, scores)
    assert maps.shape == (2, 3, 3, 5) and maps.dtype == torch.float32
    assert maps.min() >= 0 and maps.max() > 0
    assert all(torch.equal(a, b) for a, b in zip((acts, grads, scores), copies, strict=True))
    assert bagcams_map(acts.double(), grads.double(), scores.double()).dtype == torch.float64
    with torch.inference_mode():  # a pure function of tensors: no autograd needed
        assert torch.equal(bagcams_map(acts, grads, scores), maps)


def test_each_image_and_class_on_its_own_and_invariant_to_a_common_scale():
    torch.manual_seed(3)
    acts, grads, scores = torch.randn(2, 4, 3, 3), torch.randn(2, 3, 4, 3, 3), torch.randn(2, 3)
    maps = bagcams_map(acts, grads, scores)
    for b in range(2):
        for k in range(3):
            alone = bagcams_map(acts[b:b + 1], grads[b:b + 1, k:k + 1], scores[b:b + 1, k:k + 1])
            assert torch.equal(alone[0, 0], maps[b, k])
    assert torch.equal(bagcams_map(acts, 2 * grads, 2 * scores), maps)  # only G / z enters
    assert torch.equal(bagcams_map(acts, -grads, -scores), maps)


def test_a_zero_logit_gives_a_zero_map_not_nan():
    maps = bagcams_map(torch.ones(1, 2, 2, 2), torch.ones(1, 2, 2, 2, 2), torch.tensor([[0.0, 1.0]]))
    assert maps[0, 0].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert maps[0, 1].tolist() == [[4.0, 4.0], [4.0, 4.0]]  # P = 1, a = 2: a P = 2 per channel, 2 channels


@pytest.mark.parametrize("acts,grads,scores,names", [
    (torch.ones(1, 2, 3), torch.ones(1, 1, 2, 3, 3), torch.ones(1, 1), "B x C x h x w"),
    (torch.ones(1, 2, 3, 3), torch.ones(1, 1, 3, 3, 3), torch.ones(1, 1), "do not match"),
    (torch.ones(1, 2, 3, 3), torch.ones(1, 2, 2, 3, 3), torch.ones(1, 1), "logit of each class"),
])
def test_bad_shapes_are_one_line_usage_errors(acts, grads, scores, names):
    with pytest.raises(UsageError, match=names) as info:
        bagcams_map(acts, grads, scores)
    assert "\n" not in str(info.value)


def test_the_method_by_name_in_the_api_the_command_line_and_the_evaluator(tmp_path):
    """``method="bagcams"`` is the function on the shared gradient pass, everywhere a method is taken."""
    import camloc
    from click.testing import CliRunner

    from camloc.cam.methods import MethodExtractor
    from camloc.cli import main
    from camloc.data.metadata import read_dataset
    from camloc.eval.evaluation import evaluate
    from camloc.eval.protocols import Settings

    from ..helpers import CAT, Brightness, synthetic_split

    model = Tiny(W, B)
    out = MethodExtractor(model, "bagcams")(X, classes=[[0, 1, 2, 3]])
    assert out.maps.flatten(2).tolist() == [EXPECTED] and not out.exact
    assert camloc.boxes(model, X, classes=[[0, 2]], method="bagcams")[0][0].method == "bagcams"
    res = CliRunner().invoke(main, ["localize", CAT, "--method", "bagcams", "--json"])
    assert res.exit_code == 0 and '"method": "bagcams"' in res.stdout
    meta, images, masks = synthetic_split(tmp_path)
    settings = Settings("wsolevaluation", methods=("cam", "bagcams"), interval=0.01)
    scored = evaluate(Brightness(), read_dataset(meta), images, settings, masks=masks, progress=False)
    assert [k for k in scored.metrics if k.startswith("bagcams")] == ["bagcams/cam", "bagcams/pas"]
