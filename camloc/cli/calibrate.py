"""``camloc calibrate``: theta and percentile (or an automatic rule) chosen on a labelled split.

The choice is saved for later runs.
"""

from __future__ import annotations

import warnings

import click

from ..utils.defaults import ADAPTIVE_RULES
from ..utils.errors import CamlocError
from .evaluate import box_convention_option, exit_for_failures
from .options import (
    batch_size_option,
    cam_class_option,
    device_option,
    fail_usage,
    images_option,
    load_model_for,
    metadata_option,
    method_option,
    model_options,
    nwc_option,
    quiet_option,
    workers_option,
)

#: The text of ``camloc calibrate --help``. Click takes it as ``help=`` rather than from the docstring, whose one-line
#: summary (docstring rules) would print as a paragraph of its own.
HELP = """Pick theta and the percentile that maximise GT-known Loc on a labelled split with boxes
(e.g. train-fullsup, never the test split), and save them. With --rules, automatic thresholds
(Otsu, Li, triangle, Yen) compete with the grid.

An image that cannot be read is printed on stderr, listed in the saved file's "failed" and scored
as a miss; the file is still saved and the exit code is 1 (0: all fine, 2: usage error).
"""


@click.command("calibrate", help=HELP)
@metadata_option
@images_option
@model_options
@method_option()
@nwc_option
@cam_class_option
@box_convention_option
@click.option("--percentiles", default="50,60,70,80,85,90,95,100", show_default=True,
              help="Comma-separated percentiles of the map to try as the standard (100 is the max); theta is "
                   "searched from 0.05 to 0.99 for each.")
@click.option("--rules", default="", show_default=False, metavar="RULE[,RULE...]",
              help=f"Automatic thresholds to try beside the grid: any of {', '.join(ADAPTIVE_RULES)}, or 'all' "
                   "[default: none]; one is saved only where it beats the grid's best, and each one's GT-known Loc "
                   "is printed and saved.")
@batch_size_option()
@workers_option
@device_option
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: the calibration goes to DIR/calibration.json (--calibration takes the folder or "
                   "the file).")
@quiet_option
def command(metadata, images, model_name, checkpoint, num_classes, method, nwc, cam_class, box_convention, percentiles,
            rules, batch_size, workers, device, out, quiet) -> None:
    """Run ``camloc calibrate``: choose theta and the percentile (or a rule) on a labelled split and save them."""
    from pathlib import Path

    from ..data.metadata import read_dataset
    from ..eval.calibration import FILE, calibrate, check_rules
    from ..eval.evaluation import LabelSpaceWarning

    try:
        pcts = [float(p) for p in percentiles.split(",") if p.strip()]
        names = [r.strip() for r in rules.split(",") if r.strip()]
        names = check_rules(ADAPTIVE_RULES if names == ["all"] else names)
        model = load_model_for(model_name, checkpoint, num_classes, device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LabelSpaceWarning)  # printed below, in camloc's words
            best, _ = calibrate(model, read_dataset(metadata), images or metadata, nwc=nwc, cam_class=cam_class,
                                percentiles=pcts, batch_size=batch_size, model_name=model_name, metadata=str(metadata),
                                progress=not quiet, box_convention=box_convention, workers=workers, method=method,
                                rules=names)
        out = Path(out) / FILE
        best.save(out)
    except (CamlocError, ValueError) as exc:
        raise fail_usage(exc) from None
    for message in best.warnings:
        click.echo(f"camloc: warning: {message}", err=True)
    for f in best.failed:
        click.echo(f"camloc: failed: {f['image_id']}: {f['reason']}", err=True)
    for rule, score in best.rule_scores.items():
        click.echo(f"{rule}: GT-known Loc {score:.2f} %", err=True)
    click.echo(f"{best.describe()} ({_method(best.method)}NWC {'on' if best.nwc else 'off'}): "
               "GT-known Loc "
               f"{best.gt_known_loc:.2f} % on {best.n} images, {len(best.failed)} failed, of {metadata} "
               f"(box convention {best.box_convention}); saved to {out}")
    exit_for_failures(len(best.failed), best.n)


def _method(method: str) -> str:
    return "" if method == "cam" else f"method {method}, "
