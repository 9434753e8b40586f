"""What a run prints: one short line per epoch on stderr, every metric in log.csv, and with --json on stdout."""

from __future__ import annotations

import csv
import json
import re

import pytest
from click.testing import CliRunner

from camloc.cli import main
from camloc.train.config import TrainConfig
from camloc.train.logs import epoch_line, legend, loc_key

from ..helpers import two_class_split

LINE = re.compile(r"^epoch (\d+)/2  loss \d+\.\d{3}  acc \d+\.\d%  loc \d+\.\d%  \d+\.\d s$")


def test_epoch_line_by_value():
    cfg = TrainConfig(epochs=40, val_metadata="v", selection="wsolevaluation")
    record = {"epoch": 7, "loss": 1.23456, "train_top1": 55.55, "seconds": 3.04, "eval_seconds": 1.0,
              "val/wsolevaluation/cam/maxboxacc_v2": 61.26, "val/rethinking/cam/gt_known_loc": 12.0}
    assert epoch_line(record, cfg) == "epoch 7/40  loss 1.235  acc 55.5%  loc 61.3%  4.0 s"
    not_evaluated = {k: record[k] for k in ("epoch", "loss", "train_top1", "seconds")}
    assert epoch_line(not_evaluated, cfg) == "epoch 7/40  loss 1.235  acc 55.5%  3.0 s"
    assert epoch_line(record, cfg.replace(selection="last")) == "epoch 7/40  loss 1.235  acc 55.5%  loc 12.0%  4.0 s"


def test_the_loc_column_is_the_selection_metric_or_gt_known_loc():
    assert loc_key(TrainConfig(val_metadata="v")) == "val/wsolevaluation/cam/maxboxacc_v2"
    assert loc_key(TrainConfig(val_metadata="v", test_metadata="t", selection="authors")) == \
        "test/rethinking/cam/top1_loc"
    assert loc_key(TrainConfig(test_metadata="t")) == "test/rethinking/cam/gt_known_loc"  # no val split to select on
    assert loc_key(TrainConfig(selection="last", val_metadata="v", test_metadata="t")) == \
        "val/rethinking/cam/gt_known_loc"
    assert loc_key(TrainConfig()) is None
    assert legend(TrainConfig(), "run/log.csv") == "acc: training Top-1; every metric in run/log.csv"


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """Two epochs of a random-init smallcnn with a validation split, run by ``camloc train`` with and without
    --json: ``(root, plain result, --json result)``."""
    root = tmp_path_factory.mktemp("printed")
    two_class_split(root)
    args = ["train", "arch=smallcnn", "pretrained=false", f"train_metadata={root / 'meta'}",
            f"train_images={root / 'images'}", f"val_metadata={root / 'meta'}", f"val_images={root / 'images'}",
            "resize=72", "crop=64", "batch_size=4", "epochs=2", "workers=0", "eval_variants=cam", "plots=false"]
    plain = CliRunner().invoke(main, [*args, f"out={root / 'a'}"])
    as_json = CliRunner().invoke(main, [*args, f"out={root / 'b'}", "--json", "--quiet"])
    return root, plain, as_json


def test_each_epoch_prints_one_short_line(printed):
    _, plain, _ = printed
    assert plain.exit_code == 0, plain.output
    assert plain.stdout == ""
    # a line's last state: a progress bar is redrawn after carriage returns, then cleared (splitlines splits at \r)
    lines = [line.split("\r")[-1] for line in plain.stderr.split("\n") if line]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [LINE.match(line).group(1) for line in epochs] == ["1", "2"], plain.stderr
    assert all(len(line) < 70 for line in epochs)
    assert lines[0] == f"acc: training Top-1; loc: val/wsolevaluation/cam/maxboxacc_v2; every metric in " \
                       f"{printed[0] / 'a' / 'log.csv'}"
    assert lines[-1].startswith("kept epoch ")
    assert not any(line.lstrip().startswith("{") for line in lines)


def test_json_prints_every_metric_on_stdout_as_the_log_has_it(printed):
    root, _, as_json = printed
    assert as_json.exit_code == 0, as_json.output
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    with open(root / "b" / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [set(r) for r in records] == [set(row) for row in rows]
    for record, row in zip(records, rows, strict=True):
        assert {"val/rethinking/cam/gt_known_loc", "val/wsolevaluation/cam/maxboxacc_v2", "eval_seconds"} <= set(record)
        assert all(float(row[k]) == pytest.approx(v) for k, v in record.items() if isinstance(v, float))
    assert len([line for line in as_json.stderr.splitlines() if line.startswith("epoch ")]) == 2
