"""The example experiments run end to end on tiny data (their numbers are measured, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT, data_dir


@pytest.mark.slow
def test_synthetic_ablation_quick_writes_its_report_and_reuses_finished_runs(tmp_path):
    script = str(ROOT / "examples" / "synthetic_ablation.py")
    cmd = [sys.executable, script, "--quick", "--methods", "cam", "--archs", "smallcnn", "--body-signals", "0.5",
           "--out", str(tmp_path)]
    first = subprocess.run(cmd + ["--cue-baselines"], capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    table = (tmp_path / "table.md").read_text()
    assert "| TAP + NWC + PaS |" in table and "| baseline |" in table
    assert "| area-weight rho |" in table and "| Top-1 body only |" in table  # the mechanism table's columns
    assert "| 0.5 | body |" in table and "| 0 | part |" in table  # each cue alone (the part's at any body signal)
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted(r["name"] for r in results) == ["q0.5-smallcnn-cam-gap-s0", "q0.5-smallcnn-cam-tap-s0"]
    for r in results:
        assert set(r["cue_top1"]) == {"part", "body"} and "area_weight_rho" in r["diagnose"]
        assert r["body_signal"] == 0.5 and r["arch"] == "smallcnn"
    group = tmp_path / "q0.5-smallcnn"
    for name in ("accuracy_vs_threshold.png", "overlays_cam.png", "overlays_nwc_pas.png"):
        assert (group / name).stat().st_size > 10_000, name
    # a second run keeps both finished runs; other settings (TAP's theta) train the TAP run again
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.stdout.count("done before with the same settings, kept") == 2
    other = subprocess.run(cmd + ["--pools", "tap", "--theta-tap", "0.2"], capture_output=True, text=True, timeout=900)
    assert other.returncode == 0
    assert "q0.5-smallcnn-cam-tap-s0: a result with other settings is there; training again" in other.stdout


@pytest.mark.slow
def test_cub_ablation_quick_trains_measures_and_diagnoses(tmp_path):
    data = data_dir("cub-train").parent
    data_dir("cub-test")
    script = str(ROOT / "examples" / "cub_ablation.py")
    done = subprocess.run([sys.executable, script, "--quick", "--data", str(data), "--methods", "cam", "--pools", "tap",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads((tmp_path / "results.json").read_text())
    assert result["name"] == "cam-tap-s0" and result["config"]["epochs"] == 1
    assert result["diagnose"]["images"] == 8 and "ioa_negative" in result["diagnose"]
    assert "Mechanism" in (tmp_path / "table.md").read_text()


def test_every_script_describes_itself_in_whole_sentences():
    """``--help`` opens with each script's first paragraph, never a sentence cut at its first line break."""
    import ast

    scripts = sorted([*(ROOT / "examples").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")])
    for path in scripts:
        source = path.read_text()
        if "argparse.ArgumentParser(" not in source:
            continue
        first = (ast.get_docstring(ast.parse(source), clean=False) or "").split("\n\n")[0].rstrip()
        assert first.endswith((".", ")", "`")), f"{path.name}: its first paragraph ends mid-sentence"
        assert 'description=__doc__.split("\\n\\n")[0]' in source, f"{path.name}: --help takes another description"
    help_text = subprocess.run([sys.executable, str(ROOT / "examples" / "synthetic_ablation.py"), "--help"],
                               capture_output=True, text=True, timeout=120).stdout
    assert "over several seeds." in " ".join(help_text.split())
