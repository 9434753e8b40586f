"""``camloc export``: a model's localizer as one ONNX file that runs without torch (docs/deployment.md)."""

from __future__ import annotations

from typing import Any

import click

from ..utils.errors import CamlocError
from .options import checkpoint_option, fail_usage, num_classes_option, nwc_option, resize_option, threshold_options


@click.command("export")
@click.argument("model_name", metavar="MODEL")
@checkpoint_option
@num_classes_option
@click.option("--topk", type=click.IntRange(min=1), default=1, show_default=True,
              help="Classes the file localizes per image (the runtime may ask for fewer).")
@nwc_option
@threshold_options("The threshold rule written into the graph: percentile (PaS), max, otsu, triangle or yen "
                   "(li iterates and cannot be exported).")
@resize_option()
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--no-check", is_flag=True, help="Skip the self-check (onnxruntime against torch on random images).")
def command(**o: Any) -> None:
    """Export MODEL's localizer to ONNX: maps, thresholds and masks in the graph, its settings in the metadata.

    The file runs with camloc.runtime.OnnxLocalizer or `camloc localize --onnx FILE`, which need
    onnxruntime, Pillow, NumPy and OpenCV but not torch. Only exact heads export (GAP, TAP, ViTs that
    average their patch tokens); a model whose map needs gradients is refused with one line.
    Exit code 0: written; 2: refused or failed (nothing written).
    """
    from ..deploy.exporter import export
    from ..models.registry import load_model

    try:
        model = load_model(o["model_name"], checkpoint=o["checkpoint"], num_classes=o["num_classes"])
        report = export(model, o["out"], topk=o["topk"], standard=o["standard"], theta=o["theta"],
                        percentile=o["percentile"], nwc=o["nwc"], resize=o["resize"], name=o["model_name"],
                        check=not o["no_check"])
    except (CamlocError, ValueError) as exc:
        raise fail_usage(exc) from None
    info = report.info
    checked = ("" if report.map_difference is None
               else f"; onnxruntime matches torch, maps within {report.map_difference:.1g}")
    click.echo(f"wrote {report.path} ({report.size / 1e6:.1f} MB in {report.seconds:.1f} s): {info.model}, "
               f"head {info.head}, top-{info.topk}, {info.standard.label}, NWC {'on' if info.nwc else 'off'}, "
               f"input {info.preprocess.input_size[1]}x{info.preprocess.input_size[0]}{checked}")
