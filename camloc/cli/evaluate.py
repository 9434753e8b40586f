"""``camloc evaluate``: localization metrics on a WSOL split under one protocol."""

from __future__ import annotations

import json
import os

import click

from ..errors import CamlocError
from .options import (batch_size_option, cam_class_option, device_option, fail_usage, images_option, interval_option,
                      json_option, load_model_for, masks_option, metadata_option, model_options, quiet_option)


@click.command("evaluate")
@metadata_option
@images_option
@masks_option
@model_options
@click.option("--protocol", type=click.Choice(["rethinking", "wsolevaluation"]), default="rethinking", show_default=True)
@click.option("--variants", default="cam,nwc,pas,nwc+pas", show_default=True, help="Comma-separated: cam, nwc, pas, nwc+pas.")
@cam_class_option
@interval_option
@batch_size_option(32)
@device_option
@click.option("--limit", type=int, help="Evaluate the first N images only.")
@click.option("--save-maps", type=click.Path(file_okay=False), help="Write score maps to DIR/<variant>/<image_id>.npy.")
@click.option("--plots", type=click.Path(file_okay=False), help="Write accuracy-vs-threshold and PR-curve PNGs here.")
@click.option("--calibration", type=click.Path(dir_okay=False), help="Add a 'calibrated' variant from camloc calibrate.")
@json_option
@quiet_option
def command(metadata, images, masks_root, model_name, checkpoint, num_classes, protocol, variants, cam_class, interval,
            batch_size, device, limit, save_maps, plots, calibration, as_json, quiet) -> None:
    """Evaluate localization on a WSOL split under one protocol, every variant from one forward pass."""
    from ..data.metadata import read_dataset
    from ..eval.evaluate import evaluate
    from ..eval.protocols import Settings

    try:
        names = tuple(v.strip() for v in variants.split(",") if v.strip())
        calib = _calibration(calibration)
        if calib is not None and "calibrated" not in names:
            names = names + ("calibrated",)
        settings = Settings(protocol=protocol, variants=names, cam_class=cam_class, interval=interval, calibration=calib)
        samples = read_dataset(metadata)[:limit] if limit else read_dataset(metadata)
        model = load_model_for(model_name, checkpoint, num_classes, device)
        result = evaluate(model, samples, images or metadata, settings, masks=masks_root, batch_size=batch_size,
                          save_maps=save_maps, progress=not quiet)
    except CamlocError as exc:
        raise fail_usage(exc) from None
    result.dataset.update(metadata=str(metadata), model=model_name)
    if plots:
        from ..eval.plots import save_plots

        for path in save_plots(result, plots):
            click.echo(f"wrote {path}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        print_table(result)


def _calibration(path):
    """The calibration file as the dict a result records, or None."""
    if not path:
        return None
    from dataclasses import asdict

    from ..eval.calibrate import Calibration

    calib = asdict(Calibration.load(path))
    calib["file"] = str(path)
    return calib


def _metric(v) -> str:
    return "-" if v is None else f"{v:6.2f}"


def print_table(result) -> None:
    """An evaluation result as a readable table: settings first, then a row per variant."""
    rows = result.metrics
    keys = [k for k in ("top1_cls", "top5_cls", "gt_known_loc", "top1_loc", "maxboxacc", "maxboxacc_v2", "pxap")
            if any(k in r for r in rows.values())]
    s = result.settings
    source = f"score maps {result.dataset['scoremaps']}" if "scoremaps" in result.dataset else f"CAM class: {s.cam_class}"
    click.echo(f"protocol {s.protocol}; {result.dataset['n']} images; {source}"
               + (f"; thresholds: theta {s.theta_max} x max, PaS {s.theta_pas} x p{s.percentile:g}"
                  if s.protocol == "rethinking" else f"; tau interval {s.interval}"))
    if s.calibration:
        c = s.calibration
        same = " (the SAME split: an optimistic number)" if os.path.abspath(c["metadata"]) == os.path.abspath(
            result.dataset.get("metadata", "")) else ""
        click.echo(f"calibrated variant: theta {c['theta']} x p{c['percentile']:g}, NWC {'on' if c['nwc'] else 'off'}; "
                   f"calibrated on {c['metadata']}, evaluated on {result.dataset.get('metadata')}{same}")
    click.echo("variant\t" + "\t".join(keys))
    for name, row in rows.items():
        click.echo(name + "\t" + "\t".join(_metric(row.get(k)) for k in keys))
