"""PC1 (EigenCAM): pytorch-grad-cam's projection and maps, the sign fixed by the class, on every kind of head."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from click.testing import CliRunner
from torch.nn import functional as F

import camloc
from camloc.cam.methods import MethodExtractor
from camloc.cam.pc1 import oriented, pc1_maps, pc1_projection
from camloc.cli import main

from ..conftest import real_photos
from ..helpers import CAT, GapLinear


def corr(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel())[0, 1])


def test_projection_by_hand():
    # four locations of two channels: (0, 0), (2, 0), (0, 1), (2, 1); centred (-1, -.5), (1, -.5), (-1, .5), (1, .5):
    # the first principal direction is channel 0's, so the projection is each location's centred channel 0
    acts = torch.tensor([[[[0.0, 2.0], [0.0, 2.0]], [[0.0, 0.0], [1.0, 1.0]]]])
    p = pc1_projection(acts)
    assert p.abs().tolist() == [[[1.0, 1.0], [1.0, 1.0]]] and p[0, 0, 0] == -p[0, 0, 1]
    assert pc1_projection(torch.ones(2, 3, 4, 4)).abs().max() == 0  # locations that do not vary: no component


def test_the_sign_follows_each_classs_map():
    acts = torch.tensor([[[[0.0, 2.0], [0.0, 2.0]], [[0.0, 0.0], [1.0, 1.0]]]])
    right, left = acts[:, :1], -acts[:, :1]  # a class whose map is channel 0, another whose map is its opposite
    maps = pc1_maps(acts, torch.cat([right, left], dim=1))
    assert maps[0, 0].tolist() == [[0.0, 1.0], [0.0, 1.0]] and maps[0, 1].tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert torch.equal(oriented(pc1_projection(acts), torch.zeros(1, 1, 2, 2))[:, 0], pc1_projection(acts))


def test_maps_equal_pytorch_grad_cams_eigencam_on_real_photos(lite0):
    from pytorch_grad_cam import EigenCAM
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    photos = real_photos(5)
    loc = camloc.Localizer(lite0, method="eigencam")
    x = torch.stack([loc.prepare(p)[0] for p in photos])
    out = loc.run(x)
    layer = dict(lite0.named_modules())[out.head.feature_layer]
    acts = []
    handle = layer.register_forward_hook(lambda _m, _i, o: acts.append(o.detach()))
    try:
        with torch.no_grad():
            lite0(x)
    finally:
        handle.remove()
    theirs = get_2d_projection(acts[0].numpy())  # the projection before EigenCAM's ReLU, sign as numpy's SVD gives
    ours = pc1_projection(acts[0]).numpy()
    reference = camloc.cams(lite0, x, nwc=False).numpy()  # each image's top-1 CAM, which orients the map
    eigencam = EigenCAM(lite0, [layer])(x, targets=None)  # upsampled to the input, min-max scaled
    compared = 0
    for i in range(len(photos)):
        assert abs(corr(ours[i], theirs[i])) > 0.9999  # the same component, up to its sign
        sign = 1.0 if corr(theirs[i], reference[i]) >= 0 else -1.0
        np.testing.assert_allclose(out.maps[i, 0].numpy(), np.maximum(sign * theirs[i], 0), rtol=1e-4, atol=1e-4)
        if sign > 0:  # numpy's sign is the class's: EigenCAM's map is camloc's
            up = F.interpolate(out.maps[i:i + 1], size=x.shape[-2:], mode="bilinear", align_corners=False)
            assert corr(up[0, 0], eigencam[i]) > 0.99
            compared += 1
    assert compared >= 1


@pytest.mark.parametrize("name", ["mobilenetv3_small_050", "vit_tiny_patch16_224", "resnet18"])
def test_every_kind_of_head_is_signed_by_its_cam(name):
    """Gradient heads (MobileNetV3, a class-token ViT) and exact ones: PC1 signed by the class's CAM without NWC."""
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    x = torch.randn(2, 3, 224, 224)
    out = MethodExtractor(model, "pc1")(x, topk=3)
    assert out.maps.shape[:2] == (2, 3) and not out.exact and (out.maps >= 0).all()
    cam = MethodExtractor(model, "cam")(x, topk=3, nwc=False)
    assert torch.equal(cam.classes, out.classes)
    acts = _acts(model, out.head.feature_layer, x, out.head)
    torch.testing.assert_close(out.maps, pc1_maps(acts, cam.maps), rtol=1e-4, atol=1e-5)


def _acts(model, layer_name, x, spec):
    from camloc.cam.gradients import feature_grid

    got = []
    handle = dict(model.named_modules())[layer_name].register_forward_hook(lambda _m, _i, o: got.append(o.detach()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return feature_grid(spec, got[0], x.shape[2:])


def test_the_alias_and_the_command_line():
    model = GapLinear()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(camloc.cams(model, x, method="eigencam"), camloc.cams(model, x, method="pc1"))
    assert camloc.boxes(model, x, method="eigencam")[0].method == "pc1"
    res = CliRunner().invoke(main, ["localize", CAT, "--method", "eigencam", "--json"])
    assert res.exit_code == 0, res.output
    assert '"method": "pc1"' in res.stdout and '"nwc": false' in res.stdout


def test_evaluate_scores_pc1_beside_cam(tmp_path):
    from camloc.data.metadata import read_dataset
    from camloc.eval.evaluation import evaluate
    from camloc.eval.protocols import Settings

    from ..helpers import Brightness, synthetic_split

    meta, images, masks = synthetic_split(tmp_path)
    settings = Settings("wsolevaluation", methods=("cam", "eigencam", "pc1"), interval=0.01)
    assert settings.methods == ("cam", "pc1")  # the alias is its method, once
    res = evaluate(Brightness(), read_dataset(meta), images, settings, masks=masks, progress=False)
    assert [k for k in res.metrics if k.startswith("pc1")] == ["pc1/cam", "pc1/pas"]  # NWC does not apply
    assert all(np.isfinite(v["maxboxacc_v2"]) for v in res.metrics.values())
