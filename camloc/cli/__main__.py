"""``python -m camloc.cli`` (and ``python -m camloc``) run the command line."""

from . import main

main(prog_name="camloc")
