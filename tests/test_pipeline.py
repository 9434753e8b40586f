"""`camloc localize` over folders (camloc.pipeline): bad files, output formats, artifacts, resume, interrupts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from camloc.cli import main
from camloc.data.inputs import expand_inputs
from camloc.pipeline import in_order

from .conftest import EXAMPLES
from .helpers import messy_folder


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def messy(tmp_path):
    """A folder tree of good photos and every kind of bad file."""
    return messy_folder(tmp_path / "photos")


def test_bad_files_are_reported_and_the_run_goes_on(messy, tmp_path):
    res = run("localize", messy, "--format", "jsonl", "--quiet", "--workers", "2", "--batch-size", "3")
    assert res.exit_code == 1
    lines = [json.loads(l) for l in res.stdout.splitlines()]
    names = [Path(l["image"]).name for l in lines]
    assert names == [Path(p).name for p in expand_inputs([str(messy)])]  # input order, nothing lost
    errors = {Path(l["image"]).name: l["error"] for l in lines if "error" in l}
    assert set(errors) == {"e_corrupt.jpg", "f_truncated.jpg", "g_tiny.png", "h_bomb.png"}
    assert "smaller than 32 px" in errors["g_tiny.png"] and "decompression bomb" in errors["h_bomb.png"]
    assert all("box" in l for l in lines if "error" not in l)
    for name in errors:
        assert name in res.stderr
    assert "4 of 9 images failed" in res.stderr


def test_out_dir_formats_and_artifacts(messy, tmp_path):
    out = tmp_path / "out"
    res = run("localize", messy / "a_cat.jpg", messy / "sub", "--out", out, "--format", "coco", "--save-maps",
              "--quiet", "--workers", "0")
    assert res.exit_code == 0, res.output
    coco = json.loads(res.stdout)
    assert len(coco) == 4 and {"image_id", "category_id", "bbox", "score"} == set(coco[0])
    journal = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
    b = journal[0]["box"]
    assert coco[0]["bbox"] == [b[0], b[1], round(b[2] - b[0], 2), round(b[3] - b[1], 2)]
    assert json.loads((out / "results.coco.json").read_text()) == coco
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert len(overlays) == 4 and all(n.endswith(".png") for n in overlays)
    (cat_overlay,) = [n for n in overlays if "a_cat" in n]
    drawn = np.asarray(Image.open(out / "overlays" / cat_overlay).convert("RGB"))
    assert drawn.shape == (300, 451, 3)
    x0, y0, x1, y1 = (round(v) for v in b)
    assert tuple(drawn[(y0 + y1) // 2, x0]) == (0, 200, 0) and tuple(drawn[y0, (x0 + x1) // 2]) == (0, 200, 0)
    assert tuple(drawn[(y0 + y1) // 2, x1 - 1]) == (0, 200, 0) and tuple(drawn[y1 - 1, (x0 + x1) // 2]) == (0, 200, 0)
    maps = list((out / "maps").iterdir())
    assert len(maps) == 4 and np.load(maps[0]).shape == (7, 7)
    assert not [p for p in out.rglob(".tmp-*")]  # atomic writes leave no temporaries
    res = run("localize", messy / "a_cat.jpg", "--out", tmp_path / "csv", "--format", "csv", "--quiet", "--workers", "0")
    rows = (tmp_path / "csv" / "results.csv").read_text().splitlines()
    assert rows[0].startswith("image,class,label,score,x0,y0,x1,y1") and len(rows) == 2 and res.stdout.splitlines() == rows


def test_resume_skips_finished_images(messy, tmp_path):
    out = tmp_path / "out"
    good = [messy / "a_cat.jpg", messy / "sub" / "b_coffee.jpg", messy / "d_gray.png"]
    res = run("localize", good[0], "--out", out, "--quiet", "--no-overlays", "--workers", "0", "--format", "jsonl")
    assert res.exit_code == 0
    (out / "results.jsonl").open("a").write('{"image": "torn line')  # a crash mid-write
    res = run("localize", *good, "--out", out, "--resume", "--quiet", "--no-overlays", "--workers", "0",
              "--format", "jsonl")
    assert res.exit_code == 0, res.output
    assert [json.loads(l)["image"] for l in res.stdout.splitlines()] == [str(p) for p in good[1:]]
    merged = list(in_order([str(p) for p in good], [out / "results.jsonl"]))
    assert [d["image"] for d in merged] == [str(p) for p in good]


def test_ctrl_c_keeps_finished_results(tmp_path):
    listing = tmp_path / "many.txt"
    listing.write_text("\n".join([str(EXAMPLES / "cat.jpg")] * 400))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "camloc.cli", "localize", f"@{listing}", "--out", str(out),
                             "--no-overlays", "--quiet", "--workers", "0", "--batch-size", "4"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            # a suite started in the background (``cmd &``) ignores SIGINT and a child would
                            # inherit that: give the CLI the default a user's Ctrl-C meets
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    journal = out / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or journal.stat().st_size < 2000):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err
    lines = journal.read_text().splitlines()
    assert lines and all(json.loads(l)["image"] == str(EXAMPLES / "cat.jpg") for l in lines)
