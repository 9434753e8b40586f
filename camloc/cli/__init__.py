"""The ``camloc`` command line: one module per subcommand, shared options declared once (:mod:`.options`).

Subcommands are imported when they run (or when their help is asked for), and none of them imports
torch before it runs, so ``camloc --help`` answers at once.

Exit codes: 0 all went well, 1 some image failed (the others still got results), 2 usage errors
(an unknown model, a bad option, a checkpoint that does not fit), 130 after Ctrl-C, 141 when the reader of
standard output closed it early (``camloc localize photos/ | head``): one line on stderr says so, as a shell
says for any command a closed pipe stops.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

#: subcommand -> module in this package that defines a click command of the same name.
COMMANDS = {
    "localize": "localize",
    "export": "export",
    "models": "models",
    "evaluate": "evaluate",
    "score": "score",
    "calibrate": "calibrate",
    "diagnose": "diagnose",
    "finetune": "finetune",
    "train": "train",
    "synthetic": "synthetic",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The subcommand names, in the order ``camloc --help`` lists them."""
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str):
        """The click command ``name`` (its module imported now), or None for an unknown name."""
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__name__}.{COMMANDS[name]}")
        return module.command

    def invoke(self, ctx: click.Context):
        """Run the subcommand; a closed standard output ends it with one line and exit 141, not a silent 1."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _stdout_closed()


def _stdout_closed() -> None:
    """Stop after the reader of stdout went away: nothing more is written there, one line on stderr."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
    os.close(devnull)
    click.echo("camloc: standard output was closed by its reader (as `| head` does); stopped there", err=True)
    raise click.exceptions.Exit(141)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="camloc")
def main() -> None:
    """camloc: object boxes from any image classifier, by class activation maps."""


