"""The synthetic WSOL benchmark: deterministic per seed, readable by camloc's reader and evaluator, masks
that match their boxes, and parts on the body."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from camloc.cli import main
from camloc.data.metadata import read_dataset
from camloc.data.synthetic import SPLITS, SyntheticSpec, render, write_synthetic
from camloc.errors import UsageError
from camloc.eval.evaluate import evaluate
from camloc.eval.protocols import Settings

from ..helpers import Brightness

SMALL = SyntheticSpec(classes=3, size=64, train=6, train_fullsup=3, test=5, seed=7)


def digest(folder):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_deterministic_per_seed(tmp_path):
    write_synthetic(tmp_path / "a", SMALL)
    write_synthetic(tmp_path / "b", SMALL)
    write_synthetic(tmp_path / "c", SyntheticSpec(**{**SMALL.__dict__, "seed": 8}))
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_reader_accepts_and_masks_match_boxes(tmp_path):
    folders = write_synthetic(tmp_path, SMALL)
    assert set(folders) == set(SPLITS)
    for split, meta in folders.items():
        samples = read_dataset(meta)
        assert len(samples) == SMALL.count(split)
        assert [s.label for s in samples] == [i % SMALL.classes for i in range(len(samples))]
        for s in samples:
            (box,), (mask_id,) = s.boxes, s.masks
            mask = np.asarray(Image.open(tmp_path / mask_id)) > 0
            ys, xs = np.nonzero(mask)
            assert box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)  # wsolevaluation's x1 = x + w
            assert (s.width, s.height) == Image.open(tmp_path / s.image_id).size == (64, 64)


def test_the_part_lies_on_the_body_and_only_it_has_the_class_colour():
    item = render(SyntheticSpec(size=96), 0, np.random.default_rng(0))
    red = (item.image[..., 0] > 200) & (item.image[..., 1] < 100) & (item.image[..., 2] < 100)
    assert red.sum() >= 9 and item.mask[red].mean() == 1.0
    assert red.sum() < 0.2 * item.mask.sum()  # a small part of a large body


def test_the_evaluator_takes_it_under_both_protocols(tmp_path):
    folders = write_synthetic(tmp_path, SMALL)
    samples = read_dataset(folders["test"])
    wsol = evaluate(Brightness(), samples, tmp_path, Settings("wsolevaluation", ("cam",), cam_class="top1"),
                    progress=False)
    assert set(wsol.metrics["cam"]) >= {"maxboxacc_v2", "pxap"}
    ret = evaluate(Brightness(), samples, tmp_path, Settings("rethinking", ("cam",), cam_class="top1"), progress=False)
    assert 0.0 <= ret.metrics["cam"]["gt_known_loc"] <= 100.0


def test_command_and_bad_values(tmp_path):
    res = CliRunner().invoke(main, ["synthetic", str(tmp_path / "s"), "--train", "2", "--train-fullsup", "1",
                                    "--test", "1", "--size", "48"])
    assert res.exit_code == 0, res.output
    assert len(read_dataset(tmp_path / "s" / "metadata" / "train")) == 2
    res = CliRunner().invoke(main, ["synthetic", str(tmp_path / "t"), "--part", "0.01"])
    assert res.exit_code == 2 and "part=0.01" in res.output
    with pytest.raises(UsageError, match="classes=1"):
        SyntheticSpec(classes=1).check()
