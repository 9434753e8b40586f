"""``camloc score``: wsolevaluation's metrics for score maps saved by any method."""

from __future__ import annotations

import click

from ..utils.errors import CamlocError
from .evaluate import box_convention_option, metrics_option, parse_metrics, report
from .options import (
    fail_usage,
    images_option,
    interval_option,
    json_option,
    masks_option,
    metadata_option,
    quiet_option,
)

#: The text of ``camloc score --help``. Click takes it as ``help=`` rather than from the docstring, whose one-line
#: summary (docstring rules) would print as a paragraph of its own.
HELP = """Score saved maps of any WSOL method with MaxBoxAccV2 and PxAP (and MaxBoxAcc on request), as
wsolevaluation does.

A missing or unreadable map is printed on stderr, listed in the JSON's "failed", counted in the
table, and scored as a miss; the exit code is then 1 (0: all fine, 2: usage error). --images is read
only for image sizes that the metadata lacks (an empty image_sizes.txt, as in OpenImages).
"""


@click.command("score", help=HELP)
@metadata_option
@click.option("--scoremaps", required=True, type=click.Path(file_okay=False, exists=True),
              help="Folder of <image_id>.npy score maps (224 x 224, values in [0, 1]).")
@masks_option
@images_option
@interval_option
@metrics_option
@box_convention_option
@json_option
@quiet_option
def command(metadata, scoremaps, masks_root, images, interval, metrics, box_convention, as_json, quiet) -> None:
    """Run ``camloc score``: score saved maps with wsolevaluation's metrics and print the result."""
    from ..data.metadata import read_dataset
    from ..eval.protocols import Settings
    from ..eval.scoring import score_maps

    try:
        settings = Settings(protocol="wsolevaluation", variants=("cam",), interval=interval, cam_class="top1",
                            metrics=parse_metrics(metrics), box_convention=box_convention)
        samples = read_dataset(metadata)
        result = score_maps(samples, scoremaps, settings, masks_root or images or metadata, images=images or metadata,
                            progress=not quiet)
    except CamlocError as exc:
        raise fail_usage(exc) from None
    result.dataset.update(metadata=str(metadata))
    report(result, as_json)
