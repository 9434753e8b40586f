"""`camloc localize` over folders: bad files, output formats, artifacts, resume, interrupts, torchrun."""

from __future__ import annotations

import json
import os
import shutil
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

from .conftest import DATA, EXAMPLES
from .test_imaging import _png_declaring


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def messy(tmp_path):
    """A folder tree of good photos and every kind of bad file."""
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(EXAMPLES / "cat.jpg", root / "a_cat.jpg")
    shutil.copy(EXAMPLES / "coffee.jpg", root / "sub" / "b_coffee.jpg")
    Image.open(EXAMPLES / "rocket.jpg").convert("CMYK").save(root / "sub" / "deeper" / "c_rocket_cmyk.jpg")
    Image.open(EXAMPLES / "cat.jpg").convert("L").save(root / "d_gray.png")
    (root / "e_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    data = (EXAMPLES / "coffee.jpg").read_bytes()
    (root / "f_truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.new("RGB", (1, 1)).save(root / "g_tiny.png")
    (root / "h_bomb.png").write_bytes(_png_declaring(100_000, 100_000))  # a huge header, no pixels
    Image.open(EXAMPLES / "cat.jpg").convert("P").save(root / "sub" / "i_palette.png")
    (root / "notes.txt").write_text("not an image, and not picked up by extension")
    return root


def test_expand_inputs(messy, tmp_path):
    found = expand_inputs([str(messy)])
    assert [Path(p).name for p in found] == ["a_cat.jpg", "d_gray.png", "e_corrupt.jpg", "f_truncated.jpg",
                                              "g_tiny.png", "h_bomb.png", "b_coffee.jpg", "c_rocket_cmyk.jpg",
                                              "i_palette.png"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{messy / 'a_cat.jpg'}\n# a comment\n\n{messy / 'missing.jpg'}\n")
    assert expand_inputs([f"@{listing}", str(messy / "d_gray.png")]) == [
        str(messy / "a_cat.jpg"), str(messy / "missing.jpg"), str(messy / "d_gray.png")]


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
    assert Image.open(out / "overlays" / overlays[0]).size in {(451, 300), (600, 400), (640, 427)}
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
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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


def test_torchrun_two_processes_equal_one(tmp_path):
    images = DATA / "imagenet-val" / "images"
    if not images.is_dir():
        pytest.skip("real photos not present")
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
    a = [json.loads(l) for l in multi.stdout.splitlines()]
    b = [json.loads(l) for l in single.stdout.splitlines()]
    assert [d["image"] for d in a] == [d["image"] for d in b] == sorted(str(folder / p.name) for p in photos)
    for x, y in zip(a, b, strict=True):
        assert x["class"] == y["class"] and abs(x["score"] - y["score"]) < 1e-4
        assert np.allclose(x["box"], y["box"], atol=1.0)
    assert not list((tmp_path / "multi").glob("results.rank*"))  # shards merged and removed
    assert (tmp_path / "multi" / "results.jsonl").read_text().count("\n") == 12
