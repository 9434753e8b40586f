"""``camloc synthetic``: write the synthetic WSOL benchmark (:mod:`camloc.data.synthetic`)."""

from __future__ import annotations

import click

from ..errors import CamlocError
from .options import fail_usage


@click.command("synthetic")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--classes", type=int, default=4, show_default=True, help="Classes (a part shape and colour each).")
@click.option("--size", type=int, default=96, show_default=True, help="Image side in pixels.")
@click.option("--train", type=int, default=400, show_default=True, help="Images in the train split.")
@click.option("--train-fullsup", type=int, default=100, show_default=True, help="Images in train-fullsup (for thresholds).")
@click.option("--test", type=int, default=200, show_default=True, help="Images in the test split.")
@click.option("--part", type=float, default=0.3, show_default=True,
              help="The part's side / the body's shorter axis: smaller is harder for vanilla CAM.")
@click.option("--distractors", type=int, default=3, show_default=True, help="At most this many textured decoys per image.")
@click.option("--clutter", type=float, default=0.5, show_default=True, help="Background noise strength, 0 to 1.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: the same seed writes the same images.")
def command(out, classes, size, train, train_fullsup, test, part, distractors, clutter, seed) -> None:
    """Write a synthetic WSOL dataset to OUT: every class shares the object body, a small part tells them apart.

    Metadata in OUT/metadata/{train,train-fullsup,test} (boxes and masks); evaluate with
    --metadata OUT/metadata/test --images OUT, train with train_metadata=OUT/metadata/train train_images=OUT.
    """
    from ..data.synthetic import SyntheticSpec, write_synthetic

    try:
        spec = SyntheticSpec(classes=classes, size=size, train=train, train_fullsup=train_fullsup, test=test,
                             part=part, distractors=distractors, clutter=clutter, seed=seed)
        folders = write_synthetic(out, spec)
    except (CamlocError, OSError) as exc:
        raise fail_usage(exc) from None
    for split, folder in folders.items():
        click.echo(f"{split}: {spec.count(split)} images, metadata in {folder}")
