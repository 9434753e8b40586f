"""``camloc train``: a recipe (or a TOML file), overridden by ``key=value``, run by the training loop."""

from __future__ import annotations

import click

from ..utils.errors import CamlocError
from .options import fail_usage, quiet_option

#: The text of ``camloc train --help``. Click takes it as ``help=`` rather than from the docstring: click's no-rewrap
#: marker ``\b`` is a backspace character, which a docstring (raw, by the docstring rules) could not hold.
HELP = """Train a WSOL model: RECIPE is a shipped recipe name or a .toml file; then key=value overrides.

\b
camloc synthetic synthetic && camloc train smallcnn_synthetic    # a first run: about a minute on a CPU
camloc train vgg16_tap_cub train_metadata=DIR val_metadata=DIR out=runs/vgg16_tap
camloc train wsol_resnet50_cam train_metadata=DIR amp=bf16 batch_size=32 epochs=10
torchrun --nproc-per-node 4 -m camloc train wsol_vgg16_cam train_metadata=DIR

Every key is a field of camloc.train.TrainConfig (--show prints them all). A run writes OUT/last.pt
every epoch (resume=true continues it), OUT/best.pt by the selection rule, OUT/log.csv and plots.
Each epoch prints one line to stderr (epoch, loss, training accuracy, localization, seconds);
every metric goes to OUT/log.csv, and with --json to stdout as one JSON line per epoch.
"""

#: The help of ``--json``, shared with ``camloc finetune``.
JSON_HELP = "Print each epoch's full record (every metric) to stdout as a JSON line."


def epoch_printer(as_json: bool):
    """The ``on_epoch`` callback of ``--json``: each record as a JSON line on stdout (None without it)."""
    if not as_json:
        return None
    import json

    return lambda record: click.echo(json.dumps(record))


@click.command("train", help=HELP, context_settings={"ignore_unknown_options": True})
@click.argument("recipe", required=False)
@click.argument("overrides", nargs=-1)
@click.option("--list", "list_only", is_flag=True, help="List the recipes that ship with camloc and exit.")
@click.option("--show", is_flag=True, help="Print the full configuration (every key and value) and exit.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@quiet_option
def command(recipe, overrides, list_only, show, as_json, quiet) -> None:
    """Run ``camloc train``: train RECIPE with its overrides, or list the recipes or print the configuration."""
    from ..train.config import list_recipes, load_config

    if list_only:
        for name in list_recipes():
            click.echo(name)
        return
    if recipe and "=" in recipe:  # no recipe, only overrides
        recipe, overrides = None, (recipe,) + tuple(overrides)
    try:
        if show:
            import json

            click.echo(json.dumps(load_config(recipe, overrides, check=False).to_dict(), indent=2))
            return
        cfg = load_config(recipe, overrides)
        from ..train.loop import train

        train(cfg, progress=not quiet, log=lambda m: click.echo(m, err=True), on_epoch=epoch_printer(as_json))
    except (CamlocError, ValueError) as exc:
        raise fail_usage(exc) from None
    except KeyboardInterrupt:
        click.echo("camloc: interrupted; the last finished epoch is kept in last.pt (rerun with resume=true)", err=True)
        raise click.exceptions.Exit(130) from None
