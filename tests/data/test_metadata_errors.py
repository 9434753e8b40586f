"""Every malformed metadata file gets one clear line: the file, the line, what the line should hold.

Each case corrupts one file of a valid six-image split and checks the Python API (a
:class:`MetadataError` whose message names the file and the line) and the command line (exit
code 2, exactly one line on stderr, no traceback, no Python wording). A few run in a real
subprocess, where a traceback would show.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from camloc.cli import main
from camloc.data.metadata import MetadataError, read_dataset
from camloc.utils.errors import CamlocError

from ..helpers import synthetic_split

#: Words of Python's own errors that a message about a file must never show.
PYTHON_WORDS = ("invalid literal", "could not convert", "list index", "out of range", "Traceback", "codec",
                "ValueError", "KeyError", "IndexError", "UnicodeDecodeError", "NoneType", "unpack")


def lines_of(meta: Path, name: str) -> list[str]:
    return (meta / name).read_text().splitlines()


def replace_line(meta: Path, name: str, number: int, text: str) -> None:
    lines = lines_of(meta, name)
    lines[number - 1] = text
    (meta / name).write_text("\n".join(lines) + "\n")


def field(meta: Path, name: str, number: int, index: int, value: str) -> None:
    """Set field ``index`` of line ``number`` of ``name``."""
    parts = lines_of(meta, name)[number - 1].split(",")
    parts[index] = value
    replace_line(meta, name, number, ",".join(parts))


def bad_bytes(meta: Path, name: str, number: int) -> None:
    """Put a byte that is not UTF-8 into line ``number``."""
    data = (meta / name).read_bytes().split(b"\n")
    data[number - 1] = data[number - 1][:2] + b"\xff\xfe" + data[number - 1][2:]
    (meta / name).write_bytes(b"\n".join(data))


#: (case, file, how to corrupt it, the line named, words the message must hold)
CASES = [
    ("negative label", "class_labels.txt", lambda m: field(m, "class_labels.txt", 2, 1, "-1"), 2,
     ("class -1 is negative", "IMAGE_ID,CLASS")),
    ("float label", "class_labels.txt", lambda m: field(m, "class_labels.txt", 3, 1, "1.5"), 3,
     ("'1.5' is not a whole number", "class index, 0 or more")),
    ("word label", "class_labels.txt", lambda m: field(m, "class_labels.txt", 1, 1, "cat"), 1,
     ("'cat' is not a number", "IMAGE_ID,CLASS")),
    ("empty label", "class_labels.txt", lambda m: field(m, "class_labels.txt", 4, 1, ""), 4,
     ("class is empty", "IMAGE_ID,CLASS")),
    ("second label", "class_labels.txt", lambda m: replace_line(m, "class_labels.txt", 5, "0.png,0"), 5,
     ("second line for 0.png", "first is line 1")),
    ("label without comma", "class_labels.txt", lambda m: replace_line(m, "class_labels.txt", 2, "1.png\t0"), 2,
     ("expected 2 comma-separated fields, got 1", "separated by tabs")),
    ("bytes in image_ids", "image_ids.txt", lambda m: bad_bytes(m, "image_ids.txt", 3), 3, ("not UTF-8", "UTF-8")),
    ("bytes in class_labels", "class_labels.txt", lambda m: bad_bytes(m, "class_labels.txt", 2), 2, ("not UTF-8",)),
    ("bytes in image_sizes", "image_sizes.txt", lambda m: bad_bytes(m, "image_sizes.txt", 6), 6, ("not UTF-8",)),
    ("bytes in localization", "localization.txt", lambda m: bad_bytes(m, "localization.txt", 1), 1, ("not UTF-8",)),
    ("bytes in mask_localization", "mask_localization.txt", lambda m: bad_bytes(m, "mask_localization.txt", 4), 4,
     ("not UTF-8",)),
    ("inverted x", "localization.txt", lambda m: field(m, "localization.txt", 2, 3, "1"), 2,
     ("inverted: X1 1 < X0", "X0 <= X1 and Y0 <= Y1")),
    ("inverted y", "localization.txt", lambda m: field(m, "localization.txt", 3, 4, "2"), 3,
     ("inverted: Y1 2 < Y0", "IMAGE_ID,X0,Y0,X1,Y1")),
    ("word coordinate", "localization.txt", lambda m: field(m, "localization.txt", 1, 2, "top"), 1,
     ("Y0 'top' is not a number", "IMAGE_ID,X0,Y0,X1,Y1")),
    ("nan coordinate", "localization.txt", lambda m: field(m, "localization.txt", 5, 1, "nan"), 5,
     ("X0 'nan' is not a finite number",)),
    ("four-field box", "localization.txt", lambda m: replace_line(m, "localization.txt", 2, "1.png,1,2,3"), 2,
     ("expected 5 or 3 comma-separated fields, got 4", "IMAGE_ID,X0,Y0,X1,Y1", "IMAGE_ID,MASK,IGNORE")),
    ("box outside", "localization.txt", lambda m: field(m, "localization.txt", 4, 3, "5000"), 4,
     ("lies outside its", "image_sizes.txt line 4")),
    ("negative box", "localization.txt", lambda m: field(m, "localization.txt", 6, 2, "-3"), 6,
     ("lies outside its image (a coordinate is negative)",)),
    ("float size", "image_sizes.txt", lambda m: field(m, "image_sizes.txt", 2, 1, "64.5"), 2,
     ("width '64.5' is not a whole number", "IMAGE_ID,WIDTH,HEIGHT")),
    ("zero size", "image_sizes.txt", lambda m: field(m, "image_sizes.txt", 3, 2, "0"), 3,
     ("height is 0", "1 or more")),
    ("missing size column", "image_sizes.txt", lambda m: replace_line(m, "image_sizes.txt", 1, "0.png,300"), 1,
     ("expected 3 comma-separated fields, got 2", "IMAGE_ID,WIDTH,HEIGHT")),
    ("id with a comma", "image_ids.txt", lambda m: replace_line(m, "image_ids.txt", 2, "1.png,0"), 2,
     ("expected one field, got 2", "no comma")),
    ("id listed twice", "image_ids.txt", lambda m: replace_line(m, "image_ids.txt", 6, "2.png"), 6,
     ("image 2.png is listed again (first on line 3)",)),
    ("control character", "image_ids.txt", lambda m: replace_line(m, "image_ids.txt", 2, "1.p\x00ng"), 2,
     ("control character U+0000",)),
    ("empty mask path", "mask_localization.txt", lambda m: field(m, "mask_localization.txt", 2, 1, ""), 2,
     ("mask path (the second field) is empty", "IMAGE_ID,MASK,IGNORE")),
    ("box cut short", "localization.txt", lambda m: replace_line(m, "localization.txt", 3, "2.png,5,6"), 3,
     ("'5' is a number: a box line cut short?",)),
]


def expect_line(message: str, meta: Path, name: str, number: int | None, words) -> None:
    """``message`` is one line naming ``meta/name`` (and the line), holding ``words``, with no Python in it."""
    where = f"{meta / name}:{number}: " if number else f"{meta / name}: "
    assert "\n" not in message and where in message, message
    for w in words:
        assert w in message, (w, message)
    for w in PYTHON_WORDS:
        assert w not in message, (w, message)


def one_error_line(res, meta: Path, name: str, number: int | None, words) -> None:
    """A CLI result: exit code 2, exactly one line on stderr, ``camloc: error:`` naming the file and line."""
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, (res.exit_code, res.stderr, res.exception)
    assert lines[0].startswith("camloc: error: ") and not isinstance(res.exception, (ValueError, LookupError))
    expect_line(lines[0], meta, name, number, words)


@pytest.mark.parametrize(("case", "name", "corrupt", "number", "words"), CASES, ids=[c[0] for c in CASES])
def test_each_malformed_line_is_one_error_naming_file_and_line(tmp_path, case, name, corrupt, number, words):
    meta, images, _ = synthetic_split(tmp_path)
    read_dataset(meta)  # valid before
    corrupt(meta)
    with pytest.raises(MetadataError) as err:
        read_dataset(meta)
    assert isinstance(err.value, CamlocError)
    expect_line(str(err.value), meta, name, number, words)
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(meta), "--images", str(images), "--quiet"])
    one_error_line(res, meta, name, number, words)


#: (case, file, new content, words): problems of a whole file, named without a line
WHOLE_FILE = [
    ("empty image_ids", "image_ids.txt", "", ("lists no image (the file is empty)", "one image id per line")),
    ("blank image_ids", "image_ids.txt", "\n  \n\r\n", ("lists no image",)),
    ("no label for an image", "class_labels.txt", "0.png,0\n1.png,0\n", ("no label for 2.png (image_ids.txt line 3)",
                                                                         "add a line 2.png,CLASS")),
    ("sizes for some images", "image_sizes.txt", "0.png,300,300\n", ("sizes for 1 of 6 images", "image_ids.txt line 2",
                                                                      "leave it empty")),
    ("a box for some images", "localization.txt", "0.png,1,1,20,20\n", ("no box for 1.png (image_ids.txt line 2)",
                                                                         "1 of the 6 images have one")),
    ("boxes for unlisted images only", "localization.txt", "ghost.png,1,1,20,20\n",
     ("no box for 0.png (image_ids.txt line 1)", "all for images that image_ids.txt does not list")),
    ("a mask for some images", "mask_localization.txt", "0.png,0.png,\n", ("no mask for 1.png",
                                                                           "add a line 1.png,MASK,IGNORE")),
]


@pytest.mark.parametrize(("case", "name", "text", "words"), WHOLE_FILE, ids=[c[0] for c in WHOLE_FILE])
def test_file_level_problems_name_the_file(tmp_path, case, name, text, words):
    meta, images, _ = synthetic_split(tmp_path)
    (meta / name).write_text(text)
    with pytest.raises(MetadataError) as err:
        read_dataset(meta)
    expect_line(str(err.value), meta, name, None, words)
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(meta), "--images", str(images), "--quiet"])
    one_error_line(res, meta, name, None, words)
    assert "masks only" not in res.stderr


def test_a_split_without_boxes_or_masks_is_read_and_evaluation_says_what_it_lacks(tmp_path):
    """A training split may come without boxes; evaluating it is refused in words, not as "masks only"."""
    meta, images, _ = synthetic_split(tmp_path)
    (meta / "localization.txt").write_text("\n")
    (meta / "mask_localization.txt").unlink()
    samples = read_dataset(meta)
    assert len(samples) == 6 and not any(s.boxes or s.masks for s in samples)
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(meta), "--images", str(images), "--quiet"])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.stderr
    assert "needs boxes; this split has no box or mask" in lines[0] and "masks only" not in lines[0]


def test_missing_file_and_folder(tmp_path):
    meta, images, _ = synthetic_split(tmp_path)
    with_sizes = read_dataset(meta)
    (meta / "image_sizes.txt").unlink()  # as wsolevaluation's OpenImages metadata: sizes from the images
    assert [s.width for s in read_dataset(meta)] == [None] * len(with_sizes)
    (meta / "localization.txt").unlink()
    (meta / "mask_localization.txt").unlink()
    assert not any(s.boxes or s.masks for s in read_dataset(meta))  # a training split
    (meta / "class_labels.txt").unlink()
    with pytest.raises(MetadataError, match=r"class_labels\.txt: is missing; a metadata folder holds image_ids\.txt "
                                            r"and class_labels\.txt \(and may hold image_sizes\.txt"):
        read_dataset(meta)
    with pytest.raises(MetadataError, match="no such metadata folder"):
        read_dataset(tmp_path / "nowhere")


def test_every_command_that_reads_a_split_fails_the_same_way(tmp_path):
    """evaluate, calibrate, diagnose, score and train: the same one line, exit code 2."""
    meta, images, masks = synthetic_split(tmp_path)
    field(meta, "class_labels.txt", 2, 1, "-1")
    (tmp_path / "maps").mkdir()
    words = ("class -1 is negative", "IMAGE_ID,CLASS")
    commands = [
        ["evaluate", "--metadata", str(meta), "--images", str(images), "--quiet"],
        ["diagnose", "--metadata", str(meta), "--images", str(images), "--quiet"],
        ["score", "--metadata", str(meta), "--scoremaps", str(tmp_path / "maps"), "--masks", str(masks), "--quiet"],
        ["calibrate", "--metadata", str(meta), "--images", str(images), "--out", str(tmp_path / "cal"), "--quiet"],
        ["train", f"train_metadata={meta}", f"train_images={images}", "arch=resnet10t", "pretrained=false",
         f"out={tmp_path / 'run'}", "epochs=1", "--quiet"],
    ]
    for args in commands:
        res = CliRunner().invoke(main, args)
        one_error_line(res, meta, "class_labels.txt", 2, words)
    assert not (tmp_path / "cal").exists() or not any((tmp_path / "cal").iterdir())


def test_a_refused_split_leaves_an_earlier_result_in_place(tmp_path):
    """A bad metadata file stops the run before anything is written: the --out folder keeps its result."""
    meta, images, _ = synthetic_split(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text(json.dumps({"earlier": True}) + "\n")
    bad_bytes(meta, "localization.txt", 2)
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(meta), "--images", str(images), "--quiet",
                                    "--out", str(out)])
    one_error_line(res, meta, "localization.txt", 2, ("not UTF-8",))
    assert json.loads((out / "result.json").read_text()) == {"earlier": True}
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]


@pytest.mark.parametrize("corrupt", ["bytes", "negative", "empty"])
def test_no_traceback_in_a_real_process(tmp_path, corrupt):
    meta, images, _ = synthetic_split(tmp_path)
    if corrupt == "bytes":
        bad_bytes(meta, "image_ids.txt", 1)
        name, number, words = "image_ids.txt", 1, ("not UTF-8",)
    elif corrupt == "negative":
        field(meta, "class_labels.txt", 6, 1, "-7")
        name, number, words = "class_labels.txt", 6, ("class -7 is negative",)
    else:
        (meta / "image_ids.txt").write_text("")
        name, number, words = "image_ids.txt", None, ("lists no image",)
    proc = subprocess.run([sys.executable, "-m", "camloc", "evaluate", "--metadata", str(meta), "--images",
                           str(images), "--quiet"], capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    expect_line(lines[0], meta, name, number, words)


def test_tolerated_whitespace_blank_lines_bom_and_crlf_read_the_same(tmp_path):
    meta, _, _ = synthetic_split(tmp_path)
    before = read_dataset(meta)
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt", "mask_localization.txt"):
        lines = lines_of(meta, name)
        padded = [" \t" + ", ".join(line.split(",")) + "  " for line in lines]
        text = "\r\n\r\n".join(padded) + "\r\n\n"
        (meta / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read_dataset(meta) == before
