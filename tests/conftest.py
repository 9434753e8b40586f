"""Shared fixtures: the offline pretrained model, the real data beside the project, tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from camloc.data.location import data_root

ROOT = Path(__file__).resolve().parent.parent
DATA = data_root(ROOT)  # $CAMLOC_DATA, else ../shared/data beside this checkout
EXAMPLES = ROOT / "examples" / "images"


def data_dir(name: str) -> Path:
    """A folder of the real data (DATA), or skip the test when it is absent (a user's fresh clone)."""
    path = DATA / name
    if not (path / "image_ids.txt").is_file():
        pytest.skip(f"real data {path} is not present")
    return path


@pytest.fixture(scope="session")
def lite0():
    """The offline ImageNet-pretrained efficientnet_lite0 (shared, never modified by tests)."""
    import camloc

    return camloc.load_model("efficientnet_lite0")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
