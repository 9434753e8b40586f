"""camloc.faithfulness: deletion / insertion as RISE computes them, Average Drop / Increase as torch-cam does."""

from __future__ import annotations

import contextlib
import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

import camloc
from camloc.eval.perturbation import Schedule, blur, gaussian_kernel
from camloc.utils.errors import UsageError

from ..conftest import real_photos
from ..helpers import CAT, COFFEE, ROCKET

PHOTOS = [CAT, COFFEE, ROCKET]


class RegionBrightness(nn.Module):
    """Logit 0 = ``gain`` x the mean of the input over rows ``[0, rows)`` (every channel), logit 1 = 0."""

    def __init__(self, rows: int, gain: float) -> None:
        super().__init__()
        self.rows, self.gain = rows, gain

    def forward(self, x):
        m = x[:, :, : self.rows].mean((1, 2, 3))
        return torch.stack([self.gain * m, torch.zeros_like(m)], 1)


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _scipy_gkern(klen: int = 11, nsig: float = 5.0) -> np.ndarray:
    """RISE's gkern, literally: scipy's gaussian_filter of a centred delta."""
    ndimage = pytest.importorskip("scipy.ndimage")
    inp = np.zeros((klen, klen))
    inp[klen // 2, klen // 2] = 1
    return ndimage.gaussian_filter(inp, nsig)


def _rise_blur(x: torch.Tensor) -> torch.Tensor:
    """RISE's insertion substrate: conv2d with the 3 x 3 x 11 x 11 kernel of gkern on its diagonal, padding 5."""
    k = torch.zeros(3, 3, 11, 11)
    for c in range(3):
        k[c, c] = torch.from_numpy(_scipy_gkern().astype(np.float32))
    return nn.functional.conv2d(x, k, padding=5)


def _rise_curve(model, img, explanation, step, mode):
    """RISE's CausalMetric.single_run on one image (one forward pass per step), with a softmax model."""
    hw = img.shape[2] * img.shape[3]
    with torch.no_grad():
        c = int(model(img).argmax(1))
        n_steps = (hw + step - 1) // step
        start, finish = (img.clone(), torch.zeros_like(img)) if mode == "del" else (_rise_blur(img), img.clone())
        scores = np.empty(n_steps + 1)
        salient_order = np.flip(np.argsort(explanation.reshape(-1, hw), axis=1), axis=-1)
        for i in range(n_steps + 1):
            scores[i] = float(model(start).softmax(1)[0, c])
            coords = salient_order[:, step * i: step * (i + 1)]
            start.numpy().reshape(1, 3, hw)[0, :, coords] = finish.numpy().reshape(1, 3, hw)[0, :, coords]
    return scores


def _rise_auc(arr):
    return (arr.sum() - arr[0] / 2 - arr[-1] / 2) / (arr.shape[0] - 1)


# -- RISE's deletion and insertion ------------------------------------------------------------------------


def test_the_insertion_substrate_is_rises_gkern():
    assert torch.allclose(gaussian_kernel(), torch.from_numpy(_scipy_gkern()).float(), atol=1e-8)
    x = torch.randn(2, 3, 20, 24)
    assert torch.allclose(blur(x), _rise_blur(x), atol=1e-6)


def test_deletion_and_insertion_of_a_region_brightness_model_are_known_exactly():
    # 8 x 8 ones; the map ranks pixels in raster order; the model sees the top 4 rows (raster pixels 0..31)
    model, x = RegionBrightness(rows=4, gain=4.0), torch.ones(1, 3, 8, 8)
    maps = -torch.arange(64.0).view(1, 8, 8)
    r = camloc.faithfulness(model, x, maps=maps, step=8, metrics=("deletion", "insertion"))
    assert r.settings["step"] == 8 and r.settings["steps"] == 8 and r.classes == (0,)
    deletion = [_sigmoid(4.0 * max(32 - 8 * i, 0) / 32) for i in range(9)]
    blurred = _rise_blur(x)[0, 0, :4].flatten().numpy()  # every channel alike
    insertion = [_sigmoid(4.0 * (min(8 * i, 32) + blurred[min(8 * i, 32):].sum()) / 32) for i in range(9)]
    assert np.allclose(r.curves["deletion"][0].numpy(), deletion, atol=1e-6)
    assert np.allclose(r.curves["insertion"][0].numpy(), insertion, atol=1e-6)
    assert r.values["deletion"][0] == pytest.approx(_rise_auc(np.array(deletion)), abs=1e-6)
    assert r.means["insertion"] == pytest.approx(_rise_auc(np.array(insertion)), abs=1e-6)
    # the curve reaches 0.5 (an all-zero region) at step 4 and stays there
    assert np.allclose(r.curves["deletion"][0, 4:].numpy(), 0.5)


def test_curves_equal_rises_own_loop():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()
    x, maps = torch.randn(3, 3, 16, 20), torch.rand(3, 16, 20)
    # batches of 7 perturbed inputs: they straddle the curves and the images
    r = camloc.faithfulness(model, x, maps=maps, step=24, batch_size=7, metrics=("deletion", "insertion"))
    assert r.settings["steps"] == 14  # ceil(320 / 24): the last step is partial, as in RISE
    for i in range(3):
        for mode, name in (("del", "deletion"), ("ins", "insertion")):
            want = _rise_curve(model, x[i:i + 1].clone(), maps[i].numpy(), 24, mode)
            assert np.allclose(r.curves[name][i].numpy(), want, atol=1e-6), (i, name)
            assert r.values[name][i] == pytest.approx(_rise_auc(want), abs=1e-6)


def test_the_curves_cost_their_steps_in_batched_forwards():
    calls: list[int] = []

    class Counted(RegionBrightness):
        def forward(self, x):
            calls.append(len(x))
            return super().forward(x)

    maps = torch.rand(3, 8, 8)
    camloc.faithfulness(Counted(rows=4, gain=1.0), torch.rand(3, 3, 8, 8), maps=maps, steps=4, batch_size=10,
                        metrics=("deletion", "insertion"))
    # one pass for the images' own scores, then 3 images x 2 curves x 4 steps = 24 perturbed inputs in batches of 10
    assert calls == [3, 10, 10, 4]


def test_curves_start_and_end_where_they_must_on_real_photos(lite0):
    loc = camloc.Localizer(lite0)
    x = torch.stack([loc.prepare(p)[0] for p in PHOTOS])
    r = camloc.faithfulness(lite0, x, steps=3, metrics=("deletion", "insertion"))
    cls = torch.tensor(r.classes)

    def probs(inputs):
        with torch.no_grad():
            return lite0(inputs).softmax(1).gather(1, cls.view(-1, 1)).squeeze(1)

    full = probs(x)
    assert torch.equal(cls, lite0(x).argmax(1)) and r.classes == (285, 967, 657)  # Egyptian cat, espresso, missile
    dele, ins = r.curves["deletion"], r.curves["insertion"]
    assert torch.allclose(dele[:, 0], full, atol=1e-5) and torch.allclose(ins[:, -1], full, atol=1e-5)
    assert torch.allclose(dele[:, -1], probs(torch.zeros_like(x)), atol=1e-5)  # every pixel deleted
    assert torch.allclose(ins[:, 0], probs(_rise_blur(x)), atol=1e-5)  # nothing inserted yet
    assert dele.shape == ins.shape == (3, 4)


def test_the_cams_top_pixels_matter_more_than_a_random_maps(lite0):
    photos = real_photos(5)
    cam = camloc.faithfulness(lite0, photos, steps=16, metrics=("deletion", "insertion"))
    shuffled = camloc.faithfulness(lite0, photos, maps=torch.rand(len(photos), 7, 7), steps=16,
                                   metrics=("deletion", "insertion"))
    assert cam.classes == shuffled.classes  # both for each image's top-1 class
    assert cam.means["deletion"] < shuffled.means["deletion"] - 0.02
    assert cam.means["insertion"] > shuffled.means["insertion"] + 0.01


def test_the_schedule_follows_rise():
    assert Schedule.of(224, 224) == Schedule(50176, 224, 224)  # RISE's step=224
    assert Schedule.of(224, 224, step=224 * 8).steps == 28
    assert Schedule.of(10, 10, steps=3) == Schedule(100, 34, 3)
    assert Schedule.of(10, 10, steps=3).counts().tolist() == [0, 34, 68, 100]
    assert Schedule.of(4, 4, step=100) == Schedule(16, 16, 1)


# -- torch-cam's Average Drop and Increase in Confidence ------------------------------------------------


class _GivenMaps:
    """What torchcam.metrics.ClassificationMetric needs of an extractor, holding precomputed maps."""

    def __init__(self, model, maps):
        self.model, self.maps = model, maps

    def __call__(self, class_idx, scores=None, normalized=True, **kwargs):
        from torchcam.methods.core import _CAM

        return [_CAM._normalize(self.maps.clone())]

    @staticmethod
    def fuse_cams(cams):
        return cams[0]

    def _hooks_off(self):
        return contextlib.nullcontext()


def _torchcam(extractor, x, class_idx=None):
    metrics = pytest.importorskip("torchcam.metrics")
    metric = metrics.ClassificationMetric(extractor, functools.partial(torch.softmax, dim=-1))
    metric.update(x, class_idx)
    return metric.summary()


def test_average_drop_and_increase_equal_torchcams_on_its_own_cam():
    methods = pytest.importorskip("torchcam.methods")
    import timm

    model = timm.create_model("resnet18").eval()  # random weights (seeded)
    loc = camloc.Localizer(model)
    x = torch.stack([loc.prepare(p)[0] for p in real_photos(5)])
    extractor = methods.CAM(model, target_layer="layer4", fc_layer="fc")
    try:
        want = _torchcam(extractor, x)
        scores = model(x)
        raw = extractor(scores.argmax(1).tolist(), scores, normalized=False)[0].detach()
    finally:
        extractor.remove_hooks()
    got = camloc.faithfulness(model, x, maps=raw, metrics=("average_drop", "increase"))
    assert got.means["average_drop"] == pytest.approx(100 * want["avg_drop"], rel=1e-5, abs=1e-6)
    assert got.means["increase"] == pytest.approx(100 * want["conf_increase"], abs=1e-9)


@pytest.mark.parametrize("method", ["cam", "gradcam", "layercam"])
def test_average_drop_and_increase_equal_torchcams_on_camlocs_maps(lite0, method):
    photos = real_photos(5)
    maps = camloc.cams(lite0, photos, method=method)  # NWC on, as the method applies it
    x = torch.stack([camloc.Localizer(lite0).prepare(p)[0] for p in photos])
    want = _torchcam(_GivenMaps(lite0, maps), x)
    given = camloc.faithfulness(lite0, photos, maps=maps, metrics=("average_drop", "increase"))
    own = camloc.faithfulness(lite0, photos, method=method, metrics=("average_drop", "increase"))
    for got in (given, own):
        assert got.means["average_drop"] == pytest.approx(100 * want["avg_drop"], rel=1e-5)
        assert got.means["increase"] == pytest.approx(100 * want["conf_increase"], abs=1e-9)
    assert own.settings["method"] == method and given.settings["method"] == "given maps"


@pytest.mark.parametrize("gain", [4.0, -4.0, 0.0])  # 0: O == Y, no increase
def test_average_drop_and_increase_of_a_brightness_model_are_known_exactly(gain):
    # the map keeps the left half: E is the left half of the ones image, its mean (almost) 0.5; class 0's
    # probability falls (gain 4) or rises (gain -4, where class 0 is not the top-1, so it is asked for)
    model, x = RegionBrightness(rows=8, gain=gain), torch.ones(1, 3, 8, 8)
    maps = torch.zeros(1, 8, 8)
    maps[:, :, :4] = 1.0
    r = camloc.faithfulness(model, x, maps=maps, classes=0, metrics=("average_drop", "increase"))
    y, o = _sigmoid(gain), _sigmoid(gain * 0.5 / (1 + 1e-8))
    assert r.values["average_drop"][0] == pytest.approx(100 * max(0.0, y - o) / (y + 1e-7), rel=1e-5)
    assert r.values["increase"] == ((100.0,) if o > y else (0.0,))
    want = _torchcam(_GivenMaps(model, maps), x, class_idx=0)
    assert r.means["average_drop"] == pytest.approx(100 * want["avg_drop"], rel=1e-5, abs=1e-6)
    assert r.means["increase"] == 100 * want["conf_increase"]


# -- the API and its errors --------------------------------------------------------------------------------


def test_classes_names_and_result_dict(lite0):
    r = camloc.faithfulness(lite0, [CAT, COFFEE], classes=["tabby", 967], steps=2)
    assert r.classes == (281, 967) and r.names == (CAT, COFFEE)
    assert set(r.means) == {"deletion", "insertion", "average_drop", "increase"}
    d = r.to_dict(with_curves=True)
    assert d["settings"]["insertion_baseline"].startswith("Gaussian blur") and len(d["curves"]["deletion"][0]) == 3
    assert d["means"]["deletion"] == pytest.approx(np.mean(d["values"]["deletion"]))
    assert r.means["increase"] == pytest.approx(np.mean(r.values["increase"]))


def test_the_model_is_left_as_it_was():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    camloc.faithfulness(model, torch.randn(2, 3, 40, 40), steps=2)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kwargs, message", [
    ({"maps": torch.rand(3, 7, 7)}, "got 3 maps for 2 images: give one map (h x w) per image, N x h x w"),
    ({"maps": torch.rand(2, 7)}, "maps must be N x h x w, one real-valued map per image, got shape (2, 7)"),
    ({"maps": torch.full((2, 7, 7), float("nan"))}, "maps hold NaN or infinite values"),
    ({"maps": "nope"}, "maps must be a tensor or array of N x h x w numbers, not str"),
    ({"metrics": ("deletion", "auc")}, "unknown faithfulness metric 'auc': choose from deletion, insertion, "
                                       "average_drop, increase"),
    ({"metrics": ()}, "no faithfulness metric asked for"),
    ({"steps": 4, "step": 100}, "give steps (how many) or step (pixels per step)"),
    ({"steps": 0}, "steps must be a whole number of at least 1, not 0"),
    ({"step": 2.5}, "step must be a whole number of at least 1, not 2.5"),
    ({"classes": torch.zeros(2, 2, dtype=torch.long)}, "faithfulness scores one class per image: give 2 classes"),
    ({"classes": [1, 2, 3]}, "got 3 classes for 2 images"),
    ({"method": "cam++"}, "cam++"),
])
def test_bad_input_is_one_line_naming_the_fix(kwargs, message):
    model = RegionBrightness(rows=4, gain=1.0)
    kwargs = {"maps": torch.rand(2, 7, 7), **kwargs}
    with pytest.raises(UsageError) as err:
        camloc.faithfulness(model, torch.rand(2, 3, 16, 16), **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


# -- camloc.evaluate(faithfulness=True): the same numbers, from the evaluation's own pass ------------------


def test_evaluate_adds_each_rows_faithfulness(tmp_path):
    from camloc.data.imaging import load_image
    from camloc.data.metadata import read_dataset
    from camloc.data.synthetic import SyntheticSpec, write_synthetic
    from camloc.eval.batches import protocol_preprocess
    from camloc.eval.evaluation import evaluate
    from camloc.eval.protocols import Settings
    from camloc.models.wsol import build_wsol

    samples = read_dataset(write_synthetic(tmp_path, SyntheticSpec(classes=2, train=1, train_fullsup=1,
                                                                   test=5))["test"])
    model = build_wsol("smallcnn", num_classes=2)
    settings = Settings("rethinking", variants=("cam", "nwc+pas"), methods=("cam", "gradcam"))
    result = evaluate(model, samples, tmp_path, settings, batch_size=3, progress=False, faithfulness=True,
                      faithfulness_steps=4)
    assert result.faithfulness["steps"] == 4 and result.to_dict()["faithfulness"]["metrics"][0] == "deletion"
    pre = protocol_preprocess("rethinking", model)
    x = torch.stack([pre(load_image(tmp_path / s.image_id))[0] for s in samples])
    labels = [s.label for s in samples]  # cam_class "gt": the maps are the labels'
    for row, method, nwc in (("cam", "cam", False), ("nwc+pas", "cam", True), ("gradcam/cam", "gradcam", False)):
        want = camloc.faithfulness(model, x, method=method, nwc=nwc, classes=labels, steps=4)
        for name, value in want.means.items():
            assert result.metrics[row][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (row, name)
        assert {"gt_known_loc", "top1_loc"} <= set(result.metrics[row])
