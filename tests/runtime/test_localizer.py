"""OnnxLocalizer against camloc.boxes on real photos, without torch, from the runtime wheel alone, and on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import camloc
from camloc.runtime import OnnxLocalizer
from camloc.utils.errors import ImageError, ModelError, UsageError

from ..conftest import ROOT, real_photos
from ..helpers import CAT, COFFEE, assert_same_localizations, pixel_tolerance

#: Run in a fresh interpreter: importing torch, timm, numba or matplotlib fails there; prints the runtime's results.
NO_TORCH = r"""
import importlib.abc, json, sys
BLOCKED = ("torch", "torchvision", "timm", "numba", "matplotlib")
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this process")
sys.meta_path.insert(0, Blocked())
import camloc
from camloc.runtime import OnnxLocalizer
onnx, photos = sys.argv[1], sys.argv[2:]
results = OnnxLocalizer(onnx).boxes(photos, topk=2)
print(json.dumps({"camloc": camloc.__file__, "modules": sorted(sys.modules),
                  "results": [[r.to_dict(with_map=True) for r in per] for per in results]}))
"""


def run_without_torch(python: str, onnx: Path, photos: list[str], env: dict | None = None) -> dict:
    done = subprocess.run([python, "-c", NO_TORCH, str(onnx), *photos], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(onnx), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def assert_same_dicts(got: list[list[dict]], want: list[list[camloc.Localization]]) -> None:
    """The runtime's results as JSON against camloc.boxes's: same classes, boxes within one pixel of the network
    input (JSON rounds them to 0.01 px), maps within 1e-4 after min-max scaling."""
    from camloc.cam.rules import unit_range

    assert len(got) == len(want)
    for per_got, per_want in zip(got, want, strict=True):
        for a, b in zip(per_got, per_want, strict=True):
            assert (a["class"], a["label"], a["region_mode"]) == (b.class_index, b.label, b.region_mode)
            assert np.abs(np.subtract(a["box"], b.box)).max() <= pixel_tolerance(b) + 0.005, (b.image, a["box"], b.box)
            assert np.abs(unit_range(np.array(a["cam"])) - unit_range(b.cam)).max() <= 1e-4


@pytest.fixture(scope="module")
def torch_results():
    photos = real_photos()
    return photos, camloc.boxes("efficientnet_lite0", photos, topk=2)


def test_boxes_equal_camloc_boxes_on_real_photos(lite0_onnx, torch_results):
    photos, want = torch_results
    loc = OnnxLocalizer(lite0_onnx)
    assert_same_localizations(loc.boxes(photos, topk=2, batch_size=3), want)
    top1 = loc.boxes(photos)
    assert [r.class_index for r in top1] == [per[0].class_index for per in want]
    assert all(isinstance(r.cam, np.ndarray) and r.cam.shape == (7, 7) for r in top1)


def test_all_regions_and_in_memory_images_match(lite0_onnx):
    from PIL import Image

    images = [Image.open(CAT), np.asarray(Image.open(COFFEE).convert("RGB"))]
    want = camloc.boxes("efficientnet_lite0", images, all_regions=True)
    got = OnnxLocalizer(lite0_onnx, all_regions=True).boxes(images)
    assert_same_localizations(got, want)
    assert [r.image for r in got] == ["<image 0>", "<image 1>"]
    assert [len(r.boxes) for r in got] == [len(r.boxes) for r in want]


def test_localizes_in_a_process_where_torch_cannot_be_imported(lite0_onnx, torch_results):
    photos, want = torch_results
    out = run_without_torch(sys.executable, lite0_onnx, photos)
    assert not [m for m in out["modules"] if m.split(".")[0] in ("torch", "timm", "torchvision", "numba")]
    assert_same_dicts(out["results"], want)


def test_the_runtime_wheel_alone_localizes(tmp_path, lite0_onnx, torch_results):
    """camloc-runtime's files, installed into a folder of their own, are all the runtime needs of camloc."""
    photos, want = torch_results
    built = subprocess.run([sys.executable, str(ROOT / "packaging" / "runtime_wheel.py"), "--out", str(tmp_path)],
                           capture_output=True, text=True, check=True)
    wheel = next(tmp_path.glob("camloc_runtime-*.whl"))
    assert "camloc.runtime.localizer" in built.stdout and "camloc.api" not in built.stdout
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    assert not (target / "camloc" / "api.py").exists() and not (target / "camloc" / "cam" / "boxes.py").exists()
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = run_without_torch(sys.executable, lite0_onnx, photos[:3], env)
    assert out["camloc"] == str(target / "camloc" / "__init__.py")
    assert_same_dicts(out["results"], want[:3])


def test_in_an_environment_without_torch(lite0_onnx, torch_results):
    """Where CI built one (CAMLOC_RUNTIME_PYTHON: a fresh venv with camloc-runtime and its four requirements)."""
    python = os.environ.get("CAMLOC_RUNTIME_PYTHON")
    if not python:
        pytest.skip("CAMLOC_RUNTIME_PYTHON is unset: .ci/run builds a torch-free environment with camloc-runtime")
    missing = subprocess.run([python, "-c", "import torch"], capture_output=True)
    assert missing.returncode != 0, "the runtime environment has torch installed"
    photos, want = torch_results
    out = run_without_torch(python, lite0_onnx, photos)
    assert "site-packages" in out["camloc"]
    assert_same_dicts(out["results"], want)


def test_without_camloc_torch_modules_the_rest_says_what_it_needs(tmp_path):
    from camloc.utils.lazy import lazy_namespace

    getattr_, _ = lazy_namespace("camloc", {"missing": ("not_in_this_install", "x")})
    with pytest.raises(ModuleNotFoundError, match=r"camloc\.missing needs the whole camloc package"):
        getattr_("missing")


def test_bad_files_are_one_line_naming_them(tmp_path, lite0_onnx):
    import onnx
    from onnx import TensorProto, helper

    with pytest.raises(ModelError, match="no such file"):
        OnnxLocalizer(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"junk\.onnx: onnxruntime cannot load it"):
        OnnxLocalizer(tmp_path / "junk.onnx")
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "plain", io[:1], io[1:])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "plain.onnx")
    with pytest.raises(ModelError, match=r"plain\.onnx: it carries no camloc metadata"):
        OnnxLocalizer(tmp_path / "plain.onnx")
    with pytest.raises(UsageError, match="device must be one of cpu, cuda"):
        OnnxLocalizer(lite0_onnx, device="tpu")
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(UsageError, match="needs onnxruntime's CUDAExecutionProvider.*install onnxruntime-gpu"):
            OnnxLocalizer(lite0_onnx, device="cuda")


def test_bad_requests_are_refused_before_work(lite0_onnx, tmp_path):
    loc = OnnxLocalizer(lite0_onnx)
    with pytest.raises(UsageError, match="topk must be between 1 and 3, the top-k this file was exported with"):
        loc.boxes(CAT, topk=4)
    with pytest.raises(UsageError, match="batch_size must be at least 1"):
        loc.boxes(CAT, batch_size=0)
    with pytest.raises(UsageError, match="top-k predicted classes only"):
        loc.device_stage(np.zeros((1, 3, 224, 224), np.float32), classes=[3])
    with pytest.raises(UsageError, match=r"takes B x 3 x 224 x 224 batches .* not \(1, 3, 100, 100\)"):
        loc.run(np.zeros((1, 3, 100, 100), np.float32))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(ImageError, match="broken.jpg"):
        loc.boxes([CAT, tmp_path / "broken.jpg"])
    assert (loc.labels()[285], loc.num_classes()) == ("Egyptian cat", 1000)
