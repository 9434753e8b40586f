"""Hugging Face transformers classifiers: id2label names, the image processor's preprocessing, loading by name.

The hub cannot be reached here, so ``hf:ORG/NAME`` is tested the way it runs offline: from a Hugging
Face cache laid out as ``huggingface_hub`` lays it out (``models--ORG--NAME/refs/main`` naming a
snapshot that holds the files ``save_pretrained`` wrote), with ``HF_HUB_OFFLINE`` set.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

import camloc  # noqa: E402
from camloc.models import model_config  # noqa: E402
from camloc.models.hf import hf_labels, processor_preprocess  # noqa: E402
from camloc.utils.errors import ModelError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = [str(ROOT / "examples" / "images" / name) for name in ("cat.jpg", "coffee.jpg")]
LABELS = {0: "tabby cat", 1: "espresso", 2: "owl"}


def tiny_resnet(labels: dict[int, str] | None = LABELS) -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 8, 16, 16], depths=[1, 1, 1, 1],
                                       num_labels=3, **({"id2label": labels} if labels else {}))
    return transformers.ResNetForImageClassification(config).eval()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A folder save_pretrained wrote: a 3-class ResNet with names, and a DeiT-style processor (256, crop 224)."""
    path = tmp_path_factory.mktemp("hf") / "tiny-resnet"
    tiny_resnet().save_pretrained(path)
    transformers.DeiTImageProcessor().save_pretrained(path)
    return path


@pytest.fixture
def hub_cache(folder, tmp_path, monkeypatch) -> Path:
    """A Hugging Face cache holding ``camloc-test/tiny-resnet`` (the folder's files), used offline."""
    repo = tmp_path / "hub" / "models--camloc-test--tiny-resnet"
    revision = "0" * 40
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"


def test_labels_come_from_id2label_in_class_order_and_placeholders_are_none():
    assert hf_labels(tiny_resnet().config) == ("tabby cat", "espresso", "owl")
    assert hf_labels(tiny_resnet(labels=None).config) is None  # LABEL_0, LABEL_1, ...
    assert hf_labels(transformers.ResNetConfig(id2label={"1": "b", "0": "a"})) == ("a", "b")


def test_a_model_object_is_labelled_by_id2label_and_left_as_it_was():
    model = tiny_resnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    results = camloc.boxes(model, PHOTOS)
    assert [r.label for r in results] == [LABELS[r.class_index] for r in results]
    assert not hasattr(model, "camloc_cfg") and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    named = camloc.boxes(model, PHOTOS[:1], classes="owl")[0]
    assert (named.class_index, named.label) == (2, "owl")


PROCESSORS = [
    transformers.ViTImageProcessor(),
    transformers.DeiTImageProcessor(),
    transformers.BeitImageProcessor(),
    transformers.ConvNextImageProcessor(size={"shortest_edge": 224}),
    transformers.ConvNextImageProcessor(),  # 384: squashed, not cropped
    transformers.BitImageProcessor(),
    transformers.MobileNetV2ImageProcessor(),
    transformers.EfficientNetImageProcessor(),  # include_top: divided by the std twice
    transformers.EfficientNetImageProcessor(rescale_offset=True, include_top=False),
    transformers.ViTImageProcessor(do_normalize=False),
]


@pytest.mark.parametrize("processor", PROCESSORS, ids=lambda p: f"{type(p).__name__}-{p.size}")
def test_the_preprocessing_gives_the_processors_pixels_on_a_real_photo(processor):
    from PIL import Image

    image = Image.open(PHOTOS[0]).convert("RGB")
    reference = processor(image, return_tensors="pt")["pixel_values"][0]
    x, _ = processor_preprocess(processor)(image)
    assert x.shape == reference.shape
    # Both resize with the same filter; a level of rounding (1/255 of the value range) is all that differs.
    scale = max(abs(s) for s in processor.image_std) if processor.do_normalize else 1.0
    step = 1 / 255 / scale ** (2 if getattr(processor, "include_top", False) else 1)
    assert (x - reference).abs().max() <= 4.01 * step
    assert (x - reference).abs().mean() <= 0.01 * step


def test_the_geometry_follows_the_processor():
    vit = processor_preprocess(transformers.ViTImageProcessor(size={"height": 384, "width": 384}))
    assert (vit.input_size, vit.mode) == ((384, 384), "resize")
    deit = processor_preprocess(transformers.DeiTImageProcessor())
    assert (deit.input_size, deit.mode, deit.resize_size, deit.interpolation) == ((224, 224), "crop", (256, 256),
                                                                                   "bicubic")
    convnext = processor_preprocess(transformers.ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875))
    assert (convnext.mode, convnext.resize_size) == ("crop", 256)
    with pytest.raises(ModelError, match="preprocess="):
        processor_preprocess({"size": {"longest_edge": 300}, "do_normalize": False})


def test_a_saved_folder_loads_by_path_with_its_labels_and_processor(folder):
    model = camloc.load_model(str(folder))
    cfg = model_config(model)
    assert (cfg.source, cfg.name, cfg.class_names) == ("hf", str(folder), ("tabby cat", "espresso", "owl"))
    assert cfg.preprocess == processor_preprocess(transformers.DeiTImageProcessor())
    results = camloc.boxes(str(folder), PHOTOS, resize="crop")
    reference = camloc.boxes(tiny_resnet(), PHOTOS, preprocess=cfg.preprocess, resize="crop")
    assert [(r.class_index, r.label, r.box) for r in results] == [(r.class_index, r.label, r.box) for r in reference]
    assert all(r.exact for r in results)


def test_a_model_object_from_a_folder_finds_its_processor(folder):
    model = transformers.AutoModelForImageClassification.from_pretrained(folder)
    assert model_config(model).preprocess == processor_preprocess(transformers.DeiTImageProcessor())
    assert not hasattr(model, "camloc_cfg")


def test_hf_names_load_from_the_hugging_face_cache_offline(hub_cache):
    # In a fresh process: huggingface_hub reads HF_HUB_CACHE when it is imported.
    script = (
        "import camloc; from camloc.models import model_config\n"
        "m = camloc.load_model('hf:camloc-test/tiny-resnet'); c = model_config(m)\n"
        "print(c.source, c.name, c.class_names[2], c.preprocess.resize_size)\n"
        f"print(camloc.boxes('hf:camloc-test/tiny-resnet', [{PHOTOS[0]!r}])[0].label)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "hf hf:camloc-test/tiny-resnet owl (256, 256)"
    assert second in LABELS.values()


def test_an_hf_name_out_of_reach_fails_at_once_with_the_ways_out(hub_cache):
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE is set and it is not in the Hugging Face cache") as info:
        camloc.load_model("hf:camloc-test/not-there")
    assert "save_pretrained" in str(info.value)
    for bad in ("hf:", "hf:a/b/c", "hf:has space"):
        with pytest.raises(ModelError, match="not a Hugging Face model id"):
            camloc.load_model(bad)


def test_a_folder_without_config_is_named_with_the_fix(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        camloc.load_model(str(tmp_path))


def test_a_state_dict_loads_into_an_hf_architecture(folder, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(tiny_resnet().state_dict(), path)
    model = camloc.load_model(str(folder), checkpoint=path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny_resnet().state_dict().values(),
                                                 strict=True))


def test_the_cli_names_hf_models_by_folder_and_by_hub_id(folder, hub_cache):
    env_cmd = [sys.executable, "-m", "camloc", "localize", PHOTOS[0], "--json"]
    for model in (str(folder), "hf:camloc-test/tiny-resnet"):
        done = subprocess.run([*env_cmd, "--model", model], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout.splitlines()[0])
        assert record["label"] == LABELS[record["class"]] and record["model"] == model
    done = subprocess.run([*env_cmd, "--model", "hf:camloc-test/not-there"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "HF_HUB_OFFLINE" in done.stderr.strip().splitlines()[-1]
