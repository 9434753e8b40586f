"""`camloc localize` over many images: inputs, decoding workers, streaming outputs, resume, shards.

* Inputs: files, folders (recursive, by image extension, sorted) and ``@list.txt`` files of paths.
* Images are decoded (robustly, :func:`camloc.data.imaging.load_image`) and preprocessed in DataLoader
  worker processes; a file that fails becomes an error entry and the run goes on.
* The device stage of batch i+1 (forward, maps, thresholds) runs while a thread finishes batch i
  (contours, boxes, writing), so on a GPU the CPU work hides behind the model.
* Results stream out as they finish: JSON lines (stdout, or ``DIR/results.jsonl``), flushed per
  batch, so a killed run loses nothing finished; ``resume`` skips images already in the journal.
  CSV and COCO are written from the journal at the end. With ``out``, overlays (heat map, boxes,
  label) and optionally raw maps are written per image, atomically.
* Under ``torchrun`` each rank takes every WORLD_SIZE-th image, writes its own journal, and rank 0
  merges the journals in input order.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TextIO

import numpy as np
import torch

from .atomic import atomic_write_bytes
from .data.dataset import Batch, ImageDataset
from .errors import UsageError
from .render import overlay

JOURNAL = "results.jsonl"


def artifact_name(path: str) -> str:
    """A file name for an image's overlay or map, unique per input path."""
    clean = os.path.normpath(path).lstrip("./\\")
    return clean.replace(os.sep, "__").replace("/", "__").replace(":", "_")


@dataclass
class RunOptions:
    batch_size: int = 16
    workers: int = 2
    classes: Any = None
    topk: Optional[int] = None
    out: Optional[str] = None
    overlays: bool = True
    save_maps: bool = False
    resume: bool = False
    progress: bool = True


def journals(out: Path) -> list[Path]:
    """The merged journal and any rank shards left in an output folder."""
    return [out / JOURNAL] + sorted(out.glob("results.rank*.jsonl"))


def done_images(out: Path) -> set[str]:
    """Images that already have a result (not an error) in an output folder's journals."""
    return {d["image"] for j in journals(out) if j.is_file() for d in read_journal(j) if "error" not in d}


def run(localizer, paths: list[str], opts: RunOptions, emit: Callable[[dict], None],
        rank: int = 0, world: int = 1) -> tuple[int, int]:
    """Localize ``paths[rank::world]``; ``emit`` receives each result or error dict in input order.

    Returns:
        ``(results, failures)`` counted over this rank's images.
    """
    from tqdm import tqdm

    out = Path(opts.out) if opts.out else None
    skip = done_images(out) if (out and opts.resume) else set()
    indices = [i for i in range(rank, len(paths), world) if paths[i] not in skip]
    data = ImageDataset([paths[i] for i in indices], localizer.preprocess, errors="return")
    loader = torch.utils.data.DataLoader(data, batch_size=opts.batch_size, num_workers=opts.workers,
                                         collate_fn=ImageDataset.collate, persistent_workers=False)
    bar = tqdm(total=len(indices), disable=not opts.progress or len(indices) <= 8, unit="img", file=sys.stderr,
               desc="localize" if world == 1 else f"localize (rank {rank})")
    failures = results = 0
    pending = None

    def finish(batch: Batch, dev) -> None:
        nonlocal failures, results
        names = [paths[indices[it.index]] for it in batch.good]
        done = iter(localizer.finish(dev, [it.geometry for it in batch.good], names) if batch.good else [])
        for item in batch.items:
            path = paths[indices[item.index]]
            if item.error is not None:
                failures += 1
                print(f"camloc: error: {path}: {item.error}", file=sys.stderr)
                emit({"image": path, "error": item.error})
                continue
            for r in next(done):
                if out is not None:
                    _write_artifacts(out, path, r, opts)
                results += 1
                emit(r.to_dict())
        bar.update(len(batch.items))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="camloc-finish") as pool:
        for batch in loader:
            dev = localizer.device_stage(batch.images, opts.classes, opts.topk) if batch.good else None
            if pending is not None:
                pending.result()  # keep output in input order, surface errors
            pending = pool.submit(finish, batch, dev)
        if pending is not None:
            pending.result()
    bar.close()
    return results, failures


def _write_artifacts(out: Path, path: str, result, opts: RunOptions) -> None:
    import cv2

    name = artifact_name(path)
    suffix = f".class{result.class_index}" if opts.topk else ""
    if opts.overlays:
        ok, png = cv2.imencode(".png", overlay(path, result))
        if ok:
            atomic_write_bytes(out / "overlays" / f"{name}{suffix}.png", png.tobytes())
    if opts.save_maps:
        buf = io.BytesIO()
        np.save(buf, result.cam.numpy())
        atomic_write_bytes(out / "maps" / f"{name}{suffix}.npy", buf.getvalue())


class JournalWriter:
    """Appends JSON lines to a results file, flushed per line (a no-op without a file)."""

    def __init__(self, path: Optional[Path]) -> None:
        self.fh = open(path, "a", encoding="utf-8") if path else None
        if self.fh and path.stat().st_size:
            with open(path, "rb") as fh:  # a run killed mid-line left a torn record: start a fresh line
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    self.fh.write("\n")

    def __call__(self, d: dict) -> None:
        if self.fh:
            self.fh.write(json.dumps(d) + "\n")
            self.fh.flush()

    def close(self) -> None:
        if self.fh:
            self.fh.close()


def read_journal(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                yield json.loads(line)
            except ValueError:
                continue


CSV_FIELDS = ["image", "class", "label", "score", "x0", "y0", "x1", "y1", "width", "height", "exact", "error"]


def format_row(d: dict) -> str:
    """One line of the readable table."""
    if "error" in d:
        return f"{d['image']}\tERROR\t{d['error']}"
    box = ", ".join(f"{v:.1f}" for v in d["box"])
    return f"{d['image']}\t{d['class']}\t{d['label']}\t{d['score']:.3f}\t[{box}]\t{'exact' if d['exact'] else 'gradient'}"


class Formatter:
    """Streams records as a table, JSON lines, CSV rows (the main box as x0..y1, errors kept) or one
    COCO detection-results array (``image_id`` = path, ``category_id`` = class index, ``bbox`` =
    ``[x, y, w, h]``, ``score``; one detection per box, error entries left out)."""

    def __init__(self, fmt: str, stream: Optional[TextIO] = None) -> None:
        if fmt not in ("table", "jsonl", "csv", "coco"):
            raise UsageError(f"unknown format {fmt!r}")
        self.fmt, self.stream, self.first = fmt, stream or sys.stdout, True
        if fmt == "table":
            self.stream.write("image\tclass\tlabel\tscore\tbox [x0, y0, x1, y1]\tmap\n")
        elif fmt == "csv":
            self.csv = csv.DictWriter(self.stream, CSV_FIELDS, extrasaction="ignore")
            self.csv.writeheader()
        elif fmt == "coco":
            self.stream.write("[")

    def __call__(self, d: dict) -> None:
        if self.fmt == "table":
            self.stream.write(format_row(d) + "\n")
        elif self.fmt == "jsonl":
            self.stream.write(json.dumps(d) + "\n")
        elif self.fmt == "csv":
            row = dict(d)
            if "box" in d:
                row.update(zip(("x0", "y0", "x1", "y1"), d["box"], strict=True))
            self.csv.writerow(row)
        elif "error" not in d:
            for b in d["boxes"]:
                det = {"image_id": d["image"], "category_id": d["class"],
                       "bbox": [b[0], b[1], round(b[2] - b[0], 2), round(b[3] - b[1], 2)], "score": d["score"]}
                self.stream.write(("" if self.first else ",\n") + json.dumps(det))
                self.first = False
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "coco":
            self.stream.write("]\n")
            self.stream.flush()


def write_records(records: Iterable[dict], fmt: str, fh: TextIO) -> None:
    """All records in one format."""
    out = Formatter(fmt, fh)
    for d in records:
        out(d)
    out.close()


def in_order(paths: list[str], journals: list[Path]) -> Iterator[dict]:
    """Records of one or more journals, in input order.

    Per image: its results, one per class (the last one written for each class), or, if it never
    succeeded, its last error. Resumed runs and rank shards therefore merge without duplicates.
    """
    results: dict[str, dict[int, dict]] = {}
    errors: dict[str, dict] = {}
    for j in journals:
        if j.is_file():
            for d in read_journal(j):
                if "error" in d:
                    errors[d["image"]] = d
                else:
                    results.setdefault(d["image"], {})[d["class"]] = d
    for p in dict.fromkeys(paths):
        if p in results:
            yield from results[p].values()
        elif p in errors:
            yield errors[p]
