"""`camloc models`: names by pattern, and with --check the kind of map each model gives."""

from __future__ import annotations

import json

from click.testing import CliRunner

import camloc
from camloc.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def table(res) -> list[list[str]]:
    """Name, weights, and the CAM column whole (``gradient (class token)`` has spaces)."""
    return [line.split(None, 2) for line in res.stdout.splitlines()]


def test_models_command_has_a_header_aligned_columns_and_a_summary():
    res = run("models", "efficientnet_lite*")
    assert res.exit_code == 0
    header, *rows = res.stdout.splitlines()
    assert header.split() == ["name", "weights", "cam"]
    assert table(res)[1:4] == [[f"efficientnet_lite{i}", "offline", "exact"] for i in range(3)]
    assert all(r.index(r.split()[1]) == header.index("weights") for r in rows)  # columns line up
    assert f"{len(rows)} models match 'efficientnet_lite*': 3 offline, {len(rows) - 3} download" in res.stderr
    assert "--check" in res.stderr
    as_json = json.loads(run("models", "efficientnet_lite0", "--json").stdout)
    assert as_json == [{"name": "efficientnet_lite0", "weights": "offline", "cam": "exact"}]
    res = run("models", "no_such_thing")
    assert res.exit_code == 1 and "no registered model matches 'no_such_thing'" in res.stderr


def test_no_match_suggests_a_wider_pattern_with_single_stars():
    for pattern in ("smallcnn*", "*smallcnn", "smallcnn", "**smallcnn**"):
        res = run("models", pattern)
        assert res.exit_code == 1 and res.stdout == ""
        assert res.stderr == (f"camloc: no registered model matches {pattern!r}; "
                              "try a wider pattern, e.g. '*smallcnn*'\n"), res.stderr
    res = run("models", "*resnet_18*")  # already as wide as a pattern gets: the closest names instead
    (line,) = res.stderr.splitlines()
    assert res.exit_code == 1 and "'*resnet_18**'" not in line and "wider pattern" not in line
    assert line.startswith("camloc: no registered model matches '*resnet_18*'; closest: resnet18")
    assert line.endswith("camloc models lists every name")


def test_models_check_reports_cam_kind():
    res = run("models", "torchvision/mobilenet_v3_small", "--check")
    assert res.exit_code == 0 and table(res)[1:] == [
        ["torchvision/mobilenet_v3_small", "download", "gradient (not affine after pooling)"]
    ]
    res = run("models", "resnet18", "--check")
    assert table(res)[1:] == [["resnet18", "download", "exact"]]
    res = run("models", "vit_tiny_patch16_224", "--check")  # reads its class token: a gradient map, said why
    assert table(res)[1:] == [["vit_tiny_patch16_224", "download", "gradient (class token)"]]
    as_json = json.loads(run("models", "swin_tiny_patch4_window7_224", "--check", "--json").stdout)
    assert as_json == [{"name": "swin_tiny_patch4_window7_224", "weights": "download", "cam": "exact"}]
    res = run("models", "resnet18*", "--check")  # several: a progress bar on stderr, the table on stdout
    names = [r[0] for r in table(res)[1:]]
    assert res.exit_code == 0 and len(names) >= 2 and names == camloc.list_models("resnet18*")
    assert "check:" in res.stderr and "model/s" in res.stderr
    assert run("models", "*", "--check").exit_code == 2  # too many to build
