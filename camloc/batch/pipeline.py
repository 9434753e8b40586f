"""`camloc localize` over many images: inputs, decoding workers, streaming outputs, resume, shards.

* Inputs: files, folders (recursive, by image extension, sorted) and ``@list.txt`` files of paths.
* Images are decoded (robustly, :func:`camloc.data.imaging.load_image`) and preprocessed in DataLoader
  worker processes; a file that fails becomes an error entry and the run goes on.
* The device stage of batch i+1 (forward, maps, thresholds) runs while a thread finishes batch i
  (contours, boxes, writing), so on a GPU the CPU work hides behind the model.
* Results stream out as they finish: JSON lines (stdout, or ``DIR/results.jsonl``), flushed per
  line, so a killed run loses nothing finished. CSV and COCO are written from the journal at the
  end. With ``out``, overlays (heat map, the region the model saw, boxes, label) and optionally raw
  maps are written per image, atomically, named after the image: its path relative to the input
  folder it was found in, or its file name (``photos/cats/a.jpg`` under ``photos/`` gives
  ``DIR/overlays/cats/a.png``, ``DIR/thumbs/cats/a.jpg``, ``DIR/maps/cats/a.npy``); two images of
  one name get ``~2``, ``~3`` in input order, and names already in the folder's journal stay
  their images' (:mod:`camloc.viz.filenames`). A write that fails for one image is that image's
  error row. At the end of a run :func:`camloc.batch.gallery.write_gallery` writes ``DIR/index.html``
  from the final journal, so resumed and merged runs get the whole page.
* An output folder is checked before any work (:func:`check_output` before the model is loaded,
  :func:`prepare_output` after): it must be writable, and ``DIR/run.json`` records the model and
  settings, and the preprocessing (which region of each image the model sees). A folder that
  already holds results is refused unless ``resume``; a resumed run must use the same model and
  settings (and preprocessing, where the folder recorded it). Resuming drops error rows and a torn last line
  (those images are redone) and keeps one row per image and class.
* Under ``torchrun`` each rank takes every WORLD_SIZE-th image, writes its own journal, and rank 0
  merges the journals in input order.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.dataset import Batch, ImageDataset
from ..utils.atomic import atomic_write_bytes, atomic_write_text
from ..utils.errors import CamlocError, UsageError
from ..viz.filenames import artifact_stems
from ..viz.gallery import THUMBS, thumbnail
from ..viz.render import overlay
from .results import no_class_row

JOURNAL = "results.jsonl"
#: The model and settings of the results in an output folder.
MANIFEST = "run.json"
#: Each per-image artifact: its key in a result's row, its folder in the output folder, its ending.
ARTIFACTS = (("overlay", "overlays", ".png"), ("thumb", THUMBS, ".jpg"), ("map", "maps", ".npy"))


@dataclass
class RunOptions:
    """How :func:`run` works through its images.

    Attributes:
        batch_size, workers: images per forward pass and decoding worker processes.
        classes, topk: the class to localize (default the top-1 prediction) or the top-k classes.
        score_threshold: with a multi-label localizer, the sigmoid score its classes must exceed: an image
            with no class above it gets a row of its own (:func:`camloc.batch.results.no_class_row`).
        out: the output folder (checked by :func:`prepare_output` first), or None.
        overlays, save_maps: per-image artifacts written under ``out``.
        skip: images already done (a resumed run), left out.
        report_errors: print each failed image on stderr (off when the table on the terminal shows it).
        model: the model's name, recorded in every row.
        progress: a progress bar on stderr.
        folders: the input folders the paths were found in; an image's files under ``out`` are named
            by its path relative to its folder, else by its file name (:mod:`camloc.viz.filenames`).
    """

    batch_size: int = 32
    workers: int = 2
    classes: Any = None
    topk: int | None = None
    score_threshold: float | None = None
    out: str | None = None
    overlays: bool = True
    save_maps: bool = False
    skip: frozenset = frozenset()
    report_errors: bool = True
    model: str | None = None
    progress: bool = True
    folders: tuple[str, ...] = ()

    @property
    def per_class(self) -> bool:
        """Whether an image may have several results (``topk`` or multi-label): its files then end in ``.classN``."""
        return bool(self.topk) or self.score_threshold is not None


def journals(out: Path) -> list[Path]:
    """The merged journal and any rank shards left in an output folder."""
    return [out / JOURNAL] + sorted(out.glob("results.rank*.jsonl"))


def done_images(out: Path) -> set[str]:
    """Images that already have a result (not an error) in an output folder's journals."""
    return {d["image"] for j in journals(out) if j.is_file() for d in read_journal(j) if "error" not in d}


def recorded_stems(out: Path, per_class: bool = False) -> dict[str, str]:
    """``{image: stem}``: the names the rows in an output folder's journals gave their images' files.

    A resumed run keeps them (:func:`camloc.viz.filenames.artifact_stems`' ``taken``), so it never
    writes another image's files over a finished one's. ``per_class``: the run's names end in ``.classN``
    (:attr:`RunOptions.per_class`).
    """
    stems = {}
    for j in journals(out):
        for d in read_journal(j) if j.is_file() else ():
            suffix = f".class{d.get('class')}" if per_class else ""
            for key, folder, ending in ARTIFACTS:
                value = d.get(key) if isinstance(d, dict) else None
                if isinstance(value, str) and value.startswith(folder + "/") and value.endswith(suffix + ending):
                    stems[d["image"]] = value[len(folder) + 1:len(value) - len(suffix + ending)]
                    break
    return stems


def file_digest(path: str | None) -> str | None:
    """SHA-256 of a file's bytes: what identifies a checkpoint or calibration.

    None for None or a missing file (which its reader reports).
    """
    if path is None or not os.path.isfile(path):
        return None
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


#: Manifest entries that describe where a file was, not what it holds (their digests are compared).
_NOT_COMPARED = ("camloc", "checkpoint", "calibration", "onnx")
#: What a manifest written before an entry existed meant by its absence (runs before methods: ``cam``).
_ABSENT_MEANT = {"method": "cam"}
#: Entries compared only where the old manifest records them (older manifests did not: nothing to compare).
_COMPARED_WHERE_RECORDED = ("preprocess",)


def _differences(old: dict, new: dict) -> list[str]:
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in _NOT_COMPARED
            and (k in old or k not in _COMPARED_WHERE_RECORDED)]
    then = {k: old.get(k, _ABSENT_MEANT.get(k)) for k in keys}
    now = {k: new.get(k, _ABSENT_MEANT.get(k)) for k in keys}
    return [f"{k}: {then[k]!r} then, {now[k]!r} now" for k in keys if then[k] != now[k]]


def _writable(out: Path) -> None:
    """Create ``out`` and write a probe file in it; one clear line when either fails."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create this folder ({exc.strerror or exc}); "
                         "choose a folder you can write to") from None
    try:
        with tempfile.TemporaryFile(dir=out, prefix=".camloc-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write in this folder ({exc.strerror or exc}); "
                         "choose a folder you can write to") from None


def compact_journal(path: Path) -> None:
    """Rewrite a journal (atomically) with its results only, the last one per image and class.

    Error rows are dropped (their images are tried again) and so is a line torn by a kill mid-write;
    a journal that holds nothing to drop is left untouched.
    """
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    kept: dict[tuple[str, Any], str] = {}
    for line in lines:
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict) and "error" not in d and "image" in d:
            kept.pop((d["image"], d.get("class")), None)
            kept[(d["image"], d.get("class"))] = line
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(line + "\n" for line in kept.values()))


def check_output(out: Path, resume: bool, journal: Path) -> None:
    """The first checks of :func:`prepare_output`, which need no manifest: run before the model is loaded.

    The folder must be creatable and writable, and without ``resume`` hold no results yet.

    Raises:
        UsageError: naming the folder, what is wrong and the way out.
    """
    _writable(out)
    mine = [j for j in dict.fromkeys([out / JOURNAL, journal]) if j.is_file() and j.stat().st_size]
    if not resume and mine:
        raise UsageError(f"--out {out} already holds results ({mine[0].name}): add --resume to continue that run, "
                         "or choose another folder")


def prepare_output(out: Path, manifest: dict, resume: bool, journal: Path, rank: int = 0) -> frozenset:
    """Check an output folder before any work, record the run in it, and say which images are done.

    * the folder must be creatable and writable (else one clear line);
    * without ``resume`` it must not hold results already (they would be mixed with the new ones);
    * with ``resume`` its ``run.json`` must record the same model and settings as ``manifest``
      (checkpoint and calibration compared by content), and this process's ``journal`` is
      compacted (:func:`compact_journal`).

    Returns:
        The images that already have a result (empty without ``resume``).

    Raises:
        UsageError: naming the folder, what is wrong and the way out.
    """
    check_output(out, resume, journal)
    old = None
    if (out / MANIFEST).is_file():
        try:
            old = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
    if resume and isinstance(old, dict) and _differences(old, manifest):
        raise UsageError(f"--out {out} holds results of another model or settings ("
                         f"{'; '.join(_differences(old, manifest))}): resume with those, or choose another folder")
    if rank == 0:
        try:
            atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        except OSError as exc:
            raise UsageError(f"--out {out}: cannot write {MANIFEST} ({exc.strerror or exc}); "
                             "free some space or choose another folder") from None
    if not resume:
        return frozenset()
    compact_journal(journal)
    return frozenset(done_images(out))


def run(localizer, paths: list[str], opts: RunOptions, emit: Callable[[dict], None],
        rank: int = 0, world: int = 1) -> tuple[int, int]:
    """Localize ``paths[rank::world]``; ``emit`` receives each result or error dict in input order.

    Returns:
        ``(results, failures)`` counted over this rank's images.
    """
    from tqdm import tqdm

    out = Path(opts.out) if opts.out else None
    stems = (artifact_stems(paths, opts.folders, recorded_stems(out, opts.per_class))
             if out is not None and (opts.overlays or opts.save_maps) else {})
    indices = [i for i in range(rank, len(paths), world) if paths[i] not in opts.skip]
    loader = _loader([paths[i] for i in indices], localizer.preprocess, opts)
    bar = tqdm(total=len(indices), disable=not opts.progress or len(indices) <= 8, unit="img", file=sys.stderr,
               desc="localize" if world == 1 else f"localize (rank {rank})")
    failures = results = 0
    pending = None

    def fail(path: str, reason: str) -> None:
        nonlocal failures
        failures += 1
        if opts.report_errors:
            print(f"camloc: error: {path}: {reason}", file=sys.stderr)
        emit(_tagged({"image": path, "error": reason}, opts.model))

    def finish(batch: Batch, dev) -> None:
        nonlocal results
        names = [paths[indices[it.index]] for it in batch.good]
        done = iter(localizer.finish(dev, [it.geometry for it in batch.good], names) if batch.good else [])
        for item in batch.items:
            path = paths[indices[item.index]]
            if item.error is not None:
                fail(path, item.error)
                continue
            try:
                rows = _image_rows(next(done), path, item.geometry, out, stems.get(path), opts)
            except OSError as exc:  # this image's files could not be written: its error row, the run goes on
                fail(path, f"cannot write its output in {out} ({exc.strerror or exc}); free some space or check "
                           "the folder's permissions, then rerun with --resume")
                continue
            for row in rows:
                results += 1
                emit(row)
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


def _loader(paths: list[str], preprocess, opts: RunOptions) -> torch.utils.data.DataLoader:
    """The images decoded and preprocessed in ``opts.workers`` processes, ``opts.batch_size`` at a time."""
    data = ImageDataset(paths, preprocess, errors="return")
    return torch.utils.data.DataLoader(data, batch_size=opts.batch_size, num_workers=opts.workers,
                                       collate_fn=ImageDataset.collate, persistent_workers=False)


def _tagged(d: dict, model: str | None) -> dict:
    """A row with the model that made it (when known)."""
    return {**d, "model": model} if model else d


def _image_rows(found: list, path: str, geometry, out: Path | None, stem: str | None, opts: RunOptions) -> list[dict]:
    """An image's rows: one per result, its files written under ``out``; a multi-label image with none, one row.

    Raises:
        OSError: when a file cannot be written (the caller makes it the image's error row).
    """
    if not found:  # multi-label: no class scored above the threshold
        return [_tagged(no_class_row(path, geometry, opts.score_threshold), opts.model)]
    rows = [_tagged(r.to_dict(), opts.model) for r in found]
    if out is not None:
        for row, r in zip(rows, found, strict=True):
            row.update(_write_artifacts(out, path, stem, r, opts))
    return rows


def _write_artifacts(out: Path, path: str, stem: str | None, result, opts: RunOptions) -> dict[str, str]:
    """Write an image's overlay (and its thumbnail) and map; returns their paths relative to ``out`` for its row.

    Each is named ``FOLDER/STEM[.classN]ENDING`` (:data:`ARTIFACTS`; ``.classN`` with ``topk`` or multi-label).

    Raises:
        OSError: when a file cannot be written (the caller makes it the image's error row).
    """
    import cv2

    suffix = f".class{result.class_index}" if opts.per_class else ""
    names = {key: f"{folder}/{stem}{suffix}{ending}" for key, folder, ending in ARTIFACTS}
    written = {}
    if opts.overlays:
        picture = overlay(path, result)
        ok, png = cv2.imencode(".png", picture)
        if ok:
            written["overlay"], written["thumb"] = names["overlay"], names["thumb"]
            atomic_write_bytes(out / written["overlay"], png.tobytes())
            atomic_write_bytes(out / written["thumb"], thumbnail(picture))
    if opts.save_maps:
        buf = io.BytesIO()
        np.save(buf, np.asarray(result.cam))
        written["map"] = names["map"]
        atomic_write_bytes(out / written["map"], buf.getvalue())
    return written


class JournalWriter:
    """Appends JSON lines to a results file, flushed per line (a no-op without a file).

    Raises:
        CamlocError: one line naming the file when it cannot be opened or written (a full or
            read-only disk); every line written before stays.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        try:
            self.fh = open(path, "a", encoding="utf-8") if path else None
        except OSError as exc:
            raise self._error(exc) from None

    def _error(self, exc: OSError) -> CamlocError:
        return CamlocError(f"{self.path}: cannot write results ({exc.strerror or exc}); free some space or choose "
                           "another --out, then rerun with --resume (every finished result is kept)")

    def __call__(self, d: dict) -> None:
        """Append ``d`` as one JSON line and flush it."""
        if self.fh:
            try:
                self.fh.write(json.dumps(d) + "\n")
                self.fh.flush()
            except OSError as exc:
                raise self._error(exc) from None

    def close(self) -> None:
        """Close the file (once; later calls do nothing)."""
        if self.fh:
            fh, self.fh = self.fh, None
            try:
                fh.close()
            except OSError as exc:
                raise self._error(exc) from None


def read_journal(path: Path) -> Iterator[dict]:
    """The records of a journal, one per line; a line that is not valid JSON (a torn last line) is skipped."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                yield json.loads(line)
            except ValueError:
                continue


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
