"""CAM's baselines by name (camloc.cam.methods): hand-computed maps, pytorch-grad-cam's maps, the API
and evaluator with ``method=``, and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import camloc
from camloc.cam import heads
from camloc.cam.methods import MethodExtractor
from camloc.cam.names import METHODS, nwc_applies
from camloc.utils.errors import ModelError, UsageError

from ..helpers import (
    CAT,
    COFFEE,
    GapLinear,
    MLPHead,
    Tiny,
    assert_same,
    hooks_left,
    prepared,
    snapshot,
    synthetic_split,
)

# Tiny: features = the input (2 channels, 2 x 2), GAP, Linear; class 0 has weights (1, -2), so
# G_c = W[0, c] / 4 everywhere: G_0 = 0.25, G_1 = -0.5.
W = torch.tensor([[1.0, -2.0], [0.5, 1.0]])
X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]]])  # A_0 (sum 10), A_1 (sum 0)
# Grad-CAM++ on channel 0: a = .25^2 / (2 .25^2 + 10 .25^3 + 1e-6), w_0 = 4 x .25 x a; channel 1: ReLU(G_1) = 0.
PP = 4 * 0.25 * 0.0625 / (2 * 0.0625 + 10 * 0.015625 + 1e-6)
# Score-CAM: mask_0 = (A_0 - 1) / 3 -> logit 2.0; mask_1 = (A_1 + 1) / 2 -> logit 0.5; w = softmax(2.0, 0.5).
S0, S1 = 1 / (1 + math.exp(-1.5)), 1 / (1 + math.exp(1.5))
EXPECTED = {
    ("cam", False): [[1.0, 0.0], [3.0, 6.0]],  # A_0 - 2 A_1
    ("cam", True): [[1.0, 2.0], [3.0, 4.0]],  # A_0
    ("gradcam", False): [[0.25, 0.0], [0.75, 1.5]],  # ReLU(.25 A_0 - .5 A_1)
    ("gradcam", True): [[0.25, 0.5], [0.75, 1.0]],  # ReLU(.25 A_0)
    ("gradcam++", False): [[PP, 2 * PP], [3 * PP, 4 * PP]],
    ("gradcam++", True): [[PP, 2 * PP], [3 * PP, 4 * PP]],
    ("xgradcam", False): [[0.25, 0.5], [0.75, 1.0]],  # w_0 = .25 x 10 / (10 + 1e-7), w_1 = -.5 x 0 / 1e-7 = 0
    ("xgradcam", True): [[0.25, 0.5], [0.75, 1.0]],
    ("layercam", False): [[0.25, 0.5], [0.75, 1.0]],  # ReLU(G_0) A_0 + ReLU(G_1) A_1
    ("scorecam", False): [[S0, 2 * S0 + S1], [3 * S0, 4 * S0 - S1]],  # ReLU(S0 A_0 + S1 A_1)
}


def tiny() -> Tiny:
    return Tiny(W, torch.zeros(2))


@pytest.mark.parametrize("method,nwc", list(EXPECTED))
def test_each_method_by_hand(method, nwc):
    out = MethodExtractor(tiny(), method)(X, classes=[0], nwc=nwc)
    assert out.maps.shape == (1, 1, 2, 2) and out.exact is (method == "cam")
    torch.testing.assert_close(out.maps[0, 0], torch.tensor(EXPECTED[(method, nwc)]), rtol=1e-6, atol=1e-6)
    assert out.classes.tolist() == [[0]] and out.logits.shape == (1, 2)


def test_nwc_is_ignored_where_it_does_not_apply():
    ex = MethodExtractor(tiny())
    for method in ("layercam", "scorecam"):
        assert not nwc_applies(method)
        out = ex.maps(X, [(method, False), (method, True)], classes=[0])
        assert torch.equal(out[(method, True)].maps, out[(method, False)].maps)
    assert all(nwc_applies(m) for m in ("cam", "gradcam", "gradcam++", "xgradcam"))


def test_gap_linear_heads_tie_the_gradient_methods_to_cam():
    """On GAP + Linear, G = W[k] / HW everywhere: Grad-CAM = ReLU(CAM) / HW, LayerCAM = ReLU(CAM with NWC) / HW."""
    model = GapLinear(num_classes=5)
    x = torch.randn(3, 3, 12, 12)
    ex = MethodExtractor(model)
    out = ex.maps(x, [("cam", False), ("cam", True), ("gradcam", False), ("gradcam", True), ("layercam", False)],
                  topk=2)
    hw = 36
    torch.testing.assert_close(out[("gradcam", False)].maps, out[("cam", False)].maps.clamp_min(0) / hw)
    torch.testing.assert_close(out[("gradcam", True)].maps, out[("cam", True)].maps / hw)
    torch.testing.assert_close(out[("layercam", False)].maps, out[("cam", True)].maps / hw)


def test_several_classes_in_one_backward_equal_one_class_at_a_time():
    model = MLPHead(num_classes=6)
    x = torch.randn(2, 3, 10, 10)
    ex = MethodExtractor(model, "gradcam++")
    three = ex(x, topk=3, nwc=False)
    for j in range(3):
        one = ex(x, classes=three.classes[:, j], nwc=False)
        torch.testing.assert_close(three.maps[:, j], one.maps[:, 0], rtol=1e-5, atol=1e-6)


def test_scorecam_batches_and_dead_channels_change_nothing():
    model = GapLinear(num_classes=4, width=8)
    with torch.no_grad():
        model.features[2].bias[:3] = -100.0  # three channels dead (all zero after the ReLU): one shared pass
    x = torch.randn(2, 3, 12, 12)
    a = MethodExtractor(model, "scorecam", score_batch=1)(x, topk=2)
    b = MethodExtractor(model, "scorecam", score_batch=64)(x, topk=2)
    torch.testing.assert_close(a.maps, b.maps, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():  # forward passes only: allowed, unlike the gradient methods
        c = MethodExtractor(model, "scorecam")(x, topk=2)
    torch.testing.assert_close(c.maps, b.maps, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "cam"])
def test_the_users_model_is_left_as_it_was(method):
    model = prepared("resnet18")
    before = snapshot(model)
    out = MethodExtractor(model, method, score_batch=128)(torch.randn(1, 3, 64, 64), topk=2)
    assert out.maps.shape == (1, 2, 2, 2) and torch.isfinite(out.maps).all()
    assert_same(before, snapshot(model))
    assert hooks_left(model) == {"<root>": ["_forward_hooks"]}  # the user's own hook only


def test_activations_and_gradients_go_through_heads_as_grid(monkeypatch):
    seen = []
    original = heads.as_grid

    def spy(spec, t, input_size=None):
        seen.append(tuple(t.shape))
        return original(spec, t, input_size)

    monkeypatch.setattr(heads, "as_grid", spy)
    MethodExtractor(GapLinear(), "xgradcam")(torch.randn(2, 3, 12, 12), topk=2)
    assert seen.count((2, 6, 6, 6)) >= 3  # the activations and one gradient per class
    seen.clear()
    out = camloc.CAMExtractor(MLPHead())(torch.randn(2, 3, 12, 12), topk=2)  # a non-affine head's CAM: the same routine
    assert not out.exact and seen.count((2, 8, 12, 12)) >= 3


def test_a_layer_that_is_no_grid_is_one_clear_line():
    from camloc.cam.gradients import feature_grid

    spec = heads.HeadSpec("features", "fc", "avg")  # an NCHW layer that returned tokens
    with pytest.raises(ModelError, match="not B x C x H x W") as err:
        feature_grid(spec, torch.randn(2, 197, 64))
    assert "\n" not in str(err.value)


# -- errors ------------------------------------------------------------------------------------------------


def test_scorecam_without_a_spatial_map_is_one_clear_line():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    with pytest.raises(ModelError, match="'scorecam' needs the spatial feature map") as err:
        MethodExtractor(model, "scorecam")(torch.randn(2, 3, 8, 8))
    assert "\n" not in str(err.value)


def test_unknown_methods_and_bad_combinations():
    with pytest.raises(UsageError, match="unknown method 'gradcampp': choose from cam, gradcam, gradcam\\+\\+, "
                                         "xgradcam, layercam, scorecam"):
        camloc.cams(GapLinear(), torch.randn(1, 3, 64, 64), method="gradcampp")
    with pytest.raises(UsageError, match="unknown method"):
        camloc.boxes(GapLinear(), torch.randn(1, 3, 64, 64), method="GradCAM")
    with pytest.raises(UsageError, match="require_exact applies to method 'cam' only"):
        camloc.Localizer(GapLinear(), method="gradcam", require_exact=True)
    with pytest.raises(ModelError, match="inference_mode"), torch.inference_mode():
        MethodExtractor(GapLinear(), "gradcam")(torch.randn(1, 3, 12, 12))
    with pytest.raises(UsageError, match="score_batch"):
        MethodExtractor(GapLinear(), "scorecam", score_batch=0)


# -- the notebook API, the evaluator, calibration --------------------------------------------------------------


def test_api_takes_a_method_and_records_it(lite0):
    x = torch.randn(2, 3, 224, 224)
    maps = camloc.cams(lite0, x, method="gradcam")
    ref = MethodExtractor(lite0, "gradcam")(x, nwc=True).maps[:, 0].cpu()
    torch.testing.assert_close(maps, ref)
    r = camloc.boxes(lite0, [CAT, COFFEE], method="layercam")
    assert [x.method for x in r] == ["layercam"] * 2 and r[0].to_dict()["method"] == "layercam"
    assert r[0].exact is False and r[0].label == camloc.boxes(lite0, CAT)[0].label
    assert camloc.boxes(lite0, CAT)[0].to_dict()["method"] == "cam"


def test_evaluate_scores_every_method_with_the_same_evaluator(tmp_path):
    from camloc.data.metadata import read_dataset
    from camloc.eval.evaluation import evaluate
    from camloc.eval.protocols import Settings

    from ..helpers import Brightness

    meta, images, masks = synthetic_split(tmp_path)
    samples = read_dataset(meta)
    settings = Settings("wsolevaluation", methods=("cam", "gradcam", "layercam"), interval=0.01)
    res = evaluate(Brightness(), samples, images, settings, masks=masks, progress=False, save_maps=tmp_path / "maps")
    assert list(res.metrics) == ["cam", "nwc", "pas", "nwc+pas", "gradcam/cam", "gradcam/nwc", "gradcam/pas",
                                 "gradcam/nwc+pas", "layercam/cam", "layercam/pas"]
    assert settings.skipped() == ["layercam/nwc", "layercam/nwc+pas"]
    # the Brightness model's CAM is the rectangle itself, and so is every gradient map of it
    for row in res.metrics.values():
        assert row["maxboxacc_v2"] > 95 and row["pxap"] > 95
    assert res.to_dict()["settings"]["methods"] == ("cam", "gradcam", "layercam")
    assert len(list((tmp_path / "maps" / "gradcam" / "nwc+pas").glob("*.npy"))) == 6
    alone = evaluate(Brightness(), samples, images, Settings("wsolevaluation", interval=0.01), masks=masks,
                     progress=False)
    assert alone.metrics == {k: res.metrics[k] for k in ("cam", "nwc", "pas", "nwc+pas")}  # cam's rows unchanged
    with pytest.raises(UsageError, match="NWC does not apply to layercam"):
        Settings(variants=("nwc",), methods=("layercam",))
    with pytest.raises(UsageError, match="unknown method 'grad'"):
        Settings(methods=("grad",))


def test_calibration_records_its_method_and_localizer_uses_it(tmp_path, lite0):
    from camloc.eval.calibration import Calibration

    calib = Calibration(0.3, 80.0, True, 50.0, "meta", "efficientnet_lite0", 6, method="gradcam")
    calib.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json").method == "gradcam"
    loc = camloc.Localizer(lite0, calibration=tmp_path / "c.json")
    assert loc.method == "gradcam"
    with pytest.raises(UsageError, match="made for method 'gradcam', not 'cam'"):
        camloc.Localizer(lite0, calibration=tmp_path / "c.json", method="cam")
    old = calib.__dict__ | {}
    old.pop("method")
    (tmp_path / "old.json").write_text(__import__("json").dumps(old | {"failed": [], "warnings": []}))
    assert Calibration.load(tmp_path / "old.json").method == "cam"  # files from before methods


# -- pytorch-grad-cam's maps -------------------------------------------------------------------------------------


class ConvHead(nn.Module):
    """Features (conv, ReLU) at input resolution, then a conv head, GAP and a Linear: gradients vary by location."""

    def __init__(self, num_classes: int = 4, width: int = 5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(width, 6, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(6, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


def grad_cam_view(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """camloc's maps (B x h x w) as pytorch-grad-cam returns them: ReLU, min-max (+1e-7), cv2 resize to
    the input, min-max again (``base_cam.py`` ``compute_cam_per_layer``, ``aggregate_multi_layers``)."""
    import cv2

    def scale(m):
        m = m - m.min()
        return m / (1e-7 + m.max())

    return np.stack([scale(cv2.resize(scale(np.maximum(m, 0)), (size[1], size[0])))
                     for m in maps.numpy().astype(np.float32)])


PEERS = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "xgradcam": "XGradCAM", "layercam": "LayerCAM",
         "scorecam": "ScoreCAM"}


@pytest.mark.parametrize("method", list(PEERS))
@pytest.mark.parametrize("model_kind", ["conv_head", "gap_linear"])
def test_maps_equal_pytorch_grad_cams(method, model_kind):
    gc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(1)
    model = ConvHead() if model_kind == "conv_head" else GapLinear(num_classes=4, width=7)
    x = torch.randn(3, 3, 12, 12)
    classes = [2, 0, 3]
    ours = MethodExtractor(model, method, feature_layer="features")(x, classes=classes, nwc=False).maps[:, 0]
    with getattr(gc, PEERS[method])(model=model, target_layers=[model.features]) as peer:
        theirs = peer(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    np.testing.assert_allclose(grad_cam_view(ours, (12, 12)), theirs, atol=2e-5)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "xgradcam", "layercam"])
def test_maps_equal_pytorch_grad_cams_on_efficientnet_lite0(method):
    gc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = camloc.load_model("efficientnet_lite0")  # its own copy: pytorch-grad-cam calls model.eval()
    loc = camloc.Localizer(model, method=method, nwc=False)
    x = torch.stack([loc.prepare(p)[0] for p in (CAT, COFFEE)])
    out = loc.run(x)
    layer = model.get_submodule(out.head.feature_layer)
    with getattr(gc, PEERS[method])(model=model, target_layers=[layer]) as peer:
        theirs = peer(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in out.classes[:, 0]])
    np.testing.assert_allclose(grad_cam_view(out.maps[:, 0].cpu(), (224, 224)), theirs, atol=1e-4)


@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_maps_equal_pytorch_grad_cams_on_a_vits_token_grid(method):
    """A class-token ViT (random weights): camloc reads the token grid through heads.as_grid, pytorch-grad-cam
    through its documented reshape_transform; the maps agree."""
    gc = pytest.importorskip("pytorch_grad_cam")
    import timm
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10).eval()
    x = torch.randn(2, 3, 224, 224)
    ex = MethodExtractor(model, method)
    out = ex(x, classes=[3, 7], nwc=False)
    assert out.maps.shape == (2, 1, 14, 14)
    layer = model.get_submodule(ex.head.feature_layer)

    def tokens_to_grid(t):
        return t[:, 1:, :].reshape(t.shape[0], 14, 14, t.shape[2]).permute(0, 3, 1, 2)

    with getattr(gc, PEERS[method])(model=model, target_layers=[layer], reshape_transform=tokens_to_grid) as peer:
        theirs = peer(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in (3, 7)])
    np.testing.assert_allclose(grad_cam_view(out.maps[:, 0], (224, 224)), theirs, atol=1e-4)
