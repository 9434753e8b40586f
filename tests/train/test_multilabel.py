"""Multi-label training: multi-hot targets, binary cross-entropy on the logits (checked against the formula on
the run's own first batch), per-label accuracy and micro F1 in the record, resume = uninterrupted, validation by
per-class localization, and the combinations refused in one line."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from camloc.data.metadata import MetadataError
from camloc.models.checkpoints import read_checkpoint
from camloc.train.config import TrainConfig, load_config
from camloc.train.data import training_data, training_loader
from camloc.train.logs import epoch_line, legend
from camloc.train.loop import build_model, train
from camloc.train.objective import MultiLabel, SingleLabel, training_objective
from camloc.utils.errors import UsageError

from ..helpers import assert_same_runs

#: Six 48 x 48 pictures: class 0 a red square on the left, class 1 a green one on the right, some with both.
CLASSES = [(0,), (1,), (0, 1), (1, 0), (0,), (1,)]


def multilabel_split(root):
    images, meta = root / "images", root / "meta"
    images.mkdir()
    meta.mkdir()
    rng = np.random.default_rng(0)
    labels, boxes = [], []
    for i, classes in enumerate(CLASSES):
        arr = rng.integers(0, 20, (48, 48, 3), dtype=np.uint8)
        for c in classes:
            x0 = 4 if c == 0 else 28
            arr[10:30, x0:x0 + 16, c] = 255
            boxes.append(f"{i}.png,{x0},10,{x0 + 15},29,{c}")
        Image.fromarray(arr).save(images / f"{i}.png")
        labels += [f"{i}.png,{c}" for c in classes]
    (meta / "image_ids.txt").write_text("".join(f"{i}.png\n" for i in range(len(CLASSES))))
    (meta / "class_labels.txt").write_text("\n".join(labels) + "\n")
    (meta / "image_sizes.txt").write_text("".join(f"{i}.png,48,48\n" for i in range(len(CLASSES))))
    (meta / "localization.txt").write_text("\n".join(boxes) + "\n")
    return meta, images


def run_config(tmp_path, **kw) -> TrainConfig:
    if not (tmp_path / "meta").is_dir():
        multilabel_split(tmp_path)
    base = dict(arch="smallcnn", pretrained=False, multilabel=True, train_metadata=str(tmp_path / "meta"),
                train_images=str(tmp_path / "images"), batch_size=3, epochs=2, resize=40, crop=32, workers=0,
                schedule="constant", lr=0.05, selection="last", plots=False, out=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)


def quiet(cfg):
    return train(cfg, progress=False, log=lambda m: None)


def test_the_targets_are_multi_hot_rows_of_the_split(tmp_path):
    paths, labels, names, objective = training_objective(run_config(tmp_path))
    assert isinstance(objective, MultiLabel) and labels == list(range(6)) and len(names) == 2 and len(paths) == 6
    assert objective.table.tolist() == [[1, 0], [0, 1], [1, 1], [1, 1], [1, 0], [0, 1]]
    assert objective.targets(torch.tensor([2, 0, 1])).tolist() == [[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(MetadataError, match="a second line for 2.png"):  # read single-label, it is refused
        training_objective(run_config(tmp_path, multilabel=False))


def test_the_epoch_loss_is_binary_cross_entropy_of_the_first_batch(tmp_path):
    cfg = run_config(tmp_path, batch_size=6, epochs=1)  # one step: the epoch's loss is the first batch's, before it
    history = []
    train(cfg, progress=False, log=lambda m: None, on_epoch=history.append)
    torch.manual_seed(cfg.seed)  # the run's own start: the same weights and the same first batch
    paths, labels, names, objective = training_objective(cfg)
    model = build_model(cfg, len(names), names)[0]
    data, _, collate, _ = training_data(cfg, model, paths, labels, torch.device("cpu"), False)
    sampler, loader = training_loader(cfg, data, collate, 0, 1, False)
    sampler.set_epoch(0)
    batch = next(iter(loader))
    t = objective.table[batch.labels]
    assert sorted(map(tuple, t.tolist())) == [(0, 1), (0, 1), (1, 0), (1, 0), (1, 1), (1, 1)]  # all six, shuffled
    with torch.no_grad():
        z = model.train()(batch.images).double()
    p = torch.sigmoid(z)
    expected = float(-(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean())
    (record,) = history
    assert record["loss"] == pytest.approx(expected, rel=1e-5)
    assert "train_top1" not in record and 0.0 <= record["train_label_acc"] <= 100.0
    assert math.isnan(record["train_micro_f1"]) or 0.0 <= record["train_micro_f1"] <= 100.0


def test_label_accuracy_and_micro_f1_by_hand():
    objective = MultiLabel(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    y = objective.targets(torch.tensor([0, 1]))
    logits = torch.tensor([[2.0, 1.0, -1.0], [-3.0, 0.5, -0.1]])  # predicted: {0, 1} and {1}
    loss = objective.loss_fn(logits, y)
    p = torch.sigmoid(logits)
    assert float(loss) == pytest.approx(float(-(y * p.log() + (1 - y) * (1 - p).log()).mean()))
    summary, seen = objective.summary(objective.tally(logits, loss, y))
    # right pairs: image 0 (class 0 right, 1 wrong, 2 wrong), image 1 (all right): 4 of 6; TP 2, FP 1, FN 1
    assert seen == 2 and summary["train_label_acc"] == pytest.approx(400 / 6)
    assert summary["train_micro_f1"] == pytest.approx(100 * 4 / 6)
    single = SingleLabel()
    assert single.summary(single.tally(logits, torch.tensor(1.5), torch.tensor([0, 2])))[0] == {
        "loss": 1.5, "train_top1": 50.0}


def test_resume_equals_an_uninterrupted_multilabel_run(tmp_path):
    quiet(run_config(tmp_path, out=str(tmp_path / "a")))
    first = run_config(tmp_path, out=str(tmp_path / "b"), epochs=1)
    quiet(first)
    quiet(first.replace(epochs=2, resume=True))
    assert read_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 2
    assert_same_runs(tmp_path / "a", tmp_path / "b", ("loss", "train_label_acc"))


def test_validation_is_per_class_localization_and_the_lines_name_the_accuracy(tmp_path):
    cfg = run_config(tmp_path, epochs=1, val_metadata=str(tmp_path / "meta"), val_images=str(tmp_path / "images"),
                     selection="wsolevaluation", eval_variants=["cam"])
    history = []
    train(cfg, progress=False, log=lambda m: None, on_epoch=history.append)
    (record,) = history
    assert 0.0 <= record["val/rethinking/cam/gt_known_loc"] <= 100.0
    assert "val/rethinking/cam/top1_loc" not in record and "val/wsolevaluation/cam/top1_cls" not in record
    assert legend(cfg, "log.csv").startswith("acc: training per-label accuracy at 0.5; loc: val/wsolevaluation")
    assert f"acc {record['train_label_acc']:.1f}%" in epoch_line(record, cfg)


@pytest.mark.parametrize("values, needle", [
    (dict(image_folder="IMAGES"), "multilabel=true reads several classes per image from train_metadata"),
    (dict(selection="authors", test_metadata="META"), "selection='authors' keeps the best Top-1 Loc, a single"),
])
def test_combinations_that_cannot_work_are_one_line(tmp_path, values, needle):
    meta, images = multilabel_split(tmp_path)
    values = {k: str(images if v == "IMAGES" else meta) if v in ("IMAGES", "META") else v for k, v in values.items()}
    with pytest.raises(UsageError, match=needle) as info:
        load_config(None, ["multilabel=true", f"train_metadata={meta}"], arch="smallcnn", pretrained=False, **values)
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="multilabel='maybe' is not a bool"):
        load_config(None, ["multilabel=maybe"])
