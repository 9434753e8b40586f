"""``camloc synthetic``: write the synthetic WSOL benchmark (:mod:`camloc.data.synthetic`)."""

from __future__ import annotations

import click

from ..utils.errors import CamlocError
from .options import fail_usage

#: camloc.data.synthetic.BODY_SIGNAL (not imported: ``--help`` stays torch-free; a test compares them).
BODY_SIGNAL = 0.5


#: The text of ``camloc synthetic --help``. Click takes it as ``help=`` rather than from the docstring: its first line
#: is longer than a docstring's summary line may be.
HELP = """\
Write a synthetic WSOL dataset to OUT: a small part, and with --body-signal the body's texture, tell the classes apart.

Metadata in OUT/metadata/{train,train-fullsup,test} (boxes and masks); evaluate with
--metadata OUT/metadata/test --images OUT, train with train_metadata=OUT/metadata/train train_images=OUT.
OUT/synthetic.json records the options and the generator version; --body-signal 0 --cue both writes
the images of generator version 1.
"""


@click.command("synthetic", help=HELP)
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--classes", type=int, default=4, show_default=True, help="Classes (a part shape and colour each).")
@click.option("--size", type=int, default=96, show_default=True, help="Image side in pixels.")
@click.option("--train", type=int, default=400, show_default=True, help="Images in the train split.")
@click.option("--train-fullsup", type=int, default=100, show_default=True,
              help="Images in train-fullsup (for thresholds).")
@click.option("--test", type=int, default=200, show_default=True, help="Images in the test split.")
@click.option("--part", type=float, default=0.3, show_default=True,
              help="The part's side / the body's shorter axis: smaller is harder for vanilla CAM.")
@click.option("--distractors", type=int, default=3, show_default=True,
              help="At most this many textured decoys per image.")
@click.option("--clutter", type=float, default=0.5, show_default=True, help="Background noise strength, 0 to 1.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed: the same seed writes the same images.")
@click.option("--body-signal", type=float, default=BODY_SIGNAL, show_default=True,
              help="Q, 0 to 1: the body wears its class's stripe texture with probability Q (else the texture every "
                   "class shares), and each decoy a random class's texture with probability Q, so the class is the "
                   "texture of the body that carries the part. 0: only the part tells the classes apart.")
@click.option("--cue", default="both", show_default=True, metavar="both|part|body",
              help="What tells the class: both (the part and, with --body-signal, the body), part (every class "
                   "texture replaced by the shared one), body (no part drawn; needs --body-signal above 0). The same "
                   "seed draws the same objects in every mode: to train or test on one cue only.")
def command(out, classes, size, train, train_fullsup, test, part, distractors, clutter, seed, body_signal,
            cue) -> None:
    """Run ``camloc synthetic``: write the synthetic WSOL dataset the options describe to OUT."""
    from ..data.synthetic import SyntheticSpec, write_synthetic

    try:
        spec = SyntheticSpec(classes=classes, size=size, train=train, train_fullsup=train_fullsup, test=test,
                             part=part, distractors=distractors, clutter=clutter, seed=seed,
                             body_signal=body_signal, cue=cue)
        folders = write_synthetic(out, spec)
    except (CamlocError, OSError) as exc:
        raise fail_usage(exc) from None
    for split, folder in folders.items():
        click.echo(f"{split}: {spec.count(split)} images, metadata in {folder}")
