"""The ``camloc`` entry point itself: what every subcommand shares."""

import subprocess
import sys


def test_a_closed_stdout_ends_a_command_with_one_line_and_exit_141():
    """``camloc models | head -1``: the reader goes away; camloc says so in one line instead of a silent 1."""
    proc = subprocess.Popen([sys.executable, "-m", "camloc", "models"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # before camloc writes its first line: every write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err.splitlines() == ["camloc: standard output was closed by its reader (as `| head` does); stopped there"]
