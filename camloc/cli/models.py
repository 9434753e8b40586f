"""``camloc models``: registered names, where their weights come from, and their CAM kind."""

from __future__ import annotations

import json
from collections import Counter

import click

from .options import fail_usage, json_option, quiet_option


@click.command("models")
@click.argument("pattern", default="*")
@click.option("--check", is_flag=True,
              help="Build each match (random weights) to tell exact-CAM heads from gradient maps.")
@json_option
@quiet_option
def command(pattern: str, check: bool, as_json: bool, quiet: bool) -> None:
    """List registered model names matching PATTERN (fnmatch): where weights come from, and the CAM kind.

    Weights: offline (ships with camloc's dependencies), local (registered by camloc finetune or train),
    download (timm / torchvision hubs). CAM: exact (affine head after pooling, or a TAP/GAP
    retrofit), gradient with the reason (gradient (class token): a transformer reading its class
    token; gradient (not affine after pooling): an MLP or conv head; gradient (no single classifier)),
    none (no spatial feature map), or - (not checked; --check).
    A summary goes to stderr, so stdout stays the table (or JSON with --json).
    """
    from tqdm import tqdm

    from ..models.registry import list_models, resolve_name

    names = list_models(pattern)
    if not names:
        click.echo(f"camloc: no registered model matches {pattern!r}; {suggestion(pattern, list_models())}", err=True)
        raise click.exceptions.Exit(1)
    if check and len(names) > 200:
        raise fail_usage(ValueError(f"{len(names)} names match: narrow the pattern to check them"))
    rows = []
    for name in tqdm(names, desc="check", unit="model", disable=not check or quiet or len(names) < 2, leave=False):
        source = resolve_name(name)[0]
        where = {"offline": "offline", "finetuned": "local"}.get(source, "download")
        kind = "exact" if source in ("offline", "finetuned") else "-"
        if check and source not in ("offline", "finetuned"):
            kind = cam_kind(name)
        rows.append({"name": name, "weights": where, "cam": kind})
    if as_json:
        click.echo(json.dumps(rows))
    else:
        width = max(len("name"), *(len(r["name"]) for r in rows))
        click.echo(f"{'name':<{width}}  weights   cam")
        for r in rows:
            click.echo(f"{r['name']:<{width}}  {r['weights']:<8}  {r['cam']}")
    counts = Counter(r["weights"] for r in rows)
    summary = ", ".join(f"{counts[k]} {k}" for k in ("offline", "local", "download") if counts[k])
    hint = "" if check else "; --check tells exact maps from gradient maps (builds each model)"
    click.echo(f"{len(rows)} {'model' if len(rows) == 1 else 'models'} match {pattern!r}: {summary}{hint}", err=True)


def wider_pattern(pattern: str) -> str | None:
    """The pattern with one star at each end, or None when it already has them (nothing wider to try).

    Example:
        >>> wider_pattern("smallcnn*"), wider_pattern("lite"), wider_pattern("res*net"), wider_pattern("*lite*")
        ('*smallcnn*', '*lite*', '*res*net*', None)
    """
    core = pattern.strip("*")
    wider = f"*{core}*" if core else "*"
    return None if wider == pattern else wider


def suggestion(pattern: str, names: list[str]) -> str:
    """What to try after ``pattern`` matched nothing: a wider pattern, else the closest of ``names``.

    Example:
        >>> suggestion("smallcnn*", ["resnet18"])
        "try a wider pattern, e.g. '*smallcnn*'"
        >>> suggestion("*resnet_18*", ["resnet18", "resnet50", "vgg16"])
        'closest: resnet18, resnet50; camloc models lists every name'
    """
    import difflib

    wider = wider_pattern(pattern)
    if wider is not None:
        return f"try a wider pattern, e.g. {wider!r}"
    close = difflib.get_close_matches(pattern.strip("*"), names, n=3, cutoff=0.6)
    return (f"closest: {', '.join(close)}; " if close else "") + "camloc models lists every name"


def cam_kind(name: str) -> str:
    """``exact``, ``gradient (reason)``, ``none`` (no spatial feature map) or ``error (...)`` for a model by name.

    Example:
        >>> cam_kind("vit_tiny_patch16_224"), cam_kind("resnet18")
        ('gradient (class token)', 'exact')
    """
    import torch

    from ..cam.analysis import analyze
    from ..models.config import preprocess_for
    from ..models.registry import create_model
    from ..utils.errors import ModelError

    try:
        model = create_model(name, pretrained=False)
        h, w = preprocess_for(model).input_size
        return analyze(model, torch.randn(1, 3, h, w)).kind
    except ModelError:
        return "none"
    except Exception as exc:  # noqa: BLE001 - a model that cannot even be built is reported, not fatal
        return f"error ({type(exc).__name__})"
