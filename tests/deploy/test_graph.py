"""The graph's thresholds equal camloc's on the same levels, and the graph's outputs equal the extractor's maps."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from camloc.cam.boxes import foreground, thresholds
from camloc.cam.extractor import CAMExtractor
from camloc.cam.rules import ThresholdRule
from camloc.deploy.graph import GRAPH_RULES, LocalizerGraph, check_rule, graph_thresholds, percentile_levels
from camloc.runtime.metadata import OUTPUTS
from camloc.utils.errors import UsageError

from ..helpers import assert_same, snapshot


def level_maps(seed: int) -> torch.Tensor:
    """Uint8 maps as the box rule makes them: smooth blobs, a constant map, a two-level map, pure noise."""
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(3, 1, 5, 5, generator=g), size=(40, 48), mode="bicubic",
                                             align_corners=False)[:, 0]
    smooth = ((smooth - smooth.amin((1, 2), keepdim=True)) / (smooth.amax((1, 2), keepdim=True)
              - smooth.amin((1, 2), keepdim=True)) * 255).to(torch.uint8)
    constant = torch.zeros(1, 40, 48, dtype=torch.uint8)
    two = torch.zeros(1, 40, 48, dtype=torch.uint8)
    two[0, :10] = 255
    noise = torch.randint(0, 256, (1, 40, 48), generator=g, dtype=torch.uint8)
    return torch.cat([smooth, constant, two, noise])


@pytest.mark.parametrize("standard", [ThresholdRule.pas(), ThresholdRule.max(0.2), ThresholdRule.pas(0.5, 37.3),
                                      ThresholdRule.pas(0.35, 0.0), *(ThresholdRule.adaptive(r) for r in GRAPH_RULES
                                                                      if r != "percentile")])
@pytest.mark.parametrize("seed", [0, 1])
def test_thresholds_equal_the_box_rules(standard, seed):
    u8 = level_maps(seed)
    want = thresholds(u8, standard)
    got = graph_thresholds(u8.flatten(1).double(), standard)
    assert got.dtype == torch.int64
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("q", [0.0, 12.5, 50.0, 90.0, 99.9, 100.0])
def test_percentile_is_numpys(q):
    levels = torch.randint(0, 256, (4, 1001), generator=torch.Generator().manual_seed(3)).double()
    assert percentile_levels(levels, q).tolist() == [float(np.percentile(row, q)) for row in levels.numpy()]


def test_li_is_refused_in_one_line():
    with pytest.raises(UsageError, match="'li' threshold iterates"):
        check_rule(ThresholdRule.adaptive("li"))


def test_outputs_are_the_extractors_maps_and_the_box_rules_masks():
    model = timm.create_model("resnet18", num_classes=7).eval()
    x = torch.randn(2, 3, 96, 128)
    before = snapshot(model)
    extractor = CAMExtractor(model)
    want = extractor(x, topk=3, nwc=True)
    graph = LocalizerGraph(model, extractor.head, 3, True, ThresholdRule.pas())
    with torch.no_grad():
        out = dict(zip(OUTPUTS, graph(x), strict=True))
    assert_same(before, snapshot(model))  # the hook is gone, nothing else changed
    assert torch.equal(out["classes"], want.classes)
    assert torch.allclose(out["cams"], want.maps, atol=1e-5)
    assert torch.allclose(out["logits"], want.logits)
    assert torch.allclose(out["scores"], want.logits.softmax(1).gather(1, want.classes))
    u8, masks = foreground(want.maps.flatten(0, 1), (96, 128), ThresholdRule.pas())
    assert torch.equal(out["masks"].flatten(0, 1), masks)
    assert torch.equal(torch.floor(out["maps"].double().flatten(0, 1) * 255).to(torch.uint8), u8)
