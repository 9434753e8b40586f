"""``python -m camloc`` runs the command line."""

from .cli import main

main(prog_name="camloc")
