"""``camloc localize``: boxes for images, folders and lists, streamed, resumable, sharded under torchrun."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..utils.errors import CamlocError
from .localize_settings import LocalizeSettings
from .options import (
    batch_size_option,
    device_option,
    fail_usage,
    load_model_for,
    method_option,
    model_given,
    model_options,
    needs_out,
    nwc_option,
    quiet_option,
    resize_option,
    threshold_options,
    typed,
    workers_option,
)

#: The file in ``--out`` that each whole-run format is also written to, from the journal at the end.
TABLE_FILES = {"csv": "results.csv", "coco": "results.coco.json", "coco-instances": "instances.json"}
#: The ``--metadata`` report's file in ``--out`` (its picture: :data:`camloc.viz.pseudoboxes.FILE`).
QUALITY = "pseudo_boxes.json"

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Localizer
    from ..batch.distributed import Context
    from ..batch.pipeline import JournalWriter
    from ..data.inputs import Inputs
    from ..data.metadata import Sample
    from ..runtime import OnnxLocalizer


@click.command("localize")
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option("--onnx", type=click.Path(dir_okay=False),
              help="Localize with this file from camloc export, run by onnxruntime instead of a torch model: the file "
                   "carries the model, preprocessing and threshold settings.")
@click.option("--class", "class_index", type=int, help="Localize this class instead of the top-1 prediction.")
@click.option("--topk", type=int, help="Localize each image's top-k predicted classes.")
@click.option("--multilabel", is_flag=True,
              help="A multi-label head: score classes by sigmoid and localize every class above --score-threshold, "
                   "each with its own map and box (an image with none gets a row saying so).")
@click.option("--score-threshold", type=float, default=0.5, show_default=True,
              help="With --multilabel: the sigmoid score a class must exceed.")
@click.option("--max-classes", type=click.IntRange(min=1), default=100, show_default=True,
              help="With --multilabel: the most classes localized in an image (the highest scores).")
@method_option(default=None)
@nwc_option
@threshold_options("Threshold against a percentile of the map (PaS), its maximum (vanilla CAM), or each map's own "
                   "automatic threshold (otsu, li, triangle, yen: no theta).")
@click.option("--all-regions", is_flag=True, help="Report every region's box, not only the largest.")
@resize_option(" (never sees the image's border)")
@batch_size_option()
@workers_option
@device_option
@click.option("--calibration", type=click.Path(),
              help="theta, percentile, NWC and method from camloc calibrate: its --out folder or the calibration.json "
                   "in it (overrides those options; a different --method is refused).")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv", "coco", "coco-instances"]),
              help="Output on stdout [default: table on a terminal, JSON lines otherwise]; coco: detection results, "
                   "coco-instances: a COCO instances file of the boxes (images, categories, annotations) to train a "
                   "detector on. With --out also written there (results.csv, results.coco.json, instances.json).")
@click.option("--metadata", type=click.Path(),
              help="A metadata folder with the images' true boxes: report the boxes' precision and recall at IoU "
                   "0.5 against them, at every score threshold (with --out also in pseudo_boxes.json).")
@click.option("--json", "as_json", is_flag=True, help="Same as --format jsonl.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Write results.jsonl (and csv/coco), overlays with thumbnails, maps, and index.html (a gallery "
                   "of the results to open in a browser, no server needed) here.")
@click.option("--save-maps", is_flag=True, help="With --out: the raw map of each image as .npy.")
@click.option("--no-overlays", is_flag=True, help="With --out: skip the overlay PNGs and thumbnails (index.html "
                                                  "then lists the results without pictures).")
@click.option("--resume", is_flag=True, help="With --out: skip images already in its results.")
@quiet_option
def command(**options: Any) -> None:
    """Localize the predicted class in each IMAGE (files, folders, @list.txt) and print its box in original pixels.

    Under torchrun the images are sharded across ranks; rank 0 merges the results in input order.
    Exit code 0: all fine; 1: some images failed (each reported, the rest done); 2: usage error.
    """
    from ..batch.distributed import Context

    settings = LocalizeSettings.from_options(options, terminal=_stdout_is_terminal())
    ctx = Context.from_env()
    _check_options(settings, ctx.world)
    run = _prepare(settings, ctx)
    failed = _localize_all(run, settings, ctx)
    _finish(run, settings, ctx, failed)


@dataclass(frozen=True)
class _Run:
    """What :func:`_prepare` set up: the inputs, the output folder, the localizer and the journal's writer."""

    found: Inputs
    inputs: list[str]
    width: int
    out_dir: Path | None
    journal: Path | None
    localizer: Localizer | OnnxLocalizer
    writer: JournalWriter
    skip: frozenset
    model_name: str
    categories: list[str] | None
    truth: list[Sample] | None
    collected: list[dict]


def _prepare(s: LocalizeSettings, ctx: Context) -> _Run:
    """Everything before the first image: the inputs, the ``--out`` folder, the model (exit 2 on a usage error)."""
    from ..api import Localizer, resolve_method
    from ..batch import pipeline
    from ..cam.rules import make_standard
    from ..data.imaging import max_pixels_limit
    from ..eval.pseudoboxes import true_boxes
    from ..models.config import model_config

    m, b = s.model, s.boxes
    out_dir = Path(s.output.out) if s.output.out else None
    journal = ctx.journal(out_dir) if out_dir else None
    calibration = _calibration_file(b.calibration)
    try:
        max_pixels_limit()  # a bad CAMLOC_MAX_PIXELS is one line now, not an error per image
        standard = make_standard(b.standard, b.theta, b.percentile)
        method = resolve_method(m.method, calibration)
        found = _find_images(s.images)
        truth = true_boxes(s.output.metadata) if s.output.metadata else None
        if out_dir:  # a folder that cannot take the results is one line before the model is loaded
            pipeline.check_output(out_dir, s.output.resume, journal)
        device = ctx.setup(m.device)
        if m.onnx:
            loc, name, manifest = _onnx_localizer(s, device)
        else:
            model = load_model_for(m.name, m.checkpoint, m.num_classes, device)
            loc = Localizer(model, nwc=m.nwc, standard=standard, all_regions=b.all_regions, resize=b.resize,
                            calibration=calibration, method=method, multilabel=b.score_threshold is not None,
                            score_threshold=0.5 if b.score_threshold is None else b.score_threshold,
                            max_classes=b.max_classes)
            name = model_config(model).name or m.name
            # the manifest records the preprocessing (the region seen), so it follows the model's loading
            manifest = _manifest(m.name if (model_given() or not m.checkpoint) else None, m.checkpoint, m.num_classes,
                                 m.nwc, standard, b.all_regions, loc.preprocess.region_mode, calibration, b.class_index,
                                 b.topk, method, loc.preprocess.to_dict(),
                                 None if b.score_threshold is None else [b.score_threshold, b.max_classes])
        skip = (pipeline.prepare_output(out_dir, manifest, s.output.resume, journal, ctx.rank) if out_dir
                else frozenset())
        writer = pipeline.JournalWriter(journal)
    except (CamlocError, ValueError) as exc:
        raise fail_usage(exc) from None
    inputs = [w for w, _ in found.problems] + found.paths  # the rows' order: problem inputs are reported first
    width = min(max((len(p) for p in inputs), default=5), 48)
    return _Run(found, inputs, width, out_dir, journal, loc, writer, skip, name, _categories(loc, s.output.fmt), truth,
                [])


def _categories(loc: Localizer | OnnxLocalizer, fmt: str) -> list[str] | None:
    """A COCO instances file's categories: the model's class names (``class N`` where it has none)."""
    if fmt != "coco-instances":
        return None
    return list(loc.labels() or (f"class {c}" for c in range(loc.num_classes())))


def _onnx_localizer(s: LocalizeSettings, device: Any) -> tuple[OnnxLocalizer, str, dict]:
    """``--onnx``: the runtime's localizer, the model's name its file records, and the run's manifest."""
    from ..batch.pipeline import file_digest
    from ..runtime import OnnxLocalizer

    where = "cuda" if s.model.device and str(device).startswith("cuda") else "cpu"  # the GPU when asked for
    loc = OnnxLocalizer(s.model.onnx, all_regions=s.boxes.all_regions, device=where)
    info = loc.info
    loc.check_topk(s.boxes.topk)  # more than the file holds: one line before any image
    manifest = _manifest(info.model, None, info.num_classes, info.nwc, info.standard, s.boxes.all_regions,
                         info.preprocess.region_mode, None, None, s.boxes.topk, "cam", info.preprocess.to_dict())
    manifest.update(onnx=s.model.onnx, onnx_sha256=file_digest(s.model.onnx))
    return loc, info.model, manifest


def _calibration_file(calibration: str | None) -> str | None:
    """``--calibration`` as a file: a calibrate ``--out`` folder stands for the calibration.json in it."""
    if calibration and Path(calibration).is_dir():
        from ..eval.calibration import FILE

        return str(Path(calibration) / FILE)
    return calibration


def _find_images(images: tuple[str, ...]) -> Inputs:
    """The images the arguments name; a ValueError when they name none (one line per input that yielded nothing)."""
    from ..data.inputs import find_inputs

    found = find_inputs(images)
    if not found.paths:
        for where, reason in found.problems[:-1]:
            click.echo(f"camloc: error: {where}: {reason}", err=True)
        raise ValueError(": ".join(found.problems[-1]) if found.problems else "no images given")
    return found


def _localize_all(run: _Run, s: LocalizeSettings, ctx: Context) -> int:
    """Localize this rank's images, each result streamed to the journal and stdout; returns the failures."""
    from ..batch import pipeline
    from ..batch.formats import Formatter

    o = s.output
    formatter = (Formatter(o.fmt, image_width=run.width, seen=_seen(run), labels=run.categories) if ctx.world == 1
                 else None)
    opts = pipeline.RunOptions(batch_size=o.batch_size, workers=o.workers, classes=s.boxes.class_index,
                               topk=s.boxes.topk, score_threshold=s.boxes.score_threshold, out=o.out,
                               overlays=o.overlays, save_maps=o.save_maps, skip=run.skip, progress=o.progress,
                               report_errors=not (o.fmt == "table" and _stdout_is_terminal()), model=run.model_name,
                               folders=tuple(a for a in s.images if not a.startswith("@") and Path(a).is_dir()))

    def emit(d: dict) -> None:
        run.writer(d)
        if run.truth is not None and run.out_dir is None:  # scored at the end (with --out, from the journal)
            run.collected.append(d)
        if formatter:
            formatter(d)

    try:
        failed = 0
        if ctx.rank == 0:  # inputs that yielded no image: reported once, like a failed image
            for where, reason in run.found.problems:
                failed += 1
                if opts.report_errors:
                    click.echo(f"camloc: error: {where}: {reason}", err=True)
                emit({"image": where, "error": reason})
        _, failed_images = pipeline.run(run.localizer, run.found.paths, opts, emit, ctx.rank, ctx.world)
        failed += failed_images
        run.writer.close()
    except KeyboardInterrupt:
        _close_quietly(run.writer)
        where = f" in {run.journal}" if run.journal else ""
        click.echo(f"camloc: interrupted; every finished result is kept{where} (rerun with --resume)", err=True)
        raise click.exceptions.Exit(130) from None
    except CamlocError as exc:
        _close_quietly(run.writer)
        raise fail_usage(exc) from None
    if formatter:
        formatter.close()
    return failed


def _finish(run: _Run, s: LocalizeSettings, ctx: Context, failed: int) -> None:
    """Rank 0's merge under torchrun, the csv/coco file and gallery of ``--out``, and the exit code."""
    from ..batch import pipeline
    from ..batch.formats import Formatter
    from ..batch.gallery import write_gallery

    fmt, out_dir = s.output.fmt, run.out_dir
    total = len(run.inputs)
    if ctx.world > 1:
        merged = (Formatter(fmt, image_width=run.width, seen=_seen(run), labels=run.categories) if ctx.rank == 0
                  else None)
        failed = ctx.finish(failed, out_dir, run.inputs, merged)
        if merged:
            merged.close()
    if out_dir and ctx.rank == 0 and fmt in TABLE_FILES:
        _write_table_file(out_dir, run.inputs, fmt, run.categories)
    page_failed = False
    if out_dir and ctx.rank == 0:
        try:
            write_gallery(out_dir, run.inputs)
        except OSError as exc:  # the results are all in the journal: say so, exit 1
            click.echo(f"camloc: error: {out_dir / 'index.html'}: cannot write the gallery ({exc.strerror or exc}); "
                       f"every result is in {out_dir / pipeline.JOURNAL}", err=True)
            page_failed = True
    if run.truth is not None and ctx.rank == 0:
        page_failed |= not _report_quality(run, s.output.metadata)
    if failed:
        if ctx.rank == 0:
            what = "inputs" if run.found.problems else "images"
            click.echo(f"camloc: {failed} of {total} {what} failed", err=True)
        raise click.exceptions.Exit(1)
    if page_failed:
        raise click.exceptions.Exit(1)


def _report_quality(run: _Run, metadata: str) -> bool:
    """``--metadata``: the boxes' precision and recall on stderr, and in ``--out`` as JSON and a picture.

    Returns False when the files could not be written (said in one line; the report is on stderr).
    """
    from ..batch.pipeline import JOURNAL, in_order
    from ..eval.pseudoboxes import pseudo_box_quality
    from ..utils.atomic import atomic_write_text
    from ..viz.pseudoboxes import save_quality_figure

    records = in_order(run.inputs, [run.out_dir / JOURNAL]) if run.out_dir else run.collected
    quality = pseudo_box_quality(records, run.truth, metadata)
    click.echo("\n".join(quality.lines()), err=True)
    if run.out_dir is None:
        return True
    try:
        atomic_write_text(run.out_dir / QUALITY, json.dumps(quality.to_dict(), indent=1) + "\n")
        save_quality_figure(quality, run.out_dir)
    except OSError as exc:
        click.echo(f"camloc: error: {run.out_dir / QUALITY}: cannot write the boxes' quality ({exc.strerror or exc})",
                   err=True)
        return False
    return True


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _seen(run: _Run) -> str:
    """What the model sees of each image, in words (the table's first line)."""
    from ..data.imaging import region_text

    pre = run.localizer.preprocess
    return region_text(pre.mode, pre.input_size, pre.resize_size)


def _close_quietly(writer) -> None:
    try:
        writer.close()
    except CamlocError:
        pass


def _manifest(model, checkpoint, num_classes, nwc, standard, all_regions, resize, calibration, class_index,
              topk, method="cam", preprocess=None, multilabel=None) -> dict:
    """What made the results in an --out folder: compared when a run is resumed there.

    ``preprocess``: the preprocessing as :meth:`camloc.data.imaging.Preprocess.to_dict` gives it (which
    region of each image the model saw). ``multilabel``: the multi-label score threshold and most classes an
    image (None: single-label).
    """
    from dataclasses import asdict, is_dataclass
    from importlib.metadata import version

    from ..batch.pipeline import file_digest

    return {
        "camloc": version("camloc"),
        "model": model,
        "checkpoint": checkpoint,
        "checkpoint_sha256": file_digest(checkpoint) if checkpoint else None,
        "num_classes": num_classes,
        "nwc": nwc,
        "standard": asdict(standard) if is_dataclass(standard) else repr(standard),
        "all_regions": all_regions,
        "resize": resize,
        "calibration": calibration,
        "calibration_sha256": file_digest(calibration) if calibration else None,
        "class": class_index,
        "topk": topk,
        "method": method,
        "preprocess": preprocess,
        "multilabel": multilabel,
    }


def _check_options(s: LocalizeSettings, world: int) -> None:
    """Options that contradict each other: one line and exit 2, before any work."""
    class_index, topk, save_maps, resume, out = (s.boxes.class_index, s.boxes.topk, s.output.save_maps,
                                                 s.output.resume, s.output.out)
    multilabel = s.boxes.score_threshold is not None
    problems = [
        (class_index is not None and topk is not None, "give --class or --topk, not both"),
        (multilabel and (class_index is not None or topk is not None),
         "--multilabel localizes every class above --score-threshold: leave out --class and --topk"),
        (not multilabel and bool(typed("score_threshold", "max_classes")),
         f"{' and '.join(typed('score_threshold', 'max_classes'))} needs --multilabel"),
        (multilabel and not 0.0 <= s.boxes.score_threshold < 1.0,
         f"--score-threshold {s.boxes.score_threshold}: give a sigmoid score in [0, 1) for the classes to exceed"),
        (multilabel and bool(s.model.onnx), "--onnx files score classes by softmax: --multilabel needs the torch "
                                            "model (give --model or --checkpoint instead of --onnx)"),
        (not out and (save_maps or resume), needs_out(save_maps=save_maps, resume=resume)),
        (world > 1 and not out, "under torchrun give --out DIR: each rank writes its shard there"),
    ]
    if s.model.onnx:
        fixed = typed("model_name", "checkpoint", "num_classes", "method", "nwc", "standard", "theta", "percentile",
                      "resize", "calibration", "class_index")
        problems.append((bool(fixed), f"--onnx FILE carries its model and settings: leave out {', '.join(fixed)} "
                                      "(export again with camloc export to change them)"))
    for bad, message in problems:
        if bad:
            raise fail_usage(ValueError(message))


def _write_table_file(out_dir: Path, paths: list[str], fmt: str, categories: list[str] | None) -> None:
    """The ``--format`` file of :data:`TABLE_FILES` from the journal, in input order, atomically."""
    from ..batch.formats import write_records
    from ..batch.pipeline import JOURNAL, in_order
    from ..utils.atomic import atomic_write_text

    buf = io.StringIO()
    write_records(in_order(paths, [out_dir / JOURNAL]), fmt, buf, labels=categories)
    atomic_write_text(out_dir / TABLE_FILES[fmt], buf.getvalue())
