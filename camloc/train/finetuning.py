"""Brief fine-tuning of a retrofitted TAP (or GAP) head: a preset of ``camloc train``, the authors' recipe as defaults.

Recipe (docs/protocols.md, "The authors' VGG16-TAP on CUB"): SGD, momentum 0.9, Nesterov,
weight decay 5e-4; train transform resize 256 x 256, random crop 224, horizontal flip; pretrained
layers at a reduced rate. camloc scales the *learning rate* of the pretrained backbone by
``backbone_lr_scale`` (the authors scale its gradients by 0.1, which is the same step for SGD apart
from weight decay); 0 freezes it. The learning rate drops x0.1 as :func:`lr_steps` says: the
authors' 60/120/180-of-200 schedule scaled to the run, or once before the last epoch of a short run
(ours).

With the backbone frozen its feature maps are computed once, for the center crop of the 256 x 256
image and its mirror image, and the head trains on those (ours: the random crops of the recipe would
need a backbone pass per epoch), so a CPU run takes seconds to minutes.

Each epoch writes a self-describing, resumable checkpoint, ``OUT/last.pt`` (atomically; its log in
``OUT/last.log.csv``); a finished run is
registered as ``<arch>_<pool>`` (``vgg16_tap``) in ``$CAMLOC_HOME/models`` (default
``~/.cache/camloc/models``), where ``camloc localize --model vgg16_tap`` finds it.

Example:
    One epoch of the TAP head over four 32 x 32 images, the backbone frozen (``backbone_lr_scale=0``):

    >>> import os, tempfile
    >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
    >>> from camloc.models.config import model_config
    >>> from camloc.train.finetuning import FinetuneConfig, finetune
    >>> root, out = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> meta = write_synthetic(root, SyntheticSpec(classes=2, size=32, train=4, train_fullsup=1, test=1))
    >>> cfg = FinetuneConfig(model="efficientnet_lite0", metadata=str(meta["train"]), images=root, out=out, epochs=1,
    ...                      batch_size=4, backbone_lr_scale=0.0, workers=0, register=False)  # not in $CAMLOC_HOME
    >>> model = finetune(cfg, progress=False, log=lambda line: None)
    >>> model_config(model).name, model_config(model).class_names, sorted(os.listdir(out))
    ('efficientnet_lite0_tap', ('class 0', 'class 1'), ['last.log.csv', 'last.pt'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models.retrofitting import CAMHeadModel
from ..utils.device import default_device
from ..utils.errors import UsageError
from .config import TrainConfig
from .loop import train


@dataclass
class FinetuneConfig:
    """Arguments of a fine-tune (its checkpoint stores the :class:`TrainConfig` they map to)."""

    model: str = "efficientnet_lite0"
    checkpoint: str | None = None
    metadata: str | None = None
    images: str | None = None
    image_folder: str | None = None
    val_metadata: str | None = None
    val_images: str | None = None
    out: str = "finetuned"
    pool: str = "tap"
    theta_tap: float = 0.1
    epochs: int = 5
    lr: float = 0.01
    batch_size: int = 32
    backbone_lr_scale: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    device: str | None = None
    amp: bool = False
    resume: bool = False
    workers: int = 2
    seed: int = 0
    register: bool = True


def to_train_config(cfg: FinetuneConfig) -> TrainConfig:
    """The :class:`~camloc.train.config.TrainConfig` of a fine-tune: the preset, with ``cfg``'s values.

    Raises:
        UsageError: for an ``out`` that names a checkpoint file rather than a folder.

    Example:
        >>> from camloc.train.finetuning import FinetuneConfig, to_train_config
        >>> cfg = to_train_config(FinetuneConfig(model="resnet18", out="runs/r18", epochs=20, register=False))
        >>> cfg.lr_rule, cfg.backbone_lr_scale, cfg.schedule, cfg.milestones, cfg.last_file
        ('backbone_lr', 0.1, 'multistep', [6, 12, 18], 'runs/r18/last.pt')
        >>> to_train_config(FinetuneConfig(out="r18.pt"))
        Traceback (most recent call last):
        camloc.utils.errors.UsageError: --out r18.pt: give a folder (camloc writes last.pt and its log there), not ...
    """
    if Path(cfg.out).suffix in (".pt", ".pth") or Path(cfg.out).is_file():
        raise UsageError(f"--out {cfg.out}: give a folder (camloc writes last.pt and its log there), not a file name")
    cuda = default_device(cfg.device).type == "cuda"
    return TrainConfig(
        arch=cfg.model, pretrained=True, checkpoint=cfg.checkpoint, pool=cfg.pool, theta_tap=cfg.theta_tap,
        train_metadata=cfg.metadata, train_images=cfg.images, image_folder=cfg.image_folder,
        val_metadata=cfg.val_metadata, val_images=cfg.val_images, workers=cfg.workers,
        optimizer="sgd", lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay,
        lr_rule="backbone_lr", backbone_lr_scale=cfg.backbone_lr_scale, batch_size=cfg.batch_size,
        epochs=cfg.epochs, schedule="multistep", milestones=lr_steps(cfg.epochs), lr_decay=0.1,
        amp="fp16" if cfg.amp and cuda else "none", channels_last=cuda,
        freeze_backbone=cfg.backbone_lr_scale == 0.0, seed=cfg.seed, device=cfg.device,
        eval_every=1, eval_variants=["cam", "nwc+pas"], selection="last",
        out=str(cfg.out), last_file=str(Path(cfg.out) / "last.pt"),
        register=f"{cfg.model}_{cfg.pool}" if cfg.register else None, resume=cfg.resume, plots=False,
    )


def finetune(cfg: FinetuneConfig, progress: bool = True, log: Callable[[str], None] = print,
             on_epoch: Callable[[dict[str, Any]], None] | None = None) -> CAMHeadModel:
    """Fine-tune ``cfg.model`` with a retrofitted ``cfg.pool`` head; returns the trained model.

    This is :func:`camloc.train.loop.train` with the fine-tune preset (:func:`to_train_config`), and its ``log``
    lines (one per epoch) and ``on_epoch`` records; the module's example runs one.
    """
    if cfg.amp and default_device(cfg.device).type != "cuda":
        log("note: --amp applies on CUDA only; training in float32 on the CPU")
    return train(to_train_config(cfg), progress=progress, log=log, on_epoch=on_epoch)


def lr_steps(epochs: int) -> list[int]:
    """Epochs after which the learning rate drops x0.1.

    The authors' 60/120/180 of 200 scaled to the run (30, 60 and 90 %) from 10 epochs on; shorter
    runs drop once, for their last epoch (none below 3 epochs): ours, for brief fine-tunes.

    Example:
        >>> from camloc.train.finetuning import lr_steps
        >>> lr_steps(200), lr_steps(5), lr_steps(2)
        ([60, 120, 180], [4], [])
    """
    if epochs >= 10:
        return sorted({round(epochs * f) for f in (0.3, 0.6, 0.9)})
    return [epochs - 1] if epochs >= 3 else []
