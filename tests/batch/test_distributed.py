"""Batch runs past one process: torchrun ranks shard the inputs and rank 0 merges their journals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from camloc.batch.distributed import Context
from camloc.batch.pipeline import JOURNAL, in_order, journals

from ..conftest import data_dir


def test_context_from_torchrun_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    alone = Context.from_env()
    assert (alone.rank, alone.world, alone.backend) == (0, 1, None)
    assert alone.journal(tmp_path) == tmp_path / JOURNAL
    assert alone.finish(3, tmp_path, [], None) == 3  # one process: nothing to merge or sum
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    ctx = Context.from_env()
    assert (ctx.rank, ctx.world) == (1, 2) and ctx.backend in ("gloo", "nccl")
    assert ctx.journal(tmp_path) == tmp_path / "results.rank1.jsonl"


def test_rank_journals_merge_in_input_order(tmp_path):
    """What rank 0 does at the end: every rank's journal, merged in input order, errors kept once."""
    paths = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]

    def write(name, records, torn=False):
        text = "".join(json.dumps(r) + "\n" for r in records)
        (tmp_path / name).write_text(text + ('{"image": "torn' if torn else ""))

    ok = lambda image, cls=1: {"image": image, "class": cls, "box": [0, 0, 1, 1]}  # noqa: E731
    write("results.rank0.jsonl", [ok("a.jpg"), {"image": "c.jpg", "error": "corrupt"}, ok("e.jpg")], torn=True)
    write("results.rank1.jsonl", [ok("d.jpg", 3), ok("b.jpg"), ok("d.jpg", 5)])
    assert [p.name for p in journals(tmp_path)] == [JOURNAL, "results.rank0.jsonl", "results.rank1.jsonl"]
    merged = list(in_order(paths, journals(tmp_path)))
    assert [(d["image"], d.get("class"), "error" in d) for d in merged] == [
        ("a.jpg", 1, False), ("b.jpg", 1, False), ("c.jpg", None, True), ("d.jpg", 3, False), ("d.jpg", 5, False),
        ("e.jpg", 1, False)]
    # a resumed run that later succeeded on c replaces its error
    write(JOURNAL, [ok("c.jpg")])
    assert [d.get("error") for d in in_order(paths, journals(tmp_path))] == [None] * 6


def test_torchrun_two_processes_equal_one(tmp_path):
    images = data_dir("imagenet-val") / "images"
    photos = sorted(images.iterdir())[:12]
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in photos:
        os.symlink(p, folder / p.name)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    multi = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--no-python", "camloc", "localize", str(folder),
                            "--out", str(tmp_path / "multi"), "--quiet", "--no-overlays", "--workers", "0",
                            "--format", "jsonl"], capture_output=True, text=True, env=env, timeout=600)
    assert multi.returncode == 0, multi.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "camloc.cli", "localize", str(folder), "--out",
                             str(tmp_path / "single"), "--quiet", "--no-overlays", "--workers", "0", "--format",
                             "jsonl"], capture_output=True, text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    a = [json.loads(l) for l in multi.stdout.splitlines()]
    b = [json.loads(l) for l in single.stdout.splitlines()]
    assert [d["image"] for d in a] == [d["image"] for d in b] == sorted(str(folder / p.name) for p in photos)
    for x, y in zip(a, b, strict=True):
        assert x["class"] == y["class"] and abs(x["score"] - y["score"]) < 1e-4
        assert np.allclose(x["box"], y["box"], atol=1.0)
    assert not list((tmp_path / "multi").glob("results.rank*"))  # shards merged and removed
    assert (tmp_path / "multi" / "results.jsonl").read_text().count("\n") == 12
