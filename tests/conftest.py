"""Shared fixtures: the offline pretrained model, the real photos in ``$CAMLOC_DATA``, tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from camloc.data.location import DATA_ENV, data_root

ROOT = Path(__file__).resolve().parent.parent
DATA = data_root()  # the folder $CAMLOC_DATA names, or None when it is unset
EXAMPLES = ROOT / "examples" / "images"


def data_dir(name: str) -> Path:
    """A split of the real photos in ``$CAMLOC_DATA``, or skip the test when it is unset or lacks the split."""
    if DATA is None:
        pytest.skip(f"real photos: {DATA_ENV} is unset (set it to the folder holding {name}/)")
    path = DATA / name
    if not (path / "image_ids.txt").is_file():
        pytest.skip(f"real photos: {path} has no image_ids.txt ({DATA_ENV}={DATA})")
    return path


@pytest.fixture(scope="session")
def lite0():
    """The offline ImageNet-pretrained efficientnet_lite0 (shared, never modified by tests)."""
    import camloc

    return camloc.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def lite0_onnx(tmp_path_factory) -> Path:
    """efficientnet_lite0 with its ImageNet weights exported by ``camloc.export`` (top-3, PaS, NWC): one file for all."""
    import camloc

    path = tmp_path_factory.mktemp("export") / "lite0.onnx"
    camloc.export("efficientnet_lite0", path, topk=3)
    return path


def real_photos(count: int = 8) -> list[str]:
    """The example photos, and the first ``count`` ImageNet validation photos of ``$CAMLOC_DATA`` where it is set."""
    photos = sorted(str(p) for p in EXAMPLES.glob("*.jpg"))
    if DATA is not None and (DATA / "imagenet-val" / "image_ids.txt").is_file():
        ids = (DATA / "imagenet-val" / "image_ids.txt").read_text().split()[:count]
        photos += [str(DATA / "imagenet-val" / i) for i in ids]
    return photos


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
