"""Multi-label heads: classes scored by sigmoid, one result per class above the threshold, each with its map and box.

A hand-set model makes every score known: a 1x1 conv passes input channels 0 and 1 through, global
average pooling gives their means ``a`` and ``b``, and the head's logits are ``(a, b, -a - b)``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import camloc
from camloc import UsageError
from camloc.cam.extractor import AboveScore, resolve_classes


class TwoChannels(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 2, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).view(2, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, 0], [0, 1.0], [-1.0, -1.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def batch() -> torch.Tensor:
    """Image 0: channel 0 is 8 on its top-left quarter (a = 2, b = 0). Image 1: channel 0 is 2 on its left half,
    channel 1 is 4 on its bottom half (a = 1, b = 2)."""
    x = torch.zeros(2, 3, 32, 32)
    x[0, 0, :16, :16] = 8.0
    x[1, 0, :, :16] = 2.0
    x[1, 1, 16:, :] = 4.0
    return x


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_every_class_above_the_threshold_gets_its_own_box_and_sigmoid_score():
    model = TwoChannels().eval()
    results = camloc.boxes(model, batch(), multilabel=True, score_threshold=0.6)
    assert [[r.class_index for r in per] for per in results] == [[0], [1, 0]]  # best first; sigmoid(0) = 0.5 is out
    (only,), (first, second) = results
    assert only.score == pytest.approx(sigmoid(2.0)) and only.box == (0.0, 0.0, 16.0, 16.0)
    assert first.score == pytest.approx(sigmoid(2.0)) and first.box == (0.0, 16.0, 32.0, 32.0)
    assert second.score == pytest.approx(sigmoid(1.0)) and second.box == (0.0, 0.0, 16.0, 32.0)
    assert all(r.exact for per in results for r in per)
    # each result's map is its own class's CAM: channel 0 for class 0, channel 1 for class 1
    assert torch.allclose(second.cam, batch()[1, 0, ::1, ::1]) and torch.allclose(first.cam, batch()[1, 1])


def test_a_threshold_no_class_passes_gives_an_empty_list_and_a_low_one_every_class():
    model = TwoChannels().eval()
    assert camloc.boxes(model, batch(), multilabel=True, score_threshold=0.95) == [[], []]
    everything = camloc.boxes(model, batch(), multilabel=True, score_threshold=0.0)
    assert [sorted(r.class_index for r in per) for per in everything] == [[0, 1, 2], [0, 1, 2]]


def test_single_label_scores_stay_softmax_and_the_model_is_left_as_it_was():
    model = TwoChannels().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    single = camloc.boxes(model, batch())[0]
    logits = model(batch()[:1])[0]
    assert single.score == pytest.approx(logits.softmax(0)[0].item())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and not model.training


def test_resolve_classes_takes_as_many_classes_as_the_busiest_image():
    logits = torch.tensor([[0.1, 2.0, 0.3], [1.5, 0.2, 0.9], [-5.0, -5.0, -5.0]])
    assert resolve_classes(logits, AboveScore(0.6), None).tolist() == [[1, 2], [0, 2], [0, 1]]
    assert resolve_classes(logits[2:], AboveScore(0.6), None).shape == (1, 1)  # at least one class
    with pytest.raises(UsageError, match="threshold or topk"):
        resolve_classes(logits, AboveScore(0.5), 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"classes": 1}, "leave classes and topk out"),
    ({"topk": 2}, "leave classes and topk out"),
    ({"score_threshold": 1.0}, r"score_threshold must be a number in \[0, 1\), not 1.0"),
    ({"score_threshold": -0.1}, r"score_threshold must be a number in \[0, 1\)"),
    ({"score_threshold": "high"}, r"score_threshold must be a number in \[0, 1\), not 'high'"),
    ({"score_threshold": None}, r"score_threshold must be a number in \[0, 1\), not None"),
])
def test_bad_multilabel_requests_are_refused_in_one_line(kwargs, match):
    with pytest.raises(UsageError, match=match):
        camloc.boxes(TwoChannels().eval(), batch(), multilabel=True, **kwargs)


def test_a_real_model_multilabel_on_photos():
    photos = ["examples/images/cat.jpg", "examples/images/coffee.jpg"]
    results = camloc.boxes("efficientnet_lite0", photos, multilabel=True, score_threshold=0.9)
    plain = camloc.Localizer("efficientnet_lite0")
    loc = camloc.Localizer("efficientnet_lite0", multilabel=True, score_threshold=0.9)
    assert results == loc.boxes(photos)
    for per, photo in zip(results, photos, strict=True):
        x, _, _ = plain.prepare(photo)
        with torch.no_grad():
            expected = (plain.model(x[None])[0].sigmoid() > 0.9).nonzero().flatten().tolist()
        assert sorted(r.class_index for r in per) == sorted(expected)
        assert all(0 <= r.box[0] < r.box[2] <= r.width and 0 <= r.box[1] < r.box[3] <= r.height for r in per)
