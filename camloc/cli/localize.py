"""``camloc localize``: boxes for images, folders and lists, streamed, resumable, sharded under torchrun."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import click

from ..utils.defaults import STANDARDS
from ..utils.errors import CamlocError
from .options import (
    batch_size_option,
    device_option,
    fail_usage,
    load_model_for,
    method_option,
    model_given,
    model_options,
    nwc_option,
    quiet_option,
    workers_option,
)


@click.command("localize")
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option("--class", "class_index", type=int, help="Localize this class instead of the top-1 prediction.")
@click.option("--topk", type=int, help="Localize each image's top-k predicted classes.")
@method_option(default=None)
@nwc_option
@click.option("--standard", type=click.Choice(STANDARDS), default="percentile", show_default=True,
              help="Threshold against a percentile of the map (PaS), its maximum (vanilla CAM), or each map's own "
                   "automatic threshold (otsu, li, triangle, yen: no theta).")
@click.option("--theta", type=float,
              help="Threshold factor, with percentile or max only [default: 0.35 with percentile, 0.2 with max].")
@click.option("--percentile", type=float, default=90.0, show_default=True, help="Percentile for PaS (percentile only).")
@click.option("--all-regions", is_flag=True, help="Report every region's box, not only the largest.")
@click.option("--resize", type=click.Choice(["full", "crop"]),
              help="Squash the whole image to the input size, or resize + center crop [default: the model's own].")
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
def command(images, model_name, checkpoint, num_classes, class_index, topk, method, nwc, standard, theta, percentile,
            all_regions, resize, batch_size, workers, device, calibration, fmt, as_json, out, save_maps, no_overlays,
            resume, quiet) -> None:
    """Localize the predicted class in each IMAGE (files, folders, @list.txt) and print its box in original pixels.

    Under torchrun the images are sharded across ranks; rank 0 merges the results in input order.
    Exit code 0: all fine; 1: some images failed (each reported, the rest done); 2: usage error.
    """
    from ..api import Localizer, resolve_method
    from ..batch import pipeline
    from ..batch.distributed import Context
    from ..cam.boxes import make_standard
    from ..data.imaging import max_pixels_limit
    from ..data.inputs import find_inputs
    from ..models.config import model_config

    fmt = "jsonl" if as_json else fmt or ("table" if _stdout_is_terminal() else "jsonl")
    ctx = Context.from_env()
    _check_options(class_index, topk, save_maps, resume, out, ctx.world)
    out_dir = Path(out) if out else None
    journal = ctx.journal(out_dir) if out_dir else None
    if calibration and Path(calibration).is_dir():
        from ..eval.calibrate import FILE

        calibration = str(Path(calibration) / FILE)
    try:
        max_pixels_limit()  # a bad CAMLOC_MAX_PIXELS is one line now, not an error per image
        standard = make_standard(standard, theta, percentile)
        method = resolve_method(method, calibration)
        found = find_inputs(images)
        if not found.paths:  # nothing to do at all: one line per input that yielded nothing
            for where, reason in found.problems[:-1]:
                click.echo(f"camloc: error: {where}: {reason}", err=True)
            raise ValueError(": ".join(found.problems[-1]) if found.problems else "no images given")
        skip = frozenset()
        if out_dir:
            manifest = _manifest(model_name if (model_given() or not checkpoint) else None, checkpoint, num_classes,
                                 nwc, standard, all_regions, resize, calibration, class_index, topk, method)
            skip = pipeline.prepare_output(out_dir, manifest, resume, journal, ctx.rank)
        device = ctx.setup(device)
        model = load_model_for(model_name, checkpoint, num_classes, device)
        loc = Localizer(model, nwc=nwc, standard=standard, all_regions=all_regions, resize=resize,
                        calibration=calibration, method=method)
        writer = pipeline.JournalWriter(journal)
    except (CamlocError, ValueError) as exc:
        raise fail_usage(exc) from None

    paths = found.paths
    inputs = [w for w, _ in found.problems] + paths  # the rows' order: problem inputs are reported first
    width = min(max((len(p) for p in inputs), default=5), 48)
    formatter = pipeline.Formatter(fmt, image_width=width) if ctx.world == 1 else None
    opts = pipeline.RunOptions(batch_size=batch_size, workers=workers, classes=class_index, topk=topk, out=out,
                               overlays=not no_overlays, save_maps=save_maps, skip=skip, progress=not quiet,
                               report_errors=not (fmt == "table" and _stdout_is_terminal()),
                               model=model_config(model).name or model_name)

    def emit(d: dict) -> None:
        writer(d)
        if formatter:
            formatter(d)

    try:
        failed = 0
        if ctx.rank == 0:  # inputs that yielded no image: reported once, like a failed image
            for where, reason in found.problems:
                failed += 1
                if opts.report_errors:
                    click.echo(f"camloc: error: {where}: {reason}", err=True)
                emit({"image": where, "error": reason})
        _, failed_images = pipeline.run(loc, paths, opts, emit, ctx.rank, ctx.world)
        failed += failed_images
        writer.close()
    except KeyboardInterrupt:
        _close_quietly(writer)
        where = f" in {journal}" if journal else ""
        click.echo(f"camloc: interrupted; every finished result is kept{where} (rerun with --resume)", err=True)
        raise click.exceptions.Exit(130) from None
    except CamlocError as exc:
        _close_quietly(writer)
        raise fail_usage(exc) from None
    if formatter:
        formatter.close()
    total = len(inputs)
    if ctx.world > 1:
        merged = pipeline.Formatter(fmt, image_width=width) if ctx.rank == 0 else None
        failed = ctx.finish(failed, out_dir, inputs, merged)
        if merged:
            merged.close()
    if out_dir and ctx.rank == 0 and fmt in ("csv", "coco"):
        _write_table_file(out_dir, inputs, fmt)
    page_failed = False
    if out_dir and ctx.rank == 0:
        try:
            pipeline.write_gallery(out_dir, inputs)
        except OSError as exc:  # the results are all in the journal: say so, exit 1
            click.echo(f"camloc: error: {out_dir / 'index.html'}: cannot write the gallery ({exc.strerror or exc}); "
                       f"every result is in {out_dir / pipeline.JOURNAL}", err=True)
            page_failed = True
    if failed:
        if ctx.rank == 0:
            what = "inputs" if found.problems else "images"
            click.echo(f"camloc: {failed} of {total} {what} failed", err=True)
        raise click.exceptions.Exit(1)
    if page_failed:
        raise click.exceptions.Exit(1)


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _close_quietly(writer) -> None:
    try:
        writer.close()
    except CamlocError:
        pass


def _manifest(model, checkpoint, num_classes, nwc, standard, all_regions, resize, calibration, class_index,
              topk, method="cam") -> dict:
    """What made the results in an --out folder: compared when a run is resumed there."""
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
    }


def _check_options(class_index, topk, save_maps, resume, out, world) -> None:
    """Options that contradict each other: one line and exit 2, before any work."""
    problems = [
        (class_index is not None and topk is not None, "give --class or --topk, not both"),
        ((save_maps or resume) and not out, "--save-maps and --resume need --out DIR"),
        (world > 1 and not out, "under torchrun give --out DIR: each rank writes its shard there"),
    ]
    for bad, message in problems:
        if bad:
            raise fail_usage(ValueError(message))


def _write_table_file(out_dir: Path, paths: list[str], fmt: str) -> None:
    """``results.csv`` or ``results.coco.json`` from the journal, in input order, atomically."""
    from ..batch.pipeline import JOURNAL, in_order, write_records
    from ..utils.atomic import atomic_write_text

    buf = io.StringIO()
    write_records(in_order(paths, [out_dir / JOURNAL]), fmt, buf)
    atomic_write_text(out_dir / ("results.csv" if fmt == "csv" else "results.coco.json"), buf.getvalue())
