"""Per-class localization of a multi-label split: each class with its own map against its own boxes, on a
hand-set head whose maps are known (class 0's map is the red channel, class 1's the green one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from camloc.data.metadata import Sample, read_dataset
from camloc.eval.evaluation import evaluate
from camloc.eval.per_class import class_means, class_splits, evaluate_per_class
from camloc.eval.protocols import Settings
from camloc.utils.errors import UsageError

LEFT, RIGHT = (4, 16, 27, 47), (36, 16, 59, 47)  # inclusive pixel boxes of the 64 x 64 pictures
#: Per image: its classes, (red square, green square) places, and its box lines' (box, class or None).
IMAGES = [
    ((0, 1), (LEFT, RIGHT), [(LEFT, 0), (RIGHT, 1)]),    # both found: a hit for each class
    ((0,), (LEFT, None), [(LEFT, 0)]),                   # a hit
    ((1,), (None, LEFT), [(RIGHT, 1)]),                  # green on the left, its box on the right: a miss
    ((0, 1), (LEFT, RIGHT), [(LEFT, None), (RIGHT, None)]),  # boxes of every class: a hit for each
    ((1, 0), (LEFT, RIGHT), [(RIGHT, 0), (LEFT, 1)]),    # each class's box where the other class is: two misses
]


class RedGreen(nn.Module):
    """A 1x1 conv passing the red and green channels through, GAP, and logits (red mean, green mean)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 2, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).view(2, 3, 1, 1))
            self.fc.weight.copy_(torch.eye(2))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def write_split(root):
    images, meta = root / "images", root / "meta"
    images.mkdir()
    meta.mkdir()
    labels, boxes = [], []
    for i, (classes, squares, box_lines) in enumerate(IMAGES):
        arr = np.zeros((64, 64, 3), np.uint8)
        for channel, place in enumerate(squares):
            if place is not None:
                x0, y0, x1, y1 = place
                arr[y0:y1 + 1, x0:x1 + 1, channel] = 255
        Image.fromarray(arr).save(images / f"{i}.png")
        labels += [f"{i}.png,{c}" for c in classes]
        boxes += [f"{i}.png,{','.join(map(str, b))}" + ("" if c is None else f",{c}") for b, c in box_lines]
    (meta / "image_ids.txt").write_text("".join(f"{i}.png\n" for i in range(len(IMAGES))))
    (meta / "class_labels.txt").write_text("\n".join(labels) + "\n")
    (meta / "image_sizes.txt").write_text("".join(f"{i}.png,64,64\n" for i in range(len(IMAGES))))
    (meta / "localization.txt").write_text("\n".join(boxes) + "\n")
    return meta, images


def test_each_class_is_localized_with_its_own_map_against_its_own_boxes(tmp_path):
    meta, images = write_split(tmp_path)
    samples = read_dataset(meta, multilabel=True)
    model = RedGreen().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = evaluate_per_class(model, samples, images, Settings("rethinking", ("cam",)), progress=False)
    assert {c: v["images"] for c, v in result.classes.items()} == {0: 4, 1: 4}
    assert result.classes[0]["metrics"]["cam"] == {"gt_known_loc": 75.0}  # images 0, 1, 3 hit; 4 misses
    assert result.classes[1]["metrics"]["cam"] == {"gt_known_loc": 50.0}  # images 0, 3 hit; 2, 4 miss
    assert result.mean == {"cam": {"gt_known_loc": 62.5}}
    assert result.dataset == {"images": str(images), "n": 5, "pairs": 8, "failed": 0} and result.failed == []
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and not model.training
    d = result.to_dict()
    assert d["classes"]["1"]["images"] == 4 and d["mean"] == result.mean and d["protocol"] == "rethinking"


def test_a_class_split_scores_as_the_single_label_evaluation_does(tmp_path):
    meta, images = write_split(tmp_path)
    samples = read_dataset(meta, multilabel=True)
    settings = Settings("wsolevaluation", ("cam", "nwc"), interval=0.05)
    result = evaluate_per_class(RedGreen().eval(), samples, images, settings, progress=False)
    for c, split in class_splits(samples).items():
        single = evaluate(RedGreen().eval(), split, images, settings, progress=False).metrics
        for row, metrics in single.items():
            assert result.classes[c]["metrics"][row] == {k: v for k, v in metrics.items() if "cls" not in k}
    # class 0 hits three of its four images at IoU 50 at some tau; class 1 two of four
    assert [result.classes[c]["metrics"]["cam"]["maxboxacc_v2_per_delta"][50]["acc"] for c in (0, 1)] == [75.0, 50.0]
    assert result.mean["cam"]["maxboxacc_v2_per_delta"][50] == {"acc": 62.5}
    assert "maxboxacc_v2_per_delta" in result.mean["nwc"] and "maxboxacc_tau" not in result.mean["cam"]


def test_class_splits_and_means_by_hand():
    s = Sample("a", 2, 10, 10, ((0, 0, 1, 1), (2, 2, 3, 3)), classes=(2, 5), box_classes=(5, None))
    t = Sample("b", 5, 10, 10, ((4, 4, 5, 5),))
    splits = class_splits([s, t])
    assert [(x.image_id, x.label, x.boxes) for x in splits[5]] == [("a", 5, ((0, 0, 1, 1), (2, 2, 3, 3))),
                                                                  ("b", 5, ((4, 4, 5, 5),))]
    assert [(x.image_id, x.classes, x.boxes) for x in splits[2]] == [("a", (2,), ((2, 2, 3, 3),))]
    means = class_means({2: {"cam": {"gt_known_loc": 50.0, "maxboxacc_tau": 0.3}},
                         5: {"cam": {"gt_known_loc": 100.0, "maxboxacc_tau": 0.6}}})
    assert means == {"cam": {"gt_known_loc": 75.0}}


def test_the_map_of_another_class_is_refused(tmp_path):
    meta, images = write_split(tmp_path)
    with pytest.raises(UsageError, match="needs cam_class 'gt', not 'top1'"):
        evaluate_per_class(RedGreen(), read_dataset(meta, multilabel=True), images,
                           Settings("rethinking", ("cam",), cam_class="top1"), progress=False)
