"""``camloc score``: wsolevaluation's metrics for score maps saved by any method."""

from __future__ import annotations

import json

import click

from ..errors import CamlocError
from .evaluate import print_table
from .options import fail_usage, interval_option, json_option, masks_option, metadata_option, quiet_option


@click.command("score")
@metadata_option
@click.option("--scoremaps", required=True, type=click.Path(file_okay=False, exists=True),
              help="Folder of <image_id>.npy score maps (224 x 224, values in [0, 1]).")
@masks_option
@interval_option
@json_option
@quiet_option
def command(metadata, scoremaps, masks_root, interval, as_json, quiet) -> None:
    """Score saved maps of any WSOL method with MaxBoxAcc, MaxBoxAccV2 and PxAP (wsolevaluation)."""
    from ..data.metadata import read_dataset
    from ..eval.evaluate import EvaluationResult, score_maps
    from ..eval.protocols import Settings

    try:
        settings = Settings(protocol="wsolevaluation", variants=("cam",), interval=interval, cam_class="top1")
        samples = read_dataset(metadata)
        metrics, curves = score_maps(samples, scoremaps, settings, masks_root or metadata, progress=not quiet)
    except CamlocError as exc:
        raise fail_usage(exc) from None
    result = EvaluationResult(settings, {"metadata": str(metadata), "scoremaps": str(scoremaps), "n": len(samples)},
                              {"maps": metrics}, {"maps": curves})
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        print_table(result)
