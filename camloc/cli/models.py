"""``camloc models``: registered names, where their weights come from, and their CAM kind."""

from __future__ import annotations

import click

from .options import fail_usage


@click.command("models")
@click.argument("pattern", default="*")
@click.option("--check", is_flag=True, help="Build each match (random weights) to tell exact-CAM heads from gradient maps.")
def command(pattern: str, check: bool) -> None:
    """List registered model names matching PATTERN (fnmatch): where weights come from, and the CAM kind.

    Sources: offline (ships with camloc's dependencies), local (registered by camloc finetune or train),
    download (timm / torchvision hubs). CAM: exact (affine head after pooling, or a TAP/GAP
    retrofit), gradient (non-affine head), none (no spatial feature map), or - (not checked; --check).
    """
    from ..models.registry import list_models, resolve_name

    names = list_models(pattern)
    if check and len(names) > 200:
        raise fail_usage(ValueError(f"{len(names)} names match: narrow the pattern to check them"))
    for name in names:
        source = resolve_name(name)[0]
        where = {"offline": "offline", "finetuned": "local"}.get(source, "download")
        kind = "exact" if source in ("offline", "finetuned") else "-"
        if check and source not in ("offline", "finetuned"):
            kind = cam_kind(name)
        click.echo(f"{name}\t{where}\t{kind}")


def cam_kind(name: str) -> str:
    """``exact``, ``gradient``, ``none`` (no spatial feature map) or ``error (...)`` for a model by name."""
    import torch

    from ..cam.analysis import analyze
    from ..errors import ModelError
    from ..models.config import preprocess_for
    from ..models.registry import create_model

    try:
        model = create_model(name, pretrained=False)
        h, w = preprocess_for(model).input_size
        return "exact" if analyze(model, torch.randn(1, 3, h, w)).exact else "gradient"
    except ModelError:
        return "none"
    except Exception as exc:  # noqa: BLE001 - a model that cannot even be built is reported, not fatal
        return f"error ({type(exc).__name__})"
