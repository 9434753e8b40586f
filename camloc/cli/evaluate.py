"""``camloc evaluate``: localization metrics on a WSOL split under one protocol.

Also the options and the reporting that ``score`` and ``calibrate`` share with it: ``--metrics``,
``--box-convention``, failed images on stderr (exit code 1) and warnings on stderr.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..cam.names import nwc_applies
from ..utils.defaults import EVALUATION_PICTURES, FAITHFULNESS_METRICS, REPORTED_METRICS
from ..utils.errors import CamlocError
from .options import (
    batch_size_option,
    cam_class_option,
    device_option,
    fail_usage,
    images_option,
    interval_option,
    json_option,
    load_model_for,
    masks_option,
    metadata_option,
    method_option,
    model_options,
    needs_out,
    quiet_option,
    workers_option,
)

if TYPE_CHECKING:
    from ..eval.evaluation import EvaluationResult
    from ..eval.per_class import PerClassResult

DEFAULT_METRICS = ",".join(REPORTED_METRICS)

metrics_option = click.option(
    "--metrics", default=DEFAULT_METRICS, show_default=True,
    help="Comma-separated wsolevaluation metrics, each computed where the split has what it needs: maxboxacc_v2 "
         "(boxes; IoU 30/50/70, all contours) and pxap (masks) are what wsolevaluation reports; maxboxacc (V1: "
         "IoU 50, largest contour) is slower, as OpenCV must measure contour areas wherever a map has several "
         "regions.")
box_convention_option = click.option(
    "--box-convention", type=click.Choice(["wsolevaluation", "authors-cub"]), default="wsolevaluation",
    show_default=True,
    help="Where a ground-truth box ends. wsolevaluation: as the metadata stores it, x1 = x + w, y1 = y + h "
         "(wsolevaluation's numbers); authors-cub: x1 = x + w - 1, y1 = y + h - 1, i.e. the stored x1, y1 less one "
         "pixel, as the paper's authors' CUB loader reads bounding_boxes.txt (the paper's CUB numbers). "
         "Recorded in every result.")


def parse_metrics(text: str) -> tuple[str, ...]:
    """``--metrics`` as a tuple of names (checked by :class:`camloc.eval.protocols.Settings`)."""
    return tuple(m.strip() for m in text.split(",") if m.strip())


@click.command("evaluate")
@metadata_option
@images_option
@masks_option
@model_options
@click.option("--protocol", type=click.Choice(["rethinking", "wsolevaluation"]), default="rethinking",
              show_default=True,
              help="rethinking: the paper's Top-1 Cls, GT-known Loc, Top-1 Loc at fixed thresholds; wsolevaluation: "
                   "MaxBoxAcc(V2) and PxAP over a sweep of thresholds.")
@click.option("--variants", default="cam,nwc,pas,nwc+pas", show_default=True,
              help="Comma-separated: cam, nwc, pas, nwc+pas (the paper's), the automatic thresholds otsu, li, "
                   "triangle, yen and each with nwc+ (nwc+otsu ...), or 'all' for every one of them.")
@method_option(multiple=True)
@cam_class_option
@interval_option
@metrics_option
@box_convention_option
@batch_size_option()
@workers_option
@device_option
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate the first N images only.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Output folder: result.json (metrics, curves, settings, failed images), index.html (a gallery: "
                   "every image with its hit or miss per row, pictures of the first --gallery-images; open it in a "
                   "browser, no server needed), and what --save-maps and --plots ask for.")
@click.option("--gallery-images", type=click.IntRange(min=0), default=EVALUATION_PICTURES, show_default=True,
              help="With --out: pictures in index.html for the first N images (a panel per row: the protocol's "
                   "224 x 224 input, the row's map and box, the ground truth); 0 for none. Every image is listed.")
@click.option("--save-maps", is_flag=True,
              help="With --out: the score maps as DIR/maps/<variant>/<image_id>.npy (camloc score reads them).")
@click.option("--plots", is_flag=True, help="With --out: accuracy-vs-threshold and precision-recall PNGs in DIR.")
@click.option("--faithfulness", is_flag=True,
              help="Add each row's faithfulness metrics, on the same input in the same pass: deletion and insertion "
                   "AUC (RISE: the class probability as the map's top pixels are replaced by zeros / inserted into a "
                   "blurred copy), Average Drop and Increase in Confidence (%, Grad-CAM++; as torch-cam computes "
                   "them). The curves cost 2 forward passes per step and image.")
@click.option("--faithfulness-steps", type=click.IntRange(min=1),
              help="With --faithfulness: steps of the deletion and insertion curves (default one row of the input "
                   "per step, RISE's: 224 steps at 224x224; 28 steps are RISE's coarser 8 rows).")
@click.option("--calibration", type=click.Path(exists=False),
              help="Add a 'calibrated' variant from camloc calibrate (its --out folder or the calibration.json in it).")
@click.option("--multilabel", is_flag=True,
              help="A multi-label split (several IMAGE_ID,CLASS lines per image, box lines with an optional 6th "
                   "field, the box's class): localize each class of each image with that class's map, score it "
                   "against that class's boxes, and report a table per class and the mean over classes (no "
                   "classification metrics; with --out, result.json only).")
@json_option
@quiet_option
def command(metadata, images, masks_root, model_name, checkpoint, num_classes, protocol, variants, methods, cam_class,
            interval, metrics, box_convention, batch_size, workers, device, limit, out, gallery_images, save_maps,
            plots, faithfulness, faithfulness_steps, calibration, multilabel, as_json, quiet) -> None:
    """Evaluate localization on a WSOL split under one protocol, every variant from one forward pass.

    With several --method options, every variant of each method is scored on the same images
    (rows METHOD/VARIANT; the paper's CAM keeps the plain variant names).

    An image that cannot be read is printed on stderr, listed in the JSON's "failed", counted in the
    table, and scored as a miss; the exit code is then 1 (0: all fine, 2: usage error).
    """
    from pathlib import Path

    from ..data.metadata import read_dataset
    from ..eval.evaluation import LabelSpaceWarning, evaluate
    from ..eval.protocols import Settings

    if (save_maps or plots) and not out:
        raise fail_usage(ValueError(needs_out(save_maps=save_maps, plots=plots)))
    if faithfulness_steps is not None and not faithfulness:
        raise fail_usage(ValueError("--faithfulness-steps needs --faithfulness"))
    per_image = [flag for flag, on in (("--save-maps", save_maps), ("--plots", plots), ("--faithfulness", faithfulness))
                 if on]
    if multilabel and per_image:
        raise fail_usage(ValueError(f"{per_image[0]} does not apply to --multilabel (per-class results); leave it out"))
    try:
        names = tuple(v.strip() for v in variants.split(",") if v.strip())
        if "all" in names:
            from ..eval.protocols import VARIANTS

            names = tuple(dict.fromkeys(n for v in names for n in (VARIANTS if v == "all" else (v,))))
        calib = _calibration(calibration)
        if calib is not None and "calibrated" not in names:
            names = names + ("calibrated",)
        settings = Settings(protocol=protocol, variants=names, cam_class=cam_class, interval=interval,
                            calibration=calib, metrics=parse_metrics(metrics), box_convention=box_convention,
                            methods=tuple(dict.fromkeys(methods)) or ("cam",))
        samples = read_dataset(metadata, multilabel=multilabel)[:limit or None]
        model = load_model_for(model_name, checkpoint, num_classes, device)
        if multilabel:
            return _per_class(model, samples, images or metadata, settings, dict(
                masks=masks_root, batch_size=batch_size, progress=not quiet, workers=workers), model_name, metadata,
                checkpoint, out, as_json)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LabelSpaceWarning)  # printed below, in camloc's words
            result = evaluate(model, samples, images or metadata, settings, masks=masks_root, batch_size=batch_size,
                              save_maps=Path(out) / "maps" if save_maps else None, progress=not quiet,
                              workers=workers, per_image=bool(out), views=gallery_images if out else 0,
                              faithfulness=faithfulness, faithfulness_steps=faithfulness_steps)
    except CamlocError as exc:
        raise fail_usage(exc) from None
    from ..models.config import model_config

    # the model evaluated: a checkpoint's own architecture, not the --model default it was not given
    result.dataset.update(metadata=str(metadata), model=model_config(model).name or model_name)
    if checkpoint:
        result.dataset["checkpoint"] = str(checkpoint)
    if out:
        save_result(result, Path(out), plots, gallery_images)
    report(result, as_json)


def save_result(result: EvaluationResult, out: Path, plots: bool, gallery: int | None = None) -> None:
    """Write ``OUT/result.json`` (atomically, curves included) and what goes with it; each path on stderr.

    With ``plots`` the PNGs, and for a result with per-image records ``OUT/index.html`` (``gallery``:
    the pictures asked for).
    """
    from ..utils.atomic import atomic_write_text

    try:
        atomic_write_text(out / "result.json", json.dumps(result.to_dict(with_curves=True)) + "\n")
        click.echo(f"wrote {out / 'result.json'}", err=True)
        if plots:
            from ..viz.figures import save_plots

            for path in save_plots(result, out):
                click.echo(f"wrote {path}", err=True)
        if gallery is not None:
            from ..viz.gallery import write_evaluation

            click.echo(f"wrote {write_evaluation(out, result, gallery)}", err=True)
    except OSError as exc:
        raise fail_usage(ValueError(f"--out {out}: cannot write there ({exc.strerror or exc}); choose a folder you "
                                    "can write to")) from None


def report(result: EvaluationResult | PerClassResult, as_json: bool, table: Callable[[Any], None] | None = None,
           outcome: str = "each scored as a miss") -> None:
    """Print a result on stdout (JSON, or ``table`` of it: :func:`print_table`), its warnings and failures on stderr.

    Exits with code 1 when some image failed (``outcome``: what became of them).
    """
    for message in result.warnings:
        click.echo(f"camloc: warning: {message}", err=True)
    for f in result.failed:
        click.echo(f"camloc: failed: {f['image_id']}: {f['reason']}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        (table or print_table)(result)
    exit_for_failures(len(result.failed), result.dataset["n"], outcome)


def exit_for_failures(failed: int, n: int, outcome: str = "each scored as a miss") -> None:
    """Exit code 1 when some of the ``n`` images failed (each was already printed).

    ``outcome`` says what became of them.
    """
    if failed:
        click.echo(f"camloc: {failed} of {n} images failed, {outcome}", err=True)
        raise click.exceptions.Exit(1)


def _calibration(path: str | None) -> dict | None:
    """The calibration file as the dict a result records, or None."""
    if not path:
        return None
    from dataclasses import asdict

    from ..eval.calibration import Calibration

    calib = asdict(Calibration.load(path))
    calib["file"] = str(path)
    return calib


def _metric(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _input_text(pre: dict) -> str:
    """``; input 224x224 (whole image)`` for a result's recorded preprocessing ('' where none was recorded)."""
    if not pre:
        return ""
    h, w = pre["input_size"]
    return f"; input {h}x{w} ({'whole image' if pre.get('region_mode') == 'full' else 'center crop'})"


def print_table(result: EvaluationResult) -> None:
    """An evaluation result as a readable table: settings first, then a row per variant."""
    rows = result.metrics
    keys = [k for k in ("top1_cls", "top5_cls", "gt_known_loc", "top1_loc", "maxboxacc", "maxboxacc_v2", "pxap",
                        *FAITHFULNESS_METRICS) if any(k in r for r in rows.values())]
    s = result.settings
    source = (f"score maps {result.dataset['scoremaps']}" if "scoremaps" in result.dataset
              else f"CAM class: {s.cam_class}")
    click.echo(f"protocol {s.protocol}; {result.dataset['n']} images, {len(result.failed)} failed; {source}; "
               f"box convention {s.box_convention}" + _input_text(result.preprocess)
               + (f"; methods {', '.join(s.methods)}" if tuple(s.methods) != ("cam",) else "")
               + (f"; thresholds: theta {s.theta_max} x max, PaS {s.theta_pas} x p{s.percentile:g}"
                  if s.protocol == "rethinking" else f"; tau interval {s.interval}"))
    if s.calibration:
        c = s.calibration
        same = " (the SAME split: an optimistic number)" if os.path.abspath(c["metadata"]) == os.path.abspath(
            result.dataset.get("metadata", "")) else ""
        method = f"method {c['method']}, " if c.get("method", "cam") != "cam" else ""
        click.echo(f"calibrated variant: {s.standard('calibrated').label}, {method}NWC {'on' if c['nwc'] else 'off'}; "
                   f"calibrated on {c['metadata']}, evaluated on {result.dataset.get('metadata')}{same}")
    skipped = s.skipped()
    if skipped:
        without = ", ".join(m for m in s.methods if not nwc_applies(m))
        click.echo(f"left out: {', '.join(skipped)} (NWC does not apply to {without}: no signed channel weights to "
                   "clamp)")
    width = max(len("variant"), *(len(name) for name in rows))
    cols = [max(len(k), 6) for k in keys]  # numbers right-aligned under their names
    click.echo("variant".ljust(width) + "".join(f"  {k:>{c}}" for k, c in zip(keys, cols, strict=True)))
    for name, row in rows.items():
        click.echo(name.ljust(width)
                   + "".join(f"  {_metric(row.get(k), 3 if k in FAITHFULNESS_METRICS[:2] else 2):>{c}}"
                             for k, c in zip(keys, cols, strict=True)))


def _per_class(model, samples: list, images: str, settings, options: dict, model_name: str, metadata: str,
               checkpoint: str | None, out: str | None, as_json: bool) -> None:
    """``--multilabel``: evaluate per class, then the result to ``OUT/result.json`` (with ``--out``), stdout, stderr."""
    from ..eval.per_class import evaluate_per_class
    from ..models.config import model_config
    from ..utils.atomic import atomic_write_text

    result = evaluate_per_class(model, samples, images, settings, **options)

    result.dataset.update(metadata=str(metadata), model=model_config(model).name or model_name)
    if checkpoint:
        result.dataset["checkpoint"] = str(checkpoint)
    if out:
        try:
            atomic_write_text(Path(out) / "result.json", json.dumps(result.to_dict()) + "\n")
        except OSError as exc:
            raise fail_usage(ValueError(f"--out {out}: cannot write there ({exc.strerror or exc}); choose a folder "
                                        "you can write to")) from None
        click.echo(f"wrote {Path(out) / 'result.json'}", err=True)
    report(result, as_json, print_per_class, "each scored as a miss for every class it has")


def print_per_class(result: PerClassResult) -> None:
    """A per-class result as tables: per row (variant), a line per class, then the mean over classes."""
    s = result.settings
    click.echo(f"protocol {s.protocol}; {result.dataset['n']} images, {result.dataset['pairs']} (image, class) "
               f"pairs, {len(result.failed)} failed; per class, each with its own map; box convention "
               f"{s.box_convention}")
    keys = [k for k in ("gt_known_loc", "maxboxacc", "maxboxacc_v2", "pxap")
            if any(k in r for r in result.mean.values())]
    cols = [max(len(k), 6) for k in keys]
    for row, mean in result.mean.items():
        click.echo(f"\n{row}")
        click.echo(f"{'class':>8}  {'images':>6}" + "".join(f"  {k:>{c}}" for k, c in zip(keys, cols, strict=True)))
        for cls, entry in result.classes.items():
            values = entry["metrics"].get(row, {})
            click.echo(f"{cls:>8}  {entry['images']:>6}"
                       + "".join(f"  {_metric(values.get(k)):>{c}}" for k, c in zip(keys, cols, strict=True)))
        click.echo(f"{'mean':>8}  {'':>6}"
                   + "".join(f"  {_metric(mean.get(k)):>{c}}" for k, c in zip(keys, cols, strict=True)))
