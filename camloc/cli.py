"""The ``camloc`` command line.

Exit codes: 0 all went well, 1 some image failed (the others still got results), 2 usage errors
(an unknown model, a bad option, a checkpoint that does not fit).
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import click

from .errors import CamlocError, ImageError
from .registry import DEFAULT_MODEL


def _fail_usage(exc: Exception) -> "click.exceptions.Exit":
    click.echo(f"camloc: error: {exc}", err=True)
    return click.exceptions.Exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="camloc")
def main() -> None:
    """camloc: object boxes from any image classifier, by class activation maps."""


def _format_row(d: dict) -> str:
    if "error" in d:
        return f"{d['image']}\tERROR\t{d['error']}"
    box = ", ".join(f"{v:.1f}" for v in d["box"])
    return f"{d['image']}\t{d['class']}\t{d['label']}\t{d['score']:.3f}\t[{box}]\t{'exact' if d['exact'] else 'gradient'}"


@main.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True, help="Registered model name.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Local weights (loaded with weights_only=True).")
@click.option("--num-classes", type=int, help="Classes of the checkpoint's classifier, when not the model's default.")
@click.option("--class", "class_index", type=int, help="Localize this class instead of the top-1 prediction.")
@click.option("--topk", type=int, help="Localize each image's top-k predicted classes.")
@click.option("--nwc/--no-nwc", default=True, show_default=True, help="Negative weight clamping in the map.")
@click.option("--standard", type=click.Choice(["percentile", "max"]), default="percentile", show_default=True,
              help="Threshold against a percentile of the map (PaS) or its maximum (vanilla CAM).")
@click.option("--theta", type=float, help="Threshold factor [default: 0.35 with percentile, 0.2 with max].")
@click.option("--percentile", type=float, default=90.0, show_default=True, help="Percentile for PaS.")
@click.option("--all-regions", is_flag=True, help="Report every region's box, not only the largest.")
@click.option("--resize", type=click.Choice(["full", "crop"]),
              help="Squash the whole image to the input size, or resize + center crop [default: the model's own].")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--device", help="Device for the model, e.g. cuda or cpu [default: cuda if available].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line and image.")
def localize(images, model_name, checkpoint, num_classes, class_index, topk, nwc, standard, theta, percentile,
             all_regions, resize, batch_size, device, as_json) -> None:
    """Localize the predicted class in each IMAGE and print its box in original pixels."""
    import torch

    from .api import Localizer, make_standard
    from .registry import load_model

    if batch_size < 1:
        raise _fail_usage(ValueError("--batch-size must be at least 1"))
    if class_index is not None and topk is not None:
        raise _fail_usage(ValueError("give --class or --topk, not both"))
    try:
        model = load_model(model_name, checkpoint=checkpoint, num_classes=num_classes)
        model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        loc = Localizer(model, nwc=nwc, standard=make_standard(standard, theta, percentile),
                        all_regions=all_regions, resize=resize)
    except (CamlocError, ValueError) as exc:
        raise _fail_usage(exc) from None

    failed = 0
    emit = (lambda d: click.echo(json.dumps(d))) if as_json else (lambda d: click.echo(_format_row(d)))
    if not as_json:
        click.echo("image\tclass\tlabel\tscore\tbox [x0, y0, x1, y1]\tmap")
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        prepared: list = []
        for path in chunk:
            try:
                prepared.append(loc.prepare(path, path))
            except ImageError as exc:
                failed += 1
                click.echo(f"camloc: error: {exc}", err=True)
                prepared.append(exc)
        good = [p for p in prepared if not isinstance(p, ImageError)]
        results = iter([])
        if good:
            try:
                results = iter(loc.localize_batch(torch.stack([p[0] for p in good]), [p[1] for p in good],
                                                  [p[2] for p in good], class_index, topk))
            except CamlocError as exc:
                raise _fail_usage(exc) from None
        for path, p in zip(chunk, prepared, strict=True):
            if isinstance(p, ImageError):
                emit({"image": path, "error": p.reason})
                continue
            for r in next(results):
                emit(r.to_dict())
        sys.stdout.flush()
    if failed:
        click.echo(f"camloc: {failed} of {len(images)} images failed", err=True)
        raise click.exceptions.Exit(1)


@main.command("models")
@click.argument("pattern", default="*")
def models_cmd(pattern: str) -> None:
    """List registered model names matching PATTERN (fnmatch)."""
    from .registry import OFFLINE, list_models

    for name in list_models(pattern):
        click.echo(f"{name}\t{'offline' if name in OFFLINE else 'download'}")


if __name__ == "__main__":  # pragma: no cover
    main()
