"""camloc.export: the runtime's results equal camloc.boxes's for the heads that export; the others are refused."""

from __future__ import annotations

import json

import onnx
import pytest
import timm
import torch

import camloc
from camloc.runtime import OnnxLocalizer
from camloc.utils.errors import ModelError, UsageError

from ..conftest import real_photos
from ..helpers import CAT, assert_same, assert_same_localizations, prepared, snapshot


def random_model(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kw).eval()


def tap_retrofitted() -> torch.nn.Module:
    torch.manual_seed(0)
    return camloc.retrofit(timm.create_model("resnet18", pretrained=False), "tap").eval()


#: Models with no offline weights are random: their maps and boxes are still the function the runtime must equal.
MODELS = {
    "resnet50": lambda: random_model("resnet50"),
    "convnext_tiny": lambda: random_model("convnext_tiny"),
    "resnet18 + TAP": tap_retrofitted,
    "vit avg-pooled": lambda: random_model("vit_tiny_patch16_224", global_pool="avg"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_runtime_equals_camloc_boxes_on_real_photos(name, tmp_path):
    model = MODELS[name]()
    photos = real_photos(4)
    report = camloc.export(model, tmp_path / "m.onnx", topk=2, check=False)
    want = camloc.boxes(model, photos, topk=2)
    assert_same_localizations(OnnxLocalizer(report.path).boxes(photos, topk=2), want)


def test_real_weights_export_carries_their_settings(lite0_onnx):
    meta = {p.key: p.value for p in onnx.load(str(lite0_onnx), load_external_data=False).metadata_props}
    assert meta["camloc.model"] == "efficientnet_lite0" and meta["camloc.version"] == camloc.__version__
    assert json.loads(meta["camloc.preprocess"])["mode"] == "resize"
    assert json.loads(meta["camloc.labels"])[285] == "Egyptian cat"
    assert (meta["camloc.topk"], meta["camloc.nwc"], meta["camloc.head"]) == ("3", "true", "avg")
    graph = onnx.load(str(lite0_onnx), load_external_data=False).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # the batch size is free
    assert [o.name for o in graph.output] == list(camloc.runtime.OUTPUTS)


@pytest.mark.parametrize("settings", [dict(standard="max"), dict(nwc=False), dict(standard="otsu"),
                                      dict(resize="crop", standard="percentile", theta=0.5, percentile=80.0)])
def test_settings_reach_the_graph(settings, tmp_path):
    model = random_model("resnet18", num_classes=10)
    report = camloc.export(model, tmp_path / "m.onnx", **settings)
    assert report.map_difference is not None and report.map_difference <= 1e-4
    got = OnnxLocalizer(report.path).boxes([CAT])
    assert_same_localizations(got, camloc.boxes(model, [CAT], **settings))


def test_the_users_model_is_left_as_it_was(tmp_path):
    model = prepared("resnet18")
    before = snapshot(model)
    camloc.export(model, tmp_path / "m.onnx", check=False)
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("name, kw, why", [
    ("vit_tiny_patch16_224", {}, "reads its class token, so its map is the gradient"),
    ("mobilenetv3_small_050", {}, r"its map is the gradient of its head \(not affine"),
])
def test_gradient_heads_are_refused_before_tracing(name, kw, why, tmp_path):
    with pytest.raises(ModelError, match=why) as err:
        camloc.export(random_model(name, **kw), tmp_path / "m.onnx")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("kw, message", [
    (dict(standard="li"), "'li' threshold iterates"),
    (dict(topk=11), "topk must be between 1 and 10"),
    (dict(standard="otsu", theta=0.3), "theta applies only"),
    (dict(resize="middle"), "resize must be 'full' or 'crop'"),
])
def test_settings_the_graph_cannot_hold_are_refused(kw, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        camloc.export(random_model("resnet18", num_classes=10), tmp_path / "m.onnx", **kw)


def test_a_failed_export_leaves_the_old_file(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    with pytest.raises(ModelError):
        camloc.export(random_model("mobilenetv3_small_050"), target)
    assert target.read_bytes() == b"old"
    with pytest.raises(UsageError, match="does not exist"):
        camloc.export(random_model("resnet18", num_classes=3), tmp_path / "no" / "m.onnx", check=False)
    with pytest.raises(UsageError, match="is a folder"):
        camloc.export(random_model("resnet18", num_classes=3), tmp_path, check=False)


def test_a_double_model_is_refused_with_the_fix(tmp_path):
    with pytest.raises(UsageError, match=r"has float64 parameters; .* export a float32 copy"):
        camloc.export(random_model("resnet18", num_classes=5).double(), tmp_path / "m.onnx")


def test_exporter_failures_name_the_operation(tmp_path, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("Failed.\n## Exception summary\n\n<class 'AssertionError'>: \x1b[96monly 4D\x1b[0m\n"
                           "%x = call_function[target=torch.ops.aten.scaled_dot_product_attention.default]")

    monkeypatch.setattr(torch.onnx, "export", fails)
    with pytest.raises(ModelError, match=r"could not convert it \(aten\.scaled_dot_product_attention: only 4D\)$"):
        camloc.export(random_model("resnet18", num_classes=3), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
