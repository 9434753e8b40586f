"""``camloc localize``: boxes for images, folders and lists, streamed, resumable, sharded under torchrun."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..utils.errors import CamlocError
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

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Localizer
    from ..batch.distributed import Context
    from ..batch.pipeline import JournalWriter
    from ..data.inputs import Inputs
    from ..runtime import OnnxLocalizer


@click.command("localize")
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option("--onnx", type=click.Path(dir_okay=False),
              help="Localize with this file from camloc export, run by onnxruntime instead of a torch model: the file "
                   "carries the model, preprocessing and threshold settings.")
@click.option("--class", "class_index", type=int, help="Localize this class instead of the top-1 prediction.")
@click.option("--topk", type=int, help="Localize each image's top-k predicted classes.")
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
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv", "coco"]),
              help="Output on stdout [default: table on a terminal, JSON lines otherwise].")
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

    settings = LocalizeSettings.from_options(options)
    ctx = Context.from_env()
    _check_options(settings, ctx.world)
    run = _prepare(settings, ctx)
    failed = _localize_all(run, settings, ctx)
    _finish(run, settings, ctx, failed)


@dataclass(frozen=True)
class ModelSettings:
    """Which network, with which weights, on which device, and which map of it.

    Attributes:
        name: ``--model`` (a registered name; a camloc checkpoint names its own when it is not typed).
        checkpoint: ``--checkpoint``, local weights.
        num_classes: ``--num-classes`` of the checkpoint's classifier.
        method: ``--method``; None: cam, or the calibration's method.
        nwc: ``--nwc/--no-nwc``, negative weight clamping in the map.
        device: ``--device``; None: cuda if available.
        onnx: ``--onnx``, a file of camloc export that replaces the model and its settings.
    """

    name: str
    checkpoint: str | None
    num_classes: int | None
    method: str | None
    nwc: bool
    device: str | None
    onnx: str | None = None


@dataclass(frozen=True)
class BoxSettings:
    """Which classes are localized, and how their maps become boxes.

    Attributes:
        class_index: ``--class``, this class instead of the top-1 prediction.
        topk: ``--topk``, each image's top-k predicted classes.
        standard: ``--standard``, the threshold rule's name.
        theta: ``--theta``, its factor (None: the rule's default).
        percentile: ``--percentile`` of PaS.
        all_regions: ``--all-regions``, every region's box, not only the largest.
        resize: ``--resize`` (``full`` or ``crop``; None: :data:`camloc.utils.defaults.REGION`).
        calibration: ``--calibration``, a calibrate ``--out`` folder or its calibration.json.
    """

    class_index: int | None
    topk: int | None
    standard: str
    theta: float | None
    percentile: float
    all_regions: bool
    resize: str | None
    calibration: str | None


@dataclass(frozen=True)
class OutputSettings:
    """How the images are fed and where the results go.

    Attributes:
        fmt: the format on stdout, resolved (``--format``, ``--json``, or the terminal's default).
        out: ``--out`` folder, or None.
        save_maps: ``--save-maps``, each raw map as .npy in ``out``.
        overlays: not ``--no-overlays``: the overlay PNGs and thumbnails in ``out``.
        resume: ``--resume``, skip the images already in ``out``'s results.
        progress: not ``--quiet``.
        batch_size: ``--batch-size``, images per forward pass.
        workers: ``--workers``, decoding processes.
    """

    fmt: str
    out: str | None
    save_maps: bool
    overlays: bool
    resume: bool
    progress: bool
    batch_size: int
    workers: int


@dataclass(frozen=True)
class LocalizeSettings:
    """Every option of ``camloc localize``, grouped by what it decides."""

    images: tuple[str, ...]
    model: ModelSettings
    boxes: BoxSettings
    output: OutputSettings

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> LocalizeSettings:
        """The settings of :func:`command`'s click parameters (named as click passes them)."""
        o = options
        fmt = "jsonl" if o["as_json"] else o["fmt"] or ("table" if _stdout_is_terminal() else "jsonl")
        return cls(
            images=o["images"],
            model=ModelSettings(name=o["model_name"], checkpoint=o["checkpoint"], num_classes=o["num_classes"],
                                method=o["method"], nwc=o["nwc"], device=o["device"], onnx=o["onnx"]),
            boxes=BoxSettings(class_index=o["class_index"], topk=o["topk"], standard=o["standard"], theta=o["theta"],
                              percentile=o["percentile"], all_regions=o["all_regions"], resize=o["resize"],
                              calibration=o["calibration"]),
            output=OutputSettings(fmt=fmt, out=o["out"], save_maps=o["save_maps"], overlays=not o["no_overlays"],
                                  resume=o["resume"], progress=not o["quiet"], batch_size=o["batch_size"],
                                  workers=o["workers"]),
        )


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


def _prepare(s: LocalizeSettings, ctx: Context) -> _Run:
    """Everything before the first image: the inputs, the ``--out`` folder, the model (exit 2 on a usage error)."""
    from ..api import Localizer, resolve_method
    from ..batch import pipeline
    from ..cam.rules import make_standard
    from ..data.imaging import max_pixels_limit
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
        if out_dir:  # a folder that cannot take the results is one line before the model is loaded
            pipeline.check_output(out_dir, s.output.resume, journal)
        device = ctx.setup(m.device)
        if m.onnx:
            loc, name, manifest = _onnx_localizer(s, device)
        else:
            model = load_model_for(m.name, m.checkpoint, m.num_classes, device)
            loc = Localizer(model, nwc=m.nwc, standard=standard, all_regions=b.all_regions, resize=b.resize,
                            calibration=calibration, method=method)
            name = model_config(model).name or m.name
            # the manifest records the preprocessing (the region seen), so it follows the model's loading
            manifest = _manifest(m.name if (model_given() or not m.checkpoint) else None, m.checkpoint, m.num_classes,
                                 m.nwc, standard, b.all_regions, loc.preprocess.region_mode, calibration, b.class_index,
                                 b.topk, method, loc.preprocess.to_dict())
        skip = (pipeline.prepare_output(out_dir, manifest, s.output.resume, journal, ctx.rank) if out_dir
                else frozenset())
        writer = pipeline.JournalWriter(journal)
    except (CamlocError, ValueError) as exc:
        raise fail_usage(exc) from None
    inputs = [w for w, _ in found.problems] + found.paths  # the rows' order: problem inputs are reported first
    width = min(max((len(p) for p in inputs), default=5), 48)
    return _Run(found, inputs, width, out_dir, journal, loc, writer, skip, name)


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
    formatter = Formatter(o.fmt, image_width=run.width, seen=_seen(run)) if ctx.world == 1 else None
    opts = pipeline.RunOptions(batch_size=o.batch_size, workers=o.workers, classes=s.boxes.class_index,
                               topk=s.boxes.topk, out=o.out, overlays=o.overlays, save_maps=o.save_maps,
                               skip=run.skip, progress=o.progress,
                               report_errors=not (o.fmt == "table" and _stdout_is_terminal()), model=run.model_name,
                               folders=tuple(a for a in s.images if not a.startswith("@") and Path(a).is_dir()))

    def emit(d: dict) -> None:
        run.writer(d)
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

    fmt, out_dir = s.output.fmt, run.out_dir
    total = len(run.inputs)
    if ctx.world > 1:
        merged = Formatter(fmt, image_width=run.width, seen=_seen(run)) if ctx.rank == 0 else None
        failed = ctx.finish(failed, out_dir, run.inputs, merged)
        if merged:
            merged.close()
    if out_dir and ctx.rank == 0 and fmt in ("csv", "coco"):
        _write_table_file(out_dir, run.inputs, fmt)
    page_failed = False
    if out_dir and ctx.rank == 0:
        try:
            pipeline.write_gallery(out_dir, run.inputs)
        except OSError as exc:  # the results are all in the journal: say so, exit 1
            click.echo(f"camloc: error: {out_dir / 'index.html'}: cannot write the gallery ({exc.strerror or exc}); "
                       f"every result is in {out_dir / pipeline.JOURNAL}", err=True)
            page_failed = True
    if failed:
        if ctx.rank == 0:
            what = "inputs" if run.found.problems else "images"
            click.echo(f"camloc: {failed} of {total} {what} failed", err=True)
        raise click.exceptions.Exit(1)
    if page_failed:
        raise click.exceptions.Exit(1)


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
              topk, method="cam", preprocess=None) -> dict:
    """What made the results in an --out folder: compared when a run is resumed there.

    ``preprocess``: the preprocessing as :meth:`camloc.data.imaging.Preprocess.to_dict` gives it (which
    region of each image the model saw).
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
    }


def _check_options(s: LocalizeSettings, world: int) -> None:
    """Options that contradict each other: one line and exit 2, before any work."""
    class_index, topk, save_maps, resume, out = (s.boxes.class_index, s.boxes.topk, s.output.save_maps,
                                                 s.output.resume, s.output.out)
    problems = [
        (class_index is not None and topk is not None, "give --class or --topk, not both"),
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


def _write_table_file(out_dir: Path, paths: list[str], fmt: str) -> None:
    """``results.csv`` or ``results.coco.json`` from the journal, in input order, atomically."""
    from ..batch.formats import write_records
    from ..batch.pipeline import JOURNAL, in_order
    from ..utils.atomic import atomic_write_text

    buf = io.StringIO()
    write_records(in_order(paths, [out_dir / JOURNAL]), fmt, buf)
    atomic_write_text(out_dir / ("results.csv" if fmt == "csv" else "results.coco.json"), buf.getvalue())
