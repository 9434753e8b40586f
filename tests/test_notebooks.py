"""The example notebooks are stored clean, and examples/notebooks/run.py reports failures in one line.

The notebooks themselves are not executed here: CI runs them all through ``run.py`` (which the
documentation site renders). These tests read their JSON, and run ``run.py`` on tiny notebooks made
in ``tmp_path`` (a kernel each: a few seconds).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

FOLDER = ROOT / "examples" / "notebooks"
RUN = FOLDER / "run.py"
NAMES = ["01_quickstart.ipynb", "02_three_fixes.ipynb", "03_evaluation.ipynb", "04_training.ipynb", "05_methods.ipynb"]


def _read(name: str) -> dict:
    return json.loads((FOLDER / name).read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_the_five_notebooks_are_there():
    assert sorted(p.name for p in FOLDER.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_clean_nbformat_4_and_starts_with_markdown(name):
    nb = _read(name)
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5)
    assert nb["nbformat"] == 4
    # no kernel-specific metadata beyond the kernel spec
    assert nb["metadata"] == {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown"
    first = _source(cells[0])
    assert first.startswith("# ") and "Runs in" in first, "the first cell says what it shows and how long it runs"
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code, "a notebook with no code"
    for i, cell in enumerate(cells):
        assert cell["cell_type"] in ("markdown", "code"), f"cell {i + 1}: {cell['cell_type']}"
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{name}, cell {i + 1}: stored with outputs"
            assert cell["execution_count"] is None, f"{name}, cell {i + 1}: stored with an execution count"
        assert _source(cell).strip(), f"{name}, cell {i + 1}: empty"
    ids = [c["id"] for c in cells]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_validates_against_the_nbformat_schema(name):
    nbformat = pytest.importorskip("nbformat", reason="the docs extra is not installed: pip install -e '.[docs]'")
    nbformat.validate(nbformat.read(FOLDER / name, as_version=4))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_finds_the_photos_from_any_folder_and_reads_the_quick_switch(name):
    code = "\n".join(_source(c) for c in _read(name)["cells"] if c["cell_type"] == "code")
    assert 'os.environ.get("CAMLOC_NOTEBOOK_QUICK") == "1"' in code
    assert 'Path(camloc.__file__)' in code and '"examples" / "images"' in code
    assert "/work/" not in code, "no path of this machine"
    text = "\n".join(_source(c) for c in _read(name)["cells"])
    assert "../" not in text, "no folder outside the repository: real photos come from $CAMLOC_DATA"
    if "imagenet-val" in code:  # a notebook that reads real photos finds them by the one rule
        assert "data_root()" in code


def test_training_notebook_has_its_duration_in_a_parameter_cell_at_the_top():
    cells = [c for c in _read("04_training.ipynb")["cells"] if c["cell_type"] == "code"]
    first = cells[0]
    assert first["metadata"].get("tags") == ["parameters"]
    assert "EPOCHS = " in _source(first) and "TRAIN_IMAGES = " in _source(first)
    assert "if QUICK:" in _source(cells[1])


def _run_module():
    spec = importlib.util.spec_from_file_location("notebooks_run", RUN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_run_finds_notebooks_by_stem_file_name_or_unique_prefix(capsys):
    run = _run_module()
    assert [p.name for p in run.notebooks([])] == NAMES
    assert [p.name for p in run.notebooks(["01", "03_evaluation.ipynb", "05_methods"])] == [
        "01_quickstart.ipynb", "03_evaluation.ipynb", "05_methods.ipynb"]
    for bad, why in (("0", "matches 5 notebooks"), ("nope", "matches no notebook")):
        with pytest.raises(SystemExit) as exc:
            run.notebooks([bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"'{bad}' {why}" in err and "01_quickstart" in err


def _notebook(path: Path, *sources: str) -> Path:
    cells = [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# a test notebook"}]
    for i, src in enumerate(sources):
        cells.append({"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                      "source": src})
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def test_run_reports_a_failing_cell_in_one_line_and_goes_on(tmp_path):
    pytest.importorskip("nbclient", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("ipykernel", reason="the docs extra is not installed: pip install -e '.[docs]'")
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    bad = _notebook(nbs / "bad.ipynb", "x = 1", "def f():\n    raise ValueError('the cell broke')\n\nf()", "print('never')")
    good = _notebook(nbs / "good.ipynb", "import os\nprint(os.getcwd())\nfor k in ('CAMLOC_NOTEBOOK_QUICK', "
                     "'OMP_NUM_THREADS', 'MPLBACKEND'):\n    print(os.environ.get(k))", "6 * 7")
    out = tmp_path / "out"
    (out).mkdir()
    (out / "bad.ipynb").write_text("a stale copy from an earlier run")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CAMLOC_NOTEBOOK_QUICK")}
    env["MPLBACKEND"] = "Agg"  # as a CI job may have it: the kernels still draw inline
    proc = subprocess.run([sys.executable, str(RUN), "--out", str(out), str(bad), str(good)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1
    assert "bad.ipynb" in failed[0]
    assert "cell 3 of 4 (code cell 2): ValueError: the cell broke" in failed[0]
    assert str(out / "bad.error.txt") in failed[0]
    assert "Traceback" not in proc.stdout + proc.stderr and "never" not in proc.stdout
    assert any(line.startswith("ok") and "good.ipynb" in line and line.rstrip().endswith(" s")
               for line in proc.stdout.splitlines())
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("1 of 2 notebook(s) ran in ") and last.endswith(" s; failed: bad.ipynb")
    # the full traceback is in the error file; no copy of the failed notebook (the stale one is gone)
    error = (out / "bad.error.txt").read_text()
    assert error.startswith("bad.ipynb: cell 3 of 4 (code cell 2): ValueError: the cell broke")
    assert "raise ValueError('the cell broke')" in error
    assert not (out / "bad.ipynb").exists()
    # the good notebook beside it ran in its own folder, in quick mode (one torch thread, figures inline),
    # and was written with its outputs
    executed = json.loads((out / "good.ipynb").read_text())
    first, second = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert "".join(first["outputs"][0]["text"]).split() == [str(nbs.resolve()), "1", "1",
                                                             "module://matplotlib_inline.backend_inline"]
    assert "".join(second["outputs"][0]["data"]["text/plain"]) == "42" and second["execution_count"] == 2
    assert not (out / "good.error.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == ["bad.error.txt", "good.ipynb"]


def test_run_reports_a_cell_over_the_time_limit_and_full_mode_leaves_quick_unset(tmp_path):
    pytest.importorskip("nbclient", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("ipykernel", reason="the docs extra is not installed: pip install -e '.[docs]'")
    env = _notebook(tmp_path / "env.ipynb", "import os\nos.environ.get('CAMLOC_NOTEBOOK_QUICK', 'unset')")
    slow = _notebook(tmp_path / "slow.ipynb", "x = 1", "import time\ntime.sleep(60)")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(RUN), "--out", str(out), "--timeout", "3", "--full", str(slow), str(env)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "CAMLOC_NOTEBOOK_QUICK": "1"})
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0].startswith("running 2 notebook(s), full")
    (failed,) = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    assert "slow.ipynb" in failed and "cell 3 of 3 (code cell 2): timed out after 3 s (--timeout)" in failed
    executed = json.loads((out / "env.ipynb").read_text())
    assert "".join(executed["cells"][1]["outputs"][0]["data"]["text/plain"]) == "'unset'"


def test_run_refuses_an_unknown_notebook_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(RUN), "--out", str(tmp_path / "out"), "no_such_notebook"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "'no_such_notebook' matches no notebook" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_run_clean_strips_outputs_counts_and_editor_metadata(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("nbclient", reason="the docs extra is not installed: pip install -e '.[docs]'")
    dirty = json.loads((FOLDER / "04_training.ipynb").read_text(encoding="utf-8"))
    dirty["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
    dirty["metadata"]["kernelspec"]["display_name"] = "Python 3 (ipykernel)"
    for n, cell in enumerate(c for c in dirty["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = n + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hello\n"}]
        cell["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
    path = tmp_path / "04_training.ipynb"
    path.write_text(json.dumps(dirty), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(RUN), "--clean", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "cleaned 04_training.ipynb\n"
    # byte for byte the stored notebook again, its "parameters" tag kept
    assert path.read_text(encoding="utf-8") == (FOLDER / "04_training.ipynb").read_text(encoding="utf-8")
    nbformat.validate(nbformat.read(path, as_version=4))
    again = subprocess.run([sys.executable, str(RUN), "--clean", str(path)], capture_output=True, text=True, timeout=60)
    assert again.stdout == "clean   04_training.ipynb\n"
