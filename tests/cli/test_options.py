"""Options agree across subcommands: one meaning per name, a help text for each."""

from __future__ import annotations

import click
import pytest

from camloc.cli import COMMANDS, main
from camloc.cli.options import BATCH_SIZE

#: Subcommands that decode images, so take --workers.
DECODING = ("localize", "evaluate", "calibrate", "finetune")
#: Subcommands whose one output is a single file, which --out names (everywhere else --out is a folder of results).
FILE_OUT = ("export",)


def options(name: str) -> dict[str, click.Option]:
    cmd = main.get_command(click.Context(main), name)
    return {opt: p for p in cmd.params if isinstance(p, click.Option) for opt in p.opts}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_and_shared_names_mean_one_thing(name):
    opts = options(name)
    missing = sorted({o for o, p in opts.items() if not (p.help or "").strip()})
    assert not missing, f"camloc {name}: options without help: {missing}"
    if "--out" in opts and name in FILE_OUT:
        assert isinstance(opts["--out"].type, click.Path) and not opts["--out"].type.dir_okay, "--out is the file"
    elif "--out" in opts:
        assert isinstance(opts["--out"].type, click.Path) and not opts["--out"].type.file_okay, "--out is a folder"
    if "--save-maps" in opts:
        assert opts["--save-maps"].is_flag, "--save-maps is a flag (the maps go under --out)"
    if "--batch-size" in opts:
        assert opts["--batch-size"].default == BATCH_SIZE
        assert isinstance(opts["--batch-size"].type, click.IntRange) and opts["--batch-size"].type.min == 1
    if name in DECODING:
        assert "--workers" in opts and opts["--workers"].type.min == 0


@pytest.mark.parametrize(("given", "line"), [
    (["--resume"], "--resume needs --out DIR"),
    (["--save-maps"], "--save-maps needs --out DIR"),
    (["--resume", "--save-maps"], "--save-maps and --resume need --out DIR"),
])
def test_options_that_need_out_are_named_when_out_is_missing(given, line):
    """The complaint names the options the user gave, not every option that needs --out."""
    from click.testing import CliRunner

    res = CliRunner().invoke(main, ["localize", "examples/images/cat.jpg", *given])
    assert res.exit_code == 2 and res.stderr == f"camloc: error: {line}\n"
