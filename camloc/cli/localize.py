"""``camloc localize``: boxes for images, folders and lists, streamed, resumable, sharded under torchrun."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import click

from ..errors import CamlocError
from .options import (batch_size_option, device_option, fail_usage, load_model_for, model_options, nwc_option,
                      quiet_option, workers_option)


@click.command("localize")
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option("--class", "class_index", type=int, help="Localize this class instead of the top-1 prediction.")
@click.option("--topk", type=int, help="Localize each image's top-k predicted classes.")
@nwc_option
@click.option("--standard", type=click.Choice(["percentile", "max"]), default="percentile", show_default=True,
              help="Threshold against a percentile of the map (PaS) or its maximum (vanilla CAM).")
@click.option("--theta", type=float, help="Threshold factor [default: 0.35 with percentile, 0.2 with max].")
@click.option("--percentile", type=float, default=90.0, show_default=True, help="Percentile for PaS.")
@click.option("--all-regions", is_flag=True, help="Report every region's box, not only the largest.")
@click.option("--resize", type=click.Choice(["full", "crop"]),
              help="Squash the whole image to the input size, or resize + center crop [default: the model's own].")
@batch_size_option(16)
@workers_option
@device_option
@click.option("--calibration", type=click.Path(dir_okay=False),
              help="theta, percentile and NWC from camloc calibrate (overrides those options).")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv", "coco"]),
              help="Output on stdout [default: table on a terminal, JSON lines otherwise].")
@click.option("--json", "as_json", is_flag=True, help="Same as --format jsonl.")
@click.option("--out", type=click.Path(file_okay=False), help="Write results.jsonl (and csv/coco), overlays and maps here.")
@click.option("--save-maps", is_flag=True, help="With --out: the raw map of each image as .npy.")
@click.option("--no-overlays", is_flag=True, help="With --out: skip the overlay PNGs.")
@click.option("--resume", is_flag=True, help="With --out: skip images already in its results.")
@quiet_option
def command(images, model_name, checkpoint, num_classes, class_index, topk, nwc, standard, theta, percentile,
            all_regions, resize, batch_size, workers, device, calibration, fmt, as_json, out, save_maps, no_overlays,
            resume, quiet) -> None:
    """Localize the predicted class in each IMAGE (files, folders, @list.txt) and print its box in original pixels.

    Under torchrun the images are sharded across ranks; rank 0 merges the results in input order.
    Exit code 0: all fine; 1: some images failed (each reported, the rest done); 2: usage error.
    """
    from .. import pipeline
    from ..api import Localizer
    from ..cam.boxes import make_standard
    from ..data.inputs import expand_inputs
    from ..distributed import Context

    fmt = "jsonl" if as_json else fmt or ("table" if sys.stdout.isatty() else "jsonl")
    ctx = Context.from_env()
    _check_options(batch_size, class_index, topk, save_maps, resume, out, ctx.world)
    try:
        paths = expand_inputs(images)
        device = ctx.setup(device)
        model = load_model_for(model_name, checkpoint, num_classes, device)
        loc = Localizer(model, nwc=nwc, standard=make_standard(standard, theta, percentile), all_regions=all_regions,
                        resize=resize, calibration=calibration)
    except (CamlocError, ValueError) as exc:
        raise fail_usage(exc) from None

    out_dir = Path(out) if out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    journal = ctx.journal(out_dir) if out_dir else None
    formatter = pipeline.Formatter(fmt) if ctx.world == 1 else None
    writer = pipeline.JournalWriter(journal)
    opts = pipeline.RunOptions(batch_size=batch_size, workers=workers, classes=class_index, topk=topk, out=out,
                               overlays=not no_overlays, save_maps=save_maps, resume=resume, progress=not quiet)

    def emit(d: dict) -> None:
        writer(d)
        if formatter:
            formatter(d)

    try:
        _, failed = pipeline.run(loc, paths, opts, emit, ctx.rank, ctx.world)
    except KeyboardInterrupt:
        writer.close()
        where = f" in {journal}" if journal else ""
        click.echo(f"camloc: interrupted; every finished result is kept{where} (rerun with --resume)", err=True)
        raise click.exceptions.Exit(130) from None
    except CamlocError as exc:
        writer.close()
        raise fail_usage(exc) from None
    writer.close()
    if formatter:
        formatter.close()
    if ctx.world > 1:
        merged = pipeline.Formatter(fmt) if ctx.rank == 0 else None
        failed = ctx.finish(failed, out_dir, paths, merged)
        if merged:
            merged.close()
    if out_dir and ctx.rank == 0 and fmt in ("csv", "coco"):
        _write_table_file(out_dir, paths, fmt)
    if failed:
        if ctx.rank == 0:
            click.echo(f"camloc: {failed} of {len(paths)} images failed", err=True)
        raise click.exceptions.Exit(1)


def _check_options(batch_size, class_index, topk, save_maps, resume, out, world) -> None:
    """Options that contradict each other: one line and exit 2, before any work."""
    problems = [
        (batch_size < 1, "--batch-size must be at least 1"),
        (class_index is not None and topk is not None, "give --class or --topk, not both"),
        ((save_maps or resume) and not out, "--save-maps and --resume need --out DIR"),
        (world > 1 and not out, "under torchrun give --out DIR: each rank writes its shard there"),
    ]
    for bad, message in problems:
        if bad:
            raise fail_usage(ValueError(message))


def _write_table_file(out_dir: Path, paths: list[str], fmt: str) -> None:
    """``results.csv`` or ``results.coco.json`` from the journal, in input order, atomically."""
    from ..atomic import atomic_write_text
    from ..pipeline import JOURNAL, in_order, write_records

    buf = io.StringIO()
    write_records(in_order(paths, [out_dir / JOURNAL]), fmt, buf)
    atomic_write_text(out_dir / ("results.csv" if fmt == "csv" else "results.coco.json"), buf.getvalue())
