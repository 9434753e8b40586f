"""Options shared by several subcommands, each declared once, and the one way a command fails.

Nothing here imports torch: ``camloc CMD --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from ..cam.names import METHOD_NAMES
from ..utils.defaults import DEFAULT_MODEL, STANDARDS


def fail_usage(exc: Exception) -> click.exceptions.Exit:
    """Print ``camloc: error: ...`` (one line) and return the exit with code 2 to raise."""
    click.echo(f"camloc: error: {exc}", err=True)
    return click.exceptions.Exit(2)


def needs_out(**given: bool) -> str | None:
    """The complaint about options given without ``--out``, naming only those given; None when none was.

    Example:
        >>> needs_out(save_maps=False, resume=True)
        '--resume needs --out DIR'
        >>> needs_out(save_maps=True, plots=True)
        '--save-maps and --plots need --out DIR'
    """
    named = [f"--{name.replace('_', '-')}" for name, on in given.items() if on]
    if not named:
        return None
    return f"{' and '.join(named)} {'needs' if len(named) == 1 else 'need'} --out DIR"


def _stack(*decorators: Callable) -> Callable:
    def apply(f: Callable) -> Callable:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


model_option = click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True,
                            help="Registered model name.")
checkpoint_option = click.option("--checkpoint", type=click.Path(dir_okay=False),
                                 help="Local weights (loaded with weights_only=True).")
num_classes_option = click.option("--num-classes", type=int,
                                  help="Classes of the checkpoint's classifier, when not the model's default.")
#: ``--model``, ``--checkpoint``, ``--num-classes``: which network, with which weights.
model_options = _stack(model_option, checkpoint_option, num_classes_option)
device_option = click.option("--device", help="Device for the model, e.g. cuda or cpu [default: cuda if available].")
quiet_option = click.option("--quiet", is_flag=True, help="No progress bar.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
workers_option = click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
                              help="Image decoding worker processes (0: decode in the main process).")
nwc_option = click.option("--nwc/--no-nwc", default=True, show_default=True,
                          help="Negative weight clamping in the map.")
cam_class_option = click.option(
    "--cam-class", type=click.Choice(["gt", "top1"]), default="gt", show_default=True,
    help="Map the ground-truth class, or the top-1 prediction (for labels that are not the model's classes).")
metadata_option = click.option("--metadata", required=True, type=click.Path(file_okay=False, exists=True),
                               help="Metadata folder (wsolevaluation layout).")
images_option = click.option("--images", type=click.Path(file_okay=False, exists=True),
                             help="Image root [default: the metadata folder].")
masks_option = click.option("--masks", "masks_root", type=click.Path(file_okay=False, exists=True),
                            help="Mask root [default: the image root, which is the metadata folder unless --images "
                                 "says otherwise].")
METHOD_HELP = ("cam: the paper's class activation map (exact, or the head's gradient map); gradcam, gradcam++, "
               "xgradcam, layercam, scorecam: the baselines as pytorch-grad-cam defines them, on the same feature "
               "layer; pc1 (also eigencam): the feature map's first principal component, signed by the class's "
               "map; bagcams: BagCAMs, as its authors' code computes it. NWC applies to cam, gradcam, gradcam++ "
               "and xgradcam; PaS to all. scorecam runs the whole network once per feature channel and image "
               "(slow).")


def method_option(multiple: bool = False, default: str | None = "cam") -> Callable:
    """``--method``: which map (a click.Choice of :data:`~camloc.cam.names.METHOD_NAMES`); ``multiple`` repeats it."""
    if multiple:
        return click.option("--method", "methods", type=click.Choice(METHOD_NAMES), multiple=True,
                            help="Map method; repeat to compare several in one run (rows METHOD/VARIANT) "
                                 f"[default: cam]. {METHOD_HELP}")
    shown = f" [default: {default}]" if default else " [default: cam, or the calibration's method]"
    return click.option("--method", type=click.Choice(METHOD_NAMES), default=default, show_default=False,
                        help=f"Map method{shown}. {METHOD_HELP}")


interval_option = click.option("--interval", type=float, default=0.001, show_default=True,
                               help="Tau step of the wsolevaluation sweep.")


#: Images per forward pass, the same default for every command that runs a model.
BATCH_SIZE = 32


def threshold_options(standard_help: str) -> Callable:
    """``--standard``, ``--theta``, ``--percentile``: the threshold rule, ``standard_help`` saying where it applies."""
    return _stack(
        click.option("--standard", type=click.Choice(STANDARDS), default="percentile", show_default=True,
                     help=standard_help),
        click.option("--theta", type=float, help="Threshold factor, with percentile or max only "
                     "[default: 0.35 with percentile, 0.2 with max]."),
        click.option("--percentile", type=float, default=90.0, show_default=True,
                     help="Percentile for PaS (percentile only)."),
    )


def resize_option(more: str = "") -> Callable:
    """``--resize full|crop``: what of the image the model sees, ``more`` appended to the help."""
    return click.option("--resize", type=click.Choice(["full", "crop"]),
                        help="Squash the whole image to the input size (the default), or the model's own resize + "
                             f"center crop{more}.")


def batch_size_option(default: int = BATCH_SIZE) -> Callable:
    """``--batch-size``: at least 1, :data:`BATCH_SIZE` unless a command has a reason for another."""
    return click.option("--batch-size", type=click.IntRange(min=1), default=default, show_default=True,
                        help="Images per forward pass.")


def model_given() -> bool:
    """Whether ``--model`` was typed (not its default): a camloc checkpoint names its own model."""
    ctx = click.get_current_context(silent=True)
    return ctx is None or ctx.get_parameter_source("model_name") not in (click.core.ParameterSource.DEFAULT, None)


def typed(*names: str) -> list[str]:
    """The options among the parameters ``names`` that were typed (or set in the environment), as their flags.

    A flag with an opposite names both: ``--nwc/--no-nwc``.

    Outside a click command (no context), none.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return []
    params = {p.name: p for p in ctx.command.params}
    return ["/".join(params[n].opts[:1] + params[n].secondary_opts[:1]) for n in names if n in params
            and ctx.get_parameter_source(n) not in (click.core.ParameterSource.DEFAULT, None)]


def load_model_for(model_name: str, checkpoint: str | None, num_classes: int | None, device: str | None):
    """The model the model options name, on the device asked for (default: cuda if available).

    The device is checked before any weights are read; with ``--checkpoint`` and no ``--model``, a
    camloc checkpoint's own model is used, and a ``--model`` that contradicts it is refused.
    """
    from ..models.registry import load_model
    from ..utils.device import default_device

    where = default_device(device)
    name = model_name if (checkpoint is None or model_given()) else None
    return load_model(name, checkpoint=checkpoint, num_classes=num_classes).to(where)
