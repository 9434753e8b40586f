"""Head analyses: made once per model and requested layers by their cache's owner, never keeping a model alive."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

import camloc
import camloc.cam.extractor as extractor_module
from camloc import CAMExtractor
from camloc.cam.cache import HeadCache

from ..helpers import GapLinear


@pytest.fixture
def analyses(monkeypatch):
    """The models analysed, one entry per analysis the extractor makes."""
    seen: list[torch.nn.Module] = []
    real = extractor_module.analyze

    def counted(model, *args, **kwargs):
        seen.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(extractor_module, "analyze", counted)
    return seen


def test_an_extractor_analyses_once_then_again_only_for_a_larger_batch(analyses):
    model = GapLinear()
    ex = CAMExtractor(model)
    assert ex.head is None
    for _ in range(3):
        ex(torch.randn(2, 3, 32, 32))
        ex(torch.randn(1, 3, 16, 16))  # smaller: the analysis serves it
    assert analyses == [model] and ex.head.feature_layer == "features"
    ex(torch.randn(1, 3, 48, 48))
    assert len(analyses) == 2
    ex(torch.randn(1, 3, 48, 48))
    assert len(analyses) == 2


def test_the_cache_is_the_extractors_own_unless_one_is_shared(analyses):
    model = GapLinear()
    x = torch.randn(2, 3, 32, 32)
    CAMExtractor(model)(x)
    CAMExtractor(model)(x)
    assert len(analyses) == 2  # each extractor analyses with its own cache
    shared = HeadCache()
    first, second = CAMExtractor(model, cache=shared), CAMExtractor(model, cache=shared)
    first(x)
    second(x)
    assert len(analyses) == 3 and second.head is first.head and len(shared) == 1
    CAMExtractor(model, feature_layer="features.0", cache=shared)(x)  # other layers asked for: analysed apart
    assert len(analyses) == 4


def test_localizers_share_one_cache_so_each_call_does_not_analyse_again(analyses):
    model = GapLinear()
    x = torch.randn(2, 3, 64, 64)
    first = camloc.boxes(model, x)
    for _ in range(2):
        assert [r.box for r in camloc.boxes(model, x)] == [r.box for r in first]
        camloc.cams(model, x)
    assert analyses == [model]
    assert camloc.Localizer(model).extractor.head is not None  # a fresh Localizer finds the analysis


def test_a_cache_never_keeps_a_model_alive():
    shared = HeadCache()
    model = GapLinear()
    CAMExtractor(model, cache=shared)(torch.randn(1, 3, 32, 32))
    camloc.boxes(model, torch.randn(1, 3, 64, 64))
    gc.collect()  # models earlier tests left in reference cycles go now, not in the count below
    held = len(camloc.Localizer.heads)
    assert len(shared) == 1
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
    assert len(shared) == 0 and len(camloc.Localizer.heads) == held - 1
