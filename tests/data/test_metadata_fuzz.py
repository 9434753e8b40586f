"""Fuzzing the metadata reader: every mutation of a valid split is read right or refused in one line.

A small valid split (four images, boxes and masks, one image with two boxes, one with an ignore
mask) is mutated file by file (ids, labels, sizes, boxes, masks) in many ways, with a fixed seed:
lines deleted, duplicated, shuffled; fields swapped, emptied, set to negative, huge, float, NaN,
infinite or non-ASCII values; columns added or dropped; other separators; random bytes; truncated
or emptied files; unknown image ids; boxes outside their image; mask paths that lead nowhere.

What camloc tolerates (blank lines, whitespace around lines and fields, CRLF, a byte-order mark,
lines for images that ``image_ids.txt`` does not list) and refuses is stated in docs/protocols.md;
:func:`reference_read` restates those rules on its own, as plainly as possible, and is the oracle:

* where it refuses, ``read_dataset`` must raise :class:`MetadataError` and ``camloc evaluate`` must
  exit 2 with exactly one line naming a metadata file (and the line, where there is one), and an
  earlier ``result.json`` in ``--out`` must be left as it was;
* where it accepts, ``read_dataset`` must give the very samples it gives, and ``camloc evaluate``
  must report the numbers (and failed images) of :func:`camloc.eval.evaluation.evaluate` on them,
  and save that result under ``--out``. Evaluation is a function of the samples, so each distinct
  set of samples is evaluated once.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import camloc.cli.evaluate as evaluate_cli
from camloc.cli import main
from camloc.data.metadata import MetadataError, Sample, read_dataset
from camloc.eval.evaluation import evaluate
from camloc.eval.protocols import Settings
from camloc.utils.errors import CamlocError

from ..helpers import Brightness, write_split

SEED = 20261201
FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt", "mask_localization.txt")
SETTINGS = Settings("wsolevaluation", ("cam",), interval=0.1, metrics=("maxboxacc", "maxboxacc_v2", "pxap"))
#: What a field may be set to.
VALUES = ("-1", "-0", "+1", "0", "1", "2", "1.5", "2.0", "1e1", "1e400", "nan", "-inf", "inf", "", " ", "abc",
          "0x1", "1_0", "\uff11", "\u0663", "99999999999999999999", "9223372036854775808", "-5000", "5000", "7" * 5000)
#: What an image id may be set to.
IDS = ("", "nope.png", "0.PNG", " 1.png ", "\u00e9.png", "../0.png")
SEPARATORS = ("\t", ";", " ", ", ", " , ", ",,")
PYTHON_WORDS = ("invalid literal", "could not convert", "list index", "out of range", "Traceback", "codec",
                "Error", "NoneType", "unpack")
SPACE = " \t\r\f\v"
#: The options of every ``camloc evaluate`` run here: the numbers of SETTINGS, no pictures.
OPTIONS = ("--quiet", "--json", "--protocol", "wsolevaluation", "--variants", "cam", "--interval", "0.1",
           "--metrics", "maxboxacc,maxboxacc_v2,pxap", "--gallery-images", "0")


def small_split(root: Path) -> tuple[Path, Path]:
    """Four pictures of a white rectangle; metadata in ``root/meta``, images and masks in ``root/images``."""
    images = root / "images"
    images.mkdir(parents=True)
    sizes = [(64, 48), (48, 64), (80, 56), (56, 56)]
    rows, boxes, masks = [], [], []
    for i, (w, h) in enumerate(sizes):
        arr = np.zeros((h, w, 3), np.uint8)
        arr[8 + i:30, 10:40 - i] = 255
        Image.fromarray(arr).save(images / f"{i}.png")
        Image.fromarray(arr[..., 0]).save(images / f"m{i}.png")
        rows.append((f"{i}.png", 0, w, h))
        boxes.append(f"{i}.png,10,{8 + i},{39 - i},29")
        masks.append(f"{i}.png,m{i}.png," + ("m0.png" if i == 2 else ""))
    boxes.append("0.png,40,30,60,44")  # a second box for image 0
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(images / "m_empty.png")
    write_split(root / "meta", rows, boxes, final_newline=True, masks=masks)
    return root / "meta", images


# -- the oracle: the documented rules, restated ------------------------------------------------------------


class Refused(Exception):
    """The oracle's verdict: this split must be refused."""


def records(path: Path, optional: bool = False) -> list[list[str]] | None:
    if not path.is_file():
        if optional:
            return None
        raise Refused
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    out = []
    for raw in data.split(b"\n"):
        try:
            line = raw.decode("utf-8").strip(SPACE)
        except UnicodeDecodeError:
            raise Refused from None
        if any(ord(c) < 32 and c != "\t" or 127 <= ord(c) < 160 for c in line):
            raise Refused
        if line:
            fields = [f.strip(SPACE) for f in line.split(",")]
            if not fields[0]:
                raise Refused
            out.append(fields)
    return out


def whole(text: str, lowest: int) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text) or len(text.lstrip("+-").lstrip("0")) > 19:
        raise Refused
    if not lowest <= int(text) <= 2**63 - 1:
        raise Refused
    return int(text)


def real(text: str) -> float:
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text) or not math.isfinite(float(text)):
        raise Refused
    return float(text)


def one_each(rows: list[list[str]], width: int, parse) -> dict:
    out = {}
    for r in rows:
        if len(r) != width or r[0] in out:
            raise Refused
        out[r[0]] = parse(r)
    return out


def reference_read(meta: Path) -> list[Sample] | None:
    """The samples the documented rules give, or None where they refuse the split."""
    try:
        ids = [r[0] if len(r) == 1 else _refuse() for r in records(meta / "image_ids.txt")]
        if not ids or len(set(ids)) != len(ids):
            raise Refused
        labels = one_each(records(meta / "class_labels.txt"), 2, lambda r: whole(r[1], 0))
        sizes = one_each(records(meta / "image_sizes.txt", optional=True) or [], 3,
                         lambda r: (whole(r[1], 1), whole(r[2], 1)))
        boxes, masks, ignores = {}, {}, {}
        for name in ("localization.txt", "mask_localization.txt"):  # absent: no boxes or masks
            for r in records(meta / name, optional=True) or []:
                if len(r) == 3:
                    if not r[1] or re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", r[1]):
                        raise Refused
                    masks.setdefault(r[0], []).append(r[1])
                    if r[2]:
                        ignores.setdefault(r[0], []).append(r[2])
                    continue
                if len(r) != 5:
                    raise Refused
                x0, y0, x1, y1 = (real(v) for v in r[1:])
                w, h = sizes.get(r[0], (math.inf, math.inf))
                if not (0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h):
                    raise Refused
                boxes.setdefault(r[0], []).append((x0, y0, x1, y1))
        if not all(i in labels for i in ids):
            raise Refused
        for found in (sizes, boxes, masks):  # for every image, or for none
            if found and not all(i in found for i in ids):
                raise Refused
    except Refused:
        return None
    return [Sample(i, labels[i], *sizes.get(i, (None, None)), tuple(boxes.get(i, ())), tuple(masks.get(i, ())),
                   tuple(dict.fromkeys(ignores.get(i, ())))) for i in ids]


def _refuse():
    raise Refused


# -- the mutations ------------------------------------------------------------------------------------------


def _line_op(change):
    """A mutation of one random line: ``change(rng, fields) -> fields or a raw line (bytes)``."""

    def apply(data: bytes, rng: random.Random) -> bytes:
        lines = data.split(b"\n")
        k = rng.randrange(len([x for x in lines if x.strip()]) or 1)
        parts = lines[k].decode("utf-8", "replace").split(",")
        new = change(rng, parts)
        lines[k] = new if isinstance(new, bytes) else ",".join(new).encode()
        return b"\n".join(lines)

    return apply


def _set_field(value: str, first: bool = False):
    def change(rng, parts):
        i = 0 if first or len(parts) == 1 else rng.randrange(1, len(parts))
        return parts[:i] + [value] + parts[i + 1:]

    return change


def _swap(rng, parts):
    if len(parts) < 2:
        return parts + parts
    i, j = rng.sample(range(len(parts)), 2)
    parts[i], parts[j] = parts[j], parts[i]
    return parts


def _insert_bytes(rng, parts):
    line = ",".join(parts).encode()
    at = rng.randrange(len(line) + 1)
    return line[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 6))) + line[at:]


def _shuffle(data: bytes, rng: random.Random) -> bytes:
    lines = [x for x in data.split(b"\n") if x]
    rng.shuffle(lines)
    return b"\n".join(lines) + b"\n"


def _each_line(change):
    return lambda data, rng: b"\n".join(change(x) if x else x for x in data.split(b"\n"))


def _delete_line(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    del lines[rng.randrange(len(lines) - 1)]
    return b"\n".join(lines)


def _duplicate_line(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    k = rng.randrange(len(lines) - 1)
    return b"\n".join(lines[:k + 1] + [lines[k]] + lines[k + 1:])


def _unknown_image_line(data: bytes, rng: random.Random) -> bytes:
    lines = [x for x in data.split(b"\n") if x]
    parts = rng.choice(lines).split(b",")
    return data + b",".join([b"ghost.png"] + parts[1:]) + b"\n"


def _blank_lines(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    for _ in range(3):
        lines.insert(rng.randrange(len(lines) + 1), rng.choice([b"", b"   ", b"\t", b"\r"]))
    return b"\n".join(lines)


OPERATIONS = {
    "delete a line": _delete_line,
    "duplicate a line": _duplicate_line,
    "shuffle the lines": _shuffle,
    "swap two fields": _line_op(_swap),
    **{f"set a field to {v!r}": _line_op(_set_field(v)) for v in VALUES},
    **{f"set an id to {v!r}": _line_op(_set_field(v, first=True)) for v in IDS},
    "add a column": _line_op(lambda rng, p: p + ["7"]),
    "add an empty column": _line_op(lambda rng, p: p + [""]),
    "drop a column": _line_op(lambda rng, p: p[:-1] if len(p) > 1 else [""]),
    **{f"separate by {s!r}": _line_op(lambda rng, p, s=s: s.join(p).split(",")) for s in SEPARATORS},
    "random bytes in a line": _line_op(_insert_bytes),
    "a latin-1 character": _line_op(lambda rng, p: ",".join(p).encode().replace(b".png", b"\xe9.png", 1)),
    "a NUL character": _line_op(lambda rng, p: ",".join(p).encode().replace(b".", b".\x00", 1)),
    "random bytes": lambda data, rng: bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))),
    "truncate": lambda data, rng: data[:rng.randrange(1, len(data))],
    "empty": lambda data, rng: b"",
    "delete the file": lambda data, rng: None,
    "blank lines": _blank_lines,
    "trailing whitespace": _each_line(lambda x: x + b" \t "),
    "leading whitespace": _each_line(lambda x: b"  " + x),
    "spaces around fields": _each_line(lambda x: x.replace(b",", b" , ")),
    "CRLF line ends": lambda data, rng: data.replace(b"\n", b"\r\n"),
    "no final newline": lambda data, rng: data.rstrip(b"\n"),
    "a byte-order mark": lambda data, rng: b"\xef\xbb\xbf" + data,
    "a line for an unknown image": _unknown_image_line,
}


def mutations(rng: random.Random) -> list[tuple[str, str]]:
    """``(file, operation)`` for every file and operation, in a shuffled but fixed order."""
    out = [(name, op) for name in FILES for op in OPERATIONS]
    rng.shuffle(out)
    return out


# -- the run --------------------------------------------------------------------------------------------------


def one_line_naming_a_metadata_file(text: str, meta: Path) -> None:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    m = re.match(rf"camloc: error: {re.escape(str(meta))}/({'|'.join(map(re.escape, FILES))})(?::(\d+))?: ", lines[0])
    assert m, lines[0]
    if m.group(2):
        assert 1 <= int(m.group(2)) <= len((meta / m.group(1)).read_bytes().split(b"\n")), lines[0]
    assert not any(w in lines[0] for w in PYTHON_WORDS), lines[0]


def comparable(result_dict: dict) -> dict:
    """The numbers and failed images of a result, as JSON reads them back."""
    return json.loads(json.dumps({"variants": result_dict["variants"], "failed": result_dict["failed"]}))


def test_every_mutation_is_read_right_or_refused_in_one_line(tmp_path, monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.setattr(evaluate_cli, "load_model_for", lambda *a, **k: Brightness())
    original, images = small_split(tmp_path / "split")
    originals = {name: (original / name).read_bytes() for name in FILES}
    assert reference_read(original) == read_dataset(original)
    meta, out = tmp_path / "meta", tmp_path / "out"
    rng = random.Random(SEED)
    expected: dict[tuple, dict] = {}  # samples -> the numbers evaluate gives on them
    seen = {"refused": 0, "read": 0, "evaluated": 0}
    for name, op in mutations(rng):
        shutil.rmtree(meta, ignore_errors=True)
        shutil.copytree(original, meta)
        mutated = OPERATIONS[op](originals[name], rng)
        if mutated is None:
            (meta / name).unlink()
        else:
            (meta / name).write_bytes(mutated)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        (out / "result.json").write_text('{"earlier": true}\n')
        want = reference_read(meta)
        args = ["evaluate", "--metadata", str(meta), "--images", str(images), *OPTIONS, "--out", str(out)]
        case = f"{op} in {name}: {mutated!r}"
        if want is None:
            with pytest.raises(MetadataError) as err:
                read_dataset(meta)
            assert "\n" not in str(err.value), case
            res = CliRunner().invoke(main, args)
            assert res.exit_code == 2, (case, res.output, res.exception)
            one_line_naming_a_metadata_file(res.stderr, meta)
            assert (out / "result.json").read_text() == '{"earlier": true}\n', case
            seen["refused"] += 1
            continue
        got = read_dataset(meta)
        assert got == want, case
        seen["read"] += 1
        key = tuple(got)
        if key in expected:
            continue
        try:
            expected[key] = comparable(evaluate(Brightness(), got, images, SETTINGS, masks=images,
                                                progress=False).to_dict())
        except CamlocError as exc:  # e.g. a label beyond the model's two classes
            expected[key] = {"error": f"camloc: error: {exc}"}
        res = CliRunner().invoke(main, args)
        seen["evaluated"] += 1
        if "error" in expected[key]:
            assert res.exit_code == 2 and res.stderr.strip() == expected[key]["error"], (case, res.stderr)
            continue
        assert res.exit_code == (1 if expected[key]["failed"] else 0), (case, res.stderr, res.exception)
        assert "Traceback" not in res.stderr, case
        assert comparable(json.loads(res.stdout)) == expected[key], case
        assert comparable(json.loads((out / "result.json").read_text())) == expected[key], case
    # the fuzzing reached every outcome, often
    assert seen["refused"] > 100 and seen["read"] > 40 and seen["evaluated"] > 5, seen


def test_missing_and_corrupt_mask_files_fail_their_image_only(tmp_path, monkeypatch):
    """A mask that cannot be read fails its image (listed, a miss), the others are scored and saved."""
    monkeypatch.setattr(evaluate_cli, "load_model_for", lambda *a, **k: Brightness())
    original, images = small_split(tmp_path / "split")
    before = evaluate(Brightness(), read_dataset(original), images, SETTINGS, masks=images, progress=False)
    assert before.metrics["cam"]["maxboxacc_v2"] == 100.0 and before.metrics["cam"]["top1_cls"] == 100.0
    (images / "m1.png").unlink()
    (images / "m3.png").write_bytes(bytes(random.Random(SEED).randrange(256) for _ in range(300)))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(original), "--images", str(images), *OPTIONS,
                                    "--out", str(out), "--save-maps"])
    assert res.exit_code == 1, (res.stderr, res.exception)
    assert "Traceback" not in res.stderr
    failed = [line for line in res.stderr.splitlines() if line.startswith("camloc: failed: ")]
    assert [line.split(": ")[2] for line in failed] == ["1.png", "3.png"], res.stderr
    assert "mask file not found" in failed[0] and "mask cannot be read" in failed[1]
    saved = json.loads((out / "result.json").read_text())
    assert [f["image_id"] for f in saved["failed"]] == ["1.png", "3.png"] and saved["dataset"]["n"] == 4
    assert comparable(saved) == comparable(json.loads(res.stdout))
    assert sorted(p.name for p in (out / "maps" / "cam").iterdir()) == ["0.png.npy", "2.png.npy"]
    # the two failed images are misses in every denominator; the other two are still found
    assert saved["variants"]["cam"]["top1_cls"] == 50.0 and saved["variants"]["cam"]["maxboxacc_v2"] == 50.0
