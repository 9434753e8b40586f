"""The example experiments run end to end on tiny data (their numbers are measured, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_synthetic_ablation_quick_writes_its_report_and_reuses_finished_runs(tmp_path):
    script = str(ROOT / "examples" / "synthetic_ablation.py")
    cmd = [sys.executable, script, "--quick", "--methods", "cam", "--out", str(tmp_path)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    table = (tmp_path / "table.md").read_text()
    assert "| TAP + NWC + PaS |" in table and "| baseline |" in table
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted(r["name"] for r in results) == ["cam-gap-s0", "cam-tap-s0"]
    for name in ("accuracy_vs_threshold.png", "overlays_cam.png", "overlays_nwc_pas.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    # a second run keeps both finished runs; other settings (TAP's theta) train the TAP run again
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.stdout.count("done before with the same settings, kept") == 2
    other = subprocess.run(cmd + ["--pools", "tap", "--theta-tap", "0.2"], capture_output=True, text=True, timeout=600)
    assert other.returncode == 0 and "cam-tap-s0: a result with other settings is there; training again" in other.stdout
