"""Where the real photos live (camloc.data.location): one rule, and what each kind of caller does without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from camloc.data.location import DATA_ENV, data_root, missing_data

from .. import conftest
from ..conftest import ROOT


def test_the_folder_is_camloc_data_as_given_and_none_when_it_is_unset(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "photos"))
    assert data_root() == tmp_path / "photos"  # not checked: callers say what they need from it
    monkeypatch.setenv(DATA_ENV, "")
    assert data_root() is None  # empty counts as unset
    monkeypatch.delenv(DATA_ENV)
    assert data_root() is None  # no fallback folder anywhere
    assert data_root(environ={DATA_ENV: "rel/wsol"}) == Path("rel/wsol")


def test_a_test_that_needs_real_photos_skips_with_a_reason_naming_camloc_data(monkeypatch, tmp_path):
    monkeypatch.setattr(conftest, "DATA", None)
    with pytest.raises(pytest.skip.Exception, match=r"CAMLOC_DATA is unset \(set it to the folder holding cub-test/\)"):
        conftest.data_dir("cub-test")
    monkeypatch.setattr(conftest, "DATA", tmp_path)
    with pytest.raises(pytest.skip.Exception, match=r"cub-test has no image_ids\.txt \(CAMLOC_DATA="):
        conftest.data_dir("cub-test")
    (tmp_path / "cub-test").mkdir()
    (tmp_path / "cub-test" / "image_ids.txt").write_text("a.jpg\n")
    assert conftest.data_dir("cub-test") == tmp_path / "cub-test"


#: Each script that needs real photos, its arguments, the option that names them, its exit status.
SCRIPTS = [
    ("benchmarks/diagnose.py", [], "--data", 2),
    ("benchmarks/evaluate.py", [], "--metadata", 2),
    ("benchmarks/pipeline.py", [], "--folder", 2),
    ("benchmarks/defaults.py", ["--out", "defaults.json"], "--data", 2),
    ("benchmarks/gpu.py", [], None, 1),
    ("examples/cub_tap.py", [], "--data", 2),
    ("examples/cub_ablation.py", [], "--data", 2),
    ("examples/threshold_rules.py", [], "--data", 2),
]


@pytest.mark.slow
@pytest.mark.parametrize(("script", "args", "option", "status"), SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_a_script_without_camloc_data_stops_with_one_line_saying_how_to_give_the_photos(
        tmp_path, script, args, option, status):
    env = {k: v for k, v in os.environ.items() if k != DATA_ENV}
    proc = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=env)
    assert proc.returncode == status, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.rstrip().endswith(missing_data(option)), proc.stderr
    assert "Traceback" not in proc.stderr and os.listdir(tmp_path) == []  # stopped before any work
