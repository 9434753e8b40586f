"""`camloc localize` over folders (camloc.batch.pipeline): bad files, output formats, artifacts and their names,
the region seen in every format, resume, interrupts."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from camloc.batch.formats import REGION_FIELDS
from camloc.batch.pipeline import in_order, recorded_stems
from camloc.cli import main
from camloc.data.inputs import expand_inputs
from camloc.viz.filenames import NAME_MAX

from ..conftest import EXAMPLES
from ..helpers import messy_folder


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
              "--resize", "crop", "--quiet", "--workers", "0")
    assert res.exit_code == 0, res.output
    coco = json.loads(res.stdout)
    assert len(coco) == 4 and {"image_id", "category_id", "bbox", "score", "region_bbox", "region_mode"} == set(coco[0])
    journal = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
    b, seen = journal[0]["box"], journal[0]["region"]
    assert coco[0]["bbox"] == [b[0], b[1], round(b[2] - b[0], 2), round(b[3] - b[1], 2)]
    # the region the model saw, as COCO gives boxes: the cat's 451 x 300 resized to 384 x 256 (bicubic, crop_pct
    # 0.875), cropped at (80, 16): x 80 x 451/384 = 93.96 to 304 x 451/384 = 357.04, y 18.75 to 281.25
    assert seen == [93.96, 18.75, 357.04, 281.25] and journal[0]["region_mode"] == "crop"
    assert coco[0]["region_bbox"] == [93.96, 18.75, 263.08, 262.5] and coco[0]["region_mode"] == "crop"
    assert json.loads((out / "results.coco.json").read_text()) == coco
    overlays = sorted(p.relative_to(out / "overlays").as_posix() for p in (out / "overlays").rglob("*.png"))
    assert overlays == ["a_cat.png", "b_coffee.png", "deeper/c_rocket_cmyk.png", "i_palette.png"]  # sub/ mirrored
    (cat_overlay,) = [n for n in overlays if "a_cat" in n]
    drawn = np.asarray(Image.open(out / "overlays" / cat_overlay).convert("RGB"))
    assert drawn.shape == (300, 451, 3)
    x0, y0, x1, y1 = (round(v) for v in b)
    assert tuple(drawn[(y0 + y1) // 2, x0]) == (0, 200, 0) and tuple(drawn[y0, (x0 + x1) // 2]) == (0, 200, 0)
    assert tuple(drawn[(y0 + y1) // 2, x1 - 1]) == (0, 200, 0) and tuple(drawn[y1 - 1, (x0 + x1) // 2]) == (0, 200, 0)
    maps = list((out / "maps").rglob("*.npy"))
    assert len(maps) == 4 and np.load(maps[0]).shape == (7, 7)
    assert not [p for p in out.rglob(".tmp-*")]  # atomic writes leave no temporaries
    res = run("localize", messy / "a_cat.jpg", "--out", tmp_path / "csv", "--format", "csv", "--quiet", "--workers", "0")
    rows = (tmp_path / "csv" / "results.csv").read_text().splitlines()
    assert rows[0].startswith("image,class,label,score,x0,y0,x1,y1") and len(rows) == 2 and res.stdout.splitlines() == rows
    (row,) = csv.DictReader(rows)  # by default the model sees the whole image
    assert [row[k] for k in ("region_mode", "region_x0", "region_y0", "region_x1", "region_y1")] == \
        ["full", "0.0", "0.0", "451.0", "300.0"]
    res = run("localize", messy / "a_cat.jpg", "--format", "csv", "--resize", "crop", "--quiet", "--workers", "0")
    (row,) = csv.DictReader(res.stdout.splitlines())
    assert [row[k] for k in ("region_mode", "region_x0", "region_y0", "region_x1", "region_y1")] == \
        ["crop", "93.96", "18.75", "357.04", "281.25"]


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


# -- bad items: nothing lost, nothing silently wrong -------------------------------------------------------

QUICK = ("--quiet", "--workers", "0", "--format", "jsonl")


def rows_of(journal: Path) -> list[dict]:
    return [json.loads(line) for line in journal.read_text().splitlines()]


def test_files_are_named_by_the_path_under_the_input_folder(messy, tmp_path):
    out = tmp_path / "out"
    res = run("localize", messy, EXAMPLES / "coffee.jpg", "--out", out, "--save-maps", *QUICK)
    assert res.exit_code == 1, res.output  # the bad files fail, the rest is named
    rows = {Path(r["image"]).relative_to(messy).as_posix() if "examples" not in r["image"] else "coffee": r
            for r in rows_of(out / "results.jsonl") if "error" not in r}
    assert {k: (r["overlay"], r["thumb"], r["map"]) for k, r in rows.items()} == {
        "a_cat.jpg": ("overlays/a_cat.png", "thumbs/a_cat.jpg", "maps/a_cat.npy"),
        "d_gray.png": ("overlays/d_gray.png", "thumbs/d_gray.jpg", "maps/d_gray.npy"),
        "sub/b_coffee.jpg": ("overlays/sub/b_coffee.png", "thumbs/sub/b_coffee.jpg", "maps/sub/b_coffee.npy"),
        "sub/i_palette.png": ("overlays/sub/i_palette.png", "thumbs/sub/i_palette.jpg", "maps/sub/i_palette.npy"),
        "sub/deeper/c_rocket_cmyk.jpg": ("overlays/sub/deeper/c_rocket_cmyk.png", "thumbs/sub/deeper/c_rocket_cmyk.jpg",
                                         "maps/sub/deeper/c_rocket_cmyk.npy"),
        "coffee": ("overlays/coffee.png", "thumbs/coffee.jpg", "maps/coffee.npy"),  # a file given: its name
    }
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert [w for w in written if w.startswith("overlays/")] == sorted(r["overlay"] for r in rows.values())
    assert not [p for p in out.rglob(".tmp-*")]


def test_name_collisions_get_a_number_in_input_order(tmp_path):
    for folder, photo in (("x", "cat.jpg"), ("y", "coffee.jpg"), ("z", "rocket.jpg")):
        (tmp_path / folder).mkdir()
        Image.open(EXAMPLES / photo).save(tmp_path / folder / "a.jpg")
    Image.open(EXAMPLES / "rocket.jpg").save(tmp_path / "x" / "A.png")  # a.jpg's stem, in another case
    inputs = [tmp_path / "x" / "a.jpg", tmp_path / "y" / "a.jpg", tmp_path / "x" / "A.png"]

    def overlays(out, *args):
        res = run("localize", *args, "--out", out, *QUICK)
        assert res.exit_code == 0, res.output
        return {Path(r["image"]).relative_to(tmp_path).as_posix(): r["overlay"] for r in rows_of(out / "results.jsonl")}

    expected = {"x/a.jpg": "overlays/a.png", "y/a.jpg": "overlays/a~2.png", "x/A.png": "overlays/A~3.png"}
    assert overlays(tmp_path / "one", *inputs) == expected
    assert overlays(tmp_path / "two", *inputs) == expected  # deterministic: the same inputs, the same names
    assert overlays(tmp_path / "three", *inputs[::-1]) == {"x/A.png": "overlays/A.png", "y/a.jpg": "overlays/a~2.png",
                                                           "x/a.jpg": "overlays/a~3.png"}
    # each file is its own image's overlay: the cat's is the cat's, not the coffee's drawn over it
    one = tmp_path / "one"
    cat = np.asarray(Image.open(one / "overlays" / "a.png").convert("L"), float)
    coffee = np.asarray(Image.open(one / "overlays" / "a~2.png").convert("L"), float)
    assert cat.shape == (300, 451) and coffee.shape == (400, 600)
    # two folders given, one relative name in both: told apart the same way
    assert overlays(tmp_path / "four", tmp_path / "x", tmp_path / "y") == {
        "x/A.png": "overlays/A.png", "x/a.jpg": "overlays/a~2.png", "y/a.jpg": "overlays/a~3.png"}


def test_a_resumed_run_never_writes_over_a_finished_images_files(tmp_path):
    for folder, photo in (("x", "cat.jpg"), ("y", "coffee.jpg")):
        (tmp_path / folder).mkdir()
        Image.open(EXAMPLES / photo).save(tmp_path / folder / "a.jpg")
    out = tmp_path / "out"
    assert run("localize", tmp_path / "y" / "a.jpg", "--out", out, *QUICK).exit_code == 0
    coffee = (out / "overlays" / "a.png").read_bytes()
    # resumed with another a.jpg in front of it: the finished coffee keeps its name and its file, the cat
    # (first in input order now) takes the next free name
    res = run("localize", tmp_path / "x" / "a.jpg", tmp_path / "y" / "a.jpg", "--out", out, "--resume", *QUICK)
    assert res.exit_code == 0, res.output
    rows = rows_of(out / "results.jsonl")
    assert [(Path(r["image"]).parent.name, r["overlay"]) for r in rows] == [("y", "overlays/a.png"),
                                                                            ("x", "overlays/a~2.png")]
    assert (out / "overlays" / "a.png").read_bytes() == coffee and (out / "overlays" / "a~2.png").is_file()
    assert recorded_stems(out) == {str(tmp_path / "y" / "a.jpg"): "a", str(tmp_path / "x" / "a.jpg"): "a~2"}
    # with --topk each class's files end in .classN, and a resumed run reads those names back
    top = tmp_path / "top"
    assert run("localize", tmp_path / "x" / "a.jpg", "--out", top, "--topk", "2", *QUICK).exit_code == 0
    names = [r["overlay"] for r in rows_of(top / "results.jsonl")]
    assert len(names) == 2 and all(n.startswith("overlays/a.class") and n.endswith(".png") for n in names)
    assert recorded_stems(top, per_class=True) == {str(tmp_path / "x" / "a.jpg"): "a"}


def test_the_same_file_gets_one_name_and_long_names_are_shortened(tmp_path):
    photos = tmp_path / "in"
    (photos / "a").mkdir(parents=True)
    Image.open(EXAMPLES / "cat.jpg").save(photos / "a" / "b.jpg")
    Image.open(EXAMPLES / "coffee.jpg").save(photos / "a__b.jpg")
    deep = photos.joinpath(*["d" * 200] * 3)
    deep.mkdir(parents=True)
    Image.open(EXAMPLES / "rocket.jpg").save(deep / ("r" * 240 + ".jpg"))
    out = tmp_path / "out"
    res = run("localize", photos / "a" / "b.jpg", photos / "a__b.jpg", deep, photos / "a" / "." / "b.jpg", "--out",
              out, *QUICK)
    assert res.exit_code == 0, res.output
    overlays = [r["overlay"] for r in rows_of(out / "results.jsonl")]
    assert overlays[:2] == ["overlays/b.png", "overlays/a__b.png"] and overlays[3] == overlays[0]  # a/./b.jpg: b.jpg
    long = overlays[2]  # 240 r's: too long with an ending, so its start and a digest of the whole
    name = Path(long).name
    assert name.startswith("r" * 100) and name.endswith(".png") and len(name.encode()) <= NAME_MAX and "~" in name
    assert all((out / o).is_file() for o in overlays) and len(list((out / "overlays").iterdir())) == 3


def test_a_failed_write_is_that_images_error_row(tmp_path, monkeypatch):
    import camloc.batch.pipeline as pipeline

    real = pipeline.atomic_write_bytes

    def full_disk_for_coffee(path, data):
        if "coffee" in str(path):
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(pipeline, "atomic_write_bytes", full_disk_for_coffee)
    out = tmp_path / "out"
    res = run("localize", EXAMPLES / "cat.jpg", EXAMPLES / "coffee.jpg", EXAMPLES / "rocket.jpg", "--out", out, *QUICK)
    assert res.exit_code == 1 and "Traceback" not in res.output
    rows = rows_of(out / "results.jsonl")
    assert [("error" in r) for r in rows] == [False, True, False]
    assert "No space left on device" in rows[1]["error"] and "--resume" in rows[1]["error"]
    assert "1 of 3 images failed" in res.stderr
    monkeypatch.setattr(pipeline, "atomic_write_bytes", real)  # space again: the resumed run redoes coffee only
    res = run("localize", EXAMPLES / "cat.jpg", EXAMPLES / "coffee.jpg", EXAMPLES / "rocket.jpg", "--out", out,
              "--resume", *QUICK)
    assert res.exit_code == 0 and [json.loads(l)["image"] for l in res.stdout.splitlines()] == [str(EXAMPLES / "coffee.jpg")]
    assert [("error" in r) for r in rows_of(out / "results.jsonl")] == [False, False, False]


def test_an_unwritable_out_folder_is_one_line_before_any_work(tmp_path, monkeypatch):
    out = tmp_path / "locked"
    out.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse as a read-only one would
        import camloc.batch.pipeline as pipeline

        def refuse(*args, dir=None, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(pipeline.tempfile, "TemporaryFile", refuse)
    else:
        out.chmod(0o500)
    res = run("localize", EXAMPLES / "cat.jpg", "--out", out, *QUICK)
    assert res.exit_code == 2 and res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"camloc: error: --out {out}: cannot write in this folder (Permission denied)")
    file_in_the_way = tmp_path / "file"
    file_in_the_way.write_text("x")
    res = run("localize", EXAMPLES / "cat.jpg", "--out", file_in_the_way / "sub", *QUICK)
    assert res.exit_code == 2 and "cannot create this folder" in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_for_the_journal_is_one_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.symlink("/dev/full", out / "results.jsonl")  # every write: ENOSPC
    res = run("localize", EXAMPLES / "cat.jpg", "--out", out, *QUICK)
    assert res.exit_code == 2 and "Traceback" not in res.output
    (line,) = res.stderr.strip().splitlines()
    assert "cannot write results (No space left on device)" in line and "--resume" in line


def test_resume_keeps_one_row_per_input_and_retries_failures(messy, tmp_path):
    out = tmp_path / "out"
    inputs = [messy / "a_cat.jpg", messy / "e_corrupt.jpg", messy / "d_gray.png"]
    assert run("localize", *inputs, "--out", out, "--no-overlays", *QUICK).exit_code == 1
    for _ in range(2):  # the corrupt file fails again on every rerun: still one row for it
        assert run("localize", *inputs, "--out", out, "--no-overlays", "--resume", *QUICK).exit_code == 1
    rows = rows_of(out / "results.jsonl")
    assert sorted(r["image"] for r in rows) == sorted(map(str, inputs))
    assert all(r["model"] == "efficientnet_lite0" for r in rows)
    # a torn last line (killed mid-write) is dropped and that image redone; a repaired file is retried
    journal = (out / "results.jsonl").read_text().splitlines()
    torn = [l for l in journal if "d_gray" not in l]
    (out / "results.jsonl").write_text("".join(l + "\n" for l in torn) + '{"image": "' + str(inputs[2])[:10])
    Image.open(EXAMPLES / "cat.jpg").save(messy / "e_corrupt.jpg")
    res = run("localize", *inputs, "--out", out, "--no-overlays", "--resume", *QUICK)
    assert res.exit_code == 0, res.output
    assert sorted(json.loads(l)["image"] for l in res.stdout.splitlines()) == sorted(map(str, inputs[1:]))
    rows = rows_of(out / "results.jsonl")  # every line whole, one per input, no error left
    assert sorted(r["image"] for r in rows) == sorted(map(str, inputs)) and not [r for r in rows if "error" in r]


def test_resume_refuses_other_settings_and_a_rerun_without_resume(tmp_path):
    out = tmp_path / "out"
    assert run("localize", EXAMPLES / "cat.jpg", "--out", out, "--no-overlays", *QUICK).exit_code == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["model"] == "efficientnet_lite0" and manifest["nwc"] is True
    res = run("localize", EXAMPLES / "coffee.jpg", "--out", out, "--no-overlays", "--no-nwc", "--resume", *QUICK)
    assert res.exit_code == 2 and res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert "another model or settings (nwc: True then, False now)" in line and "choose another folder" in line
    res = run("localize", EXAMPLES / "coffee.jpg", "--out", out, "--no-overlays", *QUICK)
    assert res.exit_code == 2 and "already holds results" in res.stderr and "--resume" in res.stderr
    assert len(rows_of(out / "results.jsonl")) == 1  # nothing was mixed in


def test_inputs_that_yield_no_image_are_errors(messy, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run("localize", empty, *QUICK)
    assert res.exit_code == 2 and "no images in this folder" in res.stderr and res.stdout == ""
    res = run("localize", messy / "a_cat.jpg", empty, *QUICK)
    assert res.exit_code == 1
    rows = [json.loads(l) for l in res.stdout.splitlines()]
    assert [r["image"] for r in rows] == [str(empty), str(messy / "a_cat.jpg")] and "no images" in rows[0]["error"]
    assert "1 of 2 inputs failed" in res.stderr
    locked = messy / "sub"
    if os.geteuid() == 0:  # root lists anything: make the subfolder refuse as an unreadable one would
        real = os.scandir

        def scandir(path="."):
            if os.fspath(path) == str(locked):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        locked.chmod(0)
    res = run("localize", messy, *QUICK)
    locked.chmod(0o755)
    rows = [json.loads(l) for l in res.stdout.splitlines()]
    assert res.exit_code == 1 and rows[0]["image"] == str(locked) and "cannot list this folder" in rows[0]["error"]
    assert len(rows) == 1 + 6  # the 6 files outside sub were still read


def test_one_line_errors_for_devices_workers_links_and_pixel_limits(tmp_path, monkeypatch):
    import torch

    if not torch.cuda.is_available():
        res = run("localize", EXAMPLES / "cat.jpg", "--device", "cuda", *QUICK)
        assert res.exit_code == 2 and res.stderr.strip().count("\n") == 0 and "no CUDA GPU" in res.stderr
    res = run("localize", EXAMPLES / "cat.jpg", "--device", "gpu", *QUICK)
    assert res.exit_code == 2 and "unknown device 'gpu'" in res.stderr and "Traceback" not in res.output
    res = run("localize", EXAMPLES / "cat.jpg", "--workers", "-1", "--quiet")
    assert res.exit_code == 2 and "-1 is not in the range x>=0" in res.stderr
    os.symlink("loop", tmp_path / "loop")
    res = run("localize", EXAMPLES / "cat.jpg", tmp_path / "loop", *QUICK)
    assert res.exit_code == 1 and "symbolic link loop" in res.stdout.splitlines()[1]
    monkeypatch.setenv("CAMLOC_MAX_PIXELS", "10000")
    res = run("localize", EXAMPLES / "cat.jpg", *QUICK)
    assert res.exit_code == 1 and "CAMLOC_MAX_PIXELS=N" in res.stdout and "max_pixels" not in res.stderr.split("(")[0]
    monkeypatch.setenv("CAMLOC_MAX_PIXELS", "lots")
    res = run("localize", EXAMPLES / "cat.jpg", *QUICK)
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "CAMLOC_MAX_PIXELS" in res.stderr


def test_errors_are_shown_once_when_the_table_is_on_the_terminal(messy, monkeypatch):
    from camloc.cli import localize

    monkeypatch.setattr(localize, "_stdout_is_terminal", lambda: True)
    res = run("localize", messy / "a_cat.jpg", messy / "e_corrupt.jpg", "--quiet", "--workers", "0")
    assert res.exit_code == 1
    assert "ERROR" in res.stdout and "e_corrupt" in res.stdout  # in the table ...
    assert "e_corrupt" not in res.stderr and "1 of 2 images failed" in res.stderr  # ... and not again below it


def test_real_photos_boxes_lie_in_the_region_seen_and_files_mirror_the_folders(tmp_path):
    """ImageNet photos stored at 227 x 227: efficientnet_lite0 (shorter side to 256, center crop 224) sees
    16 .. 240 of 256, i.e. 16 x 227/256 = 14.1875 to 240 x 227/256 = 212.8125 of each side; CUB photos
    keep their folders (one per species) under --out."""
    from ..conftest import data_dir

    imagenet, cub = data_dir("imagenet-val"), data_dir("cub-test")
    photos = [imagenet / i for i in (imagenet / "image_ids.txt").read_text().split()[:4]]
    species = sorted((cub / "images").iterdir())[:2]
    birds = tmp_path / "birds"
    for folder in species:  # two photos of each of two species, in their species' folders
        (birds / folder.name).mkdir(parents=True)
        for photo in sorted(folder.iterdir())[:2]:
            os.symlink(photo, birds / folder.name / photo.name)
    out = tmp_path / "out"
    res = run("localize", *photos, birds, "--out", out, "--format", "csv", "--resize", "crop", "--quiet",
              "--workers", "0")
    assert res.exit_code == 0, res.output
    rows = rows_of(out / "results.jsonl")
    assert len(rows) == 8
    for row in rows[:4]:
        assert (row["width"], row["height"]) == (227, 227) and row["region_mode"] == "crop"
        assert row["region"] == [14.19, 14.19, 212.81, 212.81]
    for row in rows:
        x0, y0, x1, y1 = row["region"]
        assert x0 <= row["box"][0] < row["box"][2] <= x1 and y0 <= row["box"][1] < row["box"][3] <= y1
        assert 0 < x0 and x1 < row["width"] and 0 < y0 and y1 < row["height"]  # the crop leaves every edge out
    assert [r["overlay"] for r in rows[:4]] == [f"overlays/{p.stem}.png" for p in photos]
    assert [r["overlay"] for r in rows[4:]] == [f"overlays/{folder.name}/{photo.stem}.png" for folder in species
                                                for photo in sorted(folder.iterdir())[:2]]
    table = list(csv.DictReader((out / "results.csv").read_text().splitlines()))
    assert [float(table[0][k]) for k in REGION_FIELDS] == [14.19, 14.19, 212.81, 212.81]
    full = run("localize", photos[0], "--resize", "full", "--format", "jsonl", "--quiet", "--workers", "0")
    assert json.loads(full.stdout)["region"] == [0.0, 0.0, 227.0, 227.0]
