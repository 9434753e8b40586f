"""``camloc diagnose``: the paper's mechanism measured on a labelled split (:mod:`camloc.eval.diagnosis`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ..utils.errors import CamlocError
from .evaluate import exit_for_failures
from .options import (
    batch_size_option,
    cam_class_option,
    device_option,
    fail_usage,
    images_option,
    json_option,
    load_model_for,
    metadata_option,
    model_options,
    quiet_option,
    workers_option,
)

if TYPE_CHECKING:
    from pathlib import Path

    from ..eval.diagnosis import Diagnosis


@click.command("diagnose")
@metadata_option
@images_option
@model_options
@cam_class_option
@click.option("--limit", type=click.IntRange(min=1), help="Diagnose the first N images only.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Output folder: diagnose.json (the summary and every image's statistics), area_weight.png (the "
                   "paper's Fig. 2: active area against class weight, a point per channel) and ioa.png (Fig. 3b: "
                   "histograms of the positive and negative maps' IoA with the ground truth, both readings).")
@batch_size_option()
@workers_option
@device_option
@json_option
@quiet_option
def command(metadata, images, model_name, checkpoint, num_classes, cam_class, limit, out, batch_size, workers, device,
            as_json, quiet) -> None:
    """Measure why CAM localizes as it does: how the head weighs its channels, and where they fire.

    On each image's class (--cam-class), with the model's own preprocessing: area_weight_rho, the
    rank correlation between a channel's active area and its class weight (the paper's Fig. 2;
    negative means large-area channels get small weights); ioa_positive and ioa_negative, how much
    of the ground truth the maps of the positive-weight and of the negative-weight channels cover
    (Fig. 3b), and the same over each map's own foreground; negative_weight_share; and the median
    box-to-ground-truth area ratio of each variant. Needs a GAP or TAP head (an exact CAM with one
    weight per channel). With --json the last line is one JSON object. Unreadable images are
    printed on stderr and left out (exit code 1).
    """
    from pathlib import Path

    from ..data.metadata import read_dataset
    from ..eval.diagnosis import diagnose

    try:
        samples = read_dataset(metadata)
        samples = samples[:limit] if limit else samples
        model = load_model_for(model_name, checkpoint, num_classes, device)
        result = diagnose(model, samples, images or metadata, cam_class=cam_class, batch_size=batch_size,
                          workers=workers, progress=not quiet)
    except CamlocError as exc:
        raise fail_usage(exc) from None
    result.summary.update(metadata=str(metadata), checkpoint=checkpoint)
    if out:
        save(result, Path(out))
    for f in result.failed:
        click.echo(f"camloc: failed: {f['image_id']}: {f['reason']}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        print_summary(result)
    exit_for_failures(len(result.failed), len(result.failed) + result.summary["images"],
                      "each left out of the statistics")


def save(result: Diagnosis, out: Path) -> None:
    """``OUT/diagnose.json`` (atomically) and the two figures; each path on stderr."""
    from ..utils.atomic import atomic_write_text
    from ..viz.figures import save_diagnosis_plots

    try:
        atomic_write_text(out / "diagnose.json", json.dumps(result.to_dict(with_images=True)) + "\n")
        click.echo(f"wrote {out / 'diagnose.json'}", err=True)
        for path in save_diagnosis_plots(result, out):
            click.echo(f"wrote {path}", err=True)
    except OSError as exc:
        raise fail_usage(ValueError(f"--out {out}: cannot write there ({exc.strerror or exc}); choose a folder you "
                                    "can write to")) from None


def _value(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def print_summary(result: Diagnosis) -> None:
    """The statistics as a short readable table."""
    s = result.summary
    click.echo(f"{s['model']}: {s['images']} images, {len(result.failed)} failed; CAM class {s['cam_class']}; head "
               f"{s['head']} on {s['feature_layer']}")
    counts = s["counts"]
    lines = [
        ("area_weight_rho", "rank corr. of active area and class weight (Fig. 2)"),
        ("ioa_positive", "GT covered by the positive-weight map, |fg & GT| / |GT| (Fig. 3b)"),
        ("ioa_negative", "GT covered by the negative-weight map, |fg & GT| / |GT| (Fig. 3b)"),
        ("ioa_positive_by_foreground", "positive-weight map on the GT, |fg & GT| / |fg|"),
        ("ioa_negative_by_foreground", "negative-weight map on the GT, |fg & GT| / |fg|"),
        ("negative_weight_share", "share of the class's weights that are negative"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, text in lines:
        click.echo(f"{key:<{width}}  {_value(s[key]):>7}  {text} ({counts[key]} images)")
    ratios = s["box_gt_area_ratio"]
    click.echo("box_gt_area_ratio (median box / GT area): "
               + ", ".join(f"{name} {_value(v)}" for name, v in ratios.items()))
