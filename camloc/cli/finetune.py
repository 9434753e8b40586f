"""``camloc finetune``: a CAM-compatible TAP (or GAP) head retrofitted and briefly trained."""

from __future__ import annotations

import click

from ..utils.errors import CamlocError
from .options import (
    batch_size_option,
    checkpoint_option,
    device_option,
    fail_usage,
    images_option,
    model_option,
    quiet_option,
    workers_option,
)
from .train import JSON_HELP, epoch_printer


@click.command("finetune")
@model_option
@checkpoint_option
@click.option("--metadata", type=click.Path(file_okay=False, exists=True),
              help="Training split (wsolevaluation layout).")
@images_option
@click.option("--image-folder", type=click.Path(file_okay=False, exists=True),
              help="Or a torchvision ImageFolder (classification only).")
@click.option("--val-metadata", type=click.Path(file_okay=False, exists=True),
              help="Validation split with boxes: Top-1 Cls and GT-known Loc each epoch.")
@click.option("--val-images", type=click.Path(file_okay=False, exists=True),
              help="Image root of the validation split [default: its metadata folder].")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: last.pt (the checkpoint, rewritten every epoch) and last.log.csv.")
@click.option("--pool", type=click.Choice(["tap", "gap"]), default="tap", show_default=True,
              help="The new head's pooling: thresholded (TAP, the paper's fix) or global average.")
@click.option("--theta-tap", type=float, default=0.1, show_default=True,
              help="TAP's threshold: per channel, the mean of the values above theta x its maximum.")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True,
              help="Passes over the training split.")
@click.option("--lr", type=float, default=0.01, show_default=True, help="Learning rate of the new head (SGD).")
@batch_size_option()
@click.option("--backbone-lr-scale", type=float, default=0.1, show_default=True,
              help="0 freezes the backbone (features computed once).")
@click.option("--weight-decay", type=float, default=5e-4, show_default=True, help="SGD weight decay.")
@device_option
@click.option("--amp", is_flag=True, help="Mixed precision (CUDA).")
@workers_option
@click.option("--resume", is_flag=True, help="Continue from --out if it exists.")
@click.option("--no-register", is_flag=True, help="Do not register the result as <arch>_<pool>.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@quiet_option
def command(model_name, checkpoint, metadata, images, image_folder, val_metadata, val_images, out, pool, theta_tap,
            epochs, lr, batch_size, backbone_lr_scale, weight_decay, device, amp, workers, resume, no_register,
            as_json, quiet) -> None:
    """Retrofit a CAM-compatible TAP (or GAP) head onto MODEL and fine-tune it briefly."""
    from ..train.finetuning import FinetuneConfig, finetune

    cfg = FinetuneConfig(model=model_name, checkpoint=checkpoint, metadata=metadata, images=images,
                         image_folder=image_folder, val_metadata=val_metadata, val_images=val_images, out=out,
                         pool=pool, theta_tap=theta_tap, epochs=epochs, lr=lr, batch_size=batch_size,
                         backbone_lr_scale=backbone_lr_scale, weight_decay=weight_decay, device=device, amp=amp,
                         resume=resume, workers=workers, register=not no_register)
    try:
        finetune(cfg, progress=not quiet, log=lambda m: click.echo(m, err=True), on_epoch=epoch_printer(as_json))
    except (CamlocError, ValueError) as exc:
        raise fail_usage(exc) from None
