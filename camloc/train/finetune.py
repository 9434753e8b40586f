"""Brief fine-tuning of a retrofitted TAP (or GAP) head, with the authors' recipe as defaults.

Recipe (PROTOCOLS.md section 5, the authors' VGG16-TAP on CUB): SGD, momentum 0.9, Nesterov,
weight decay 5e-4; train transform resize 256 x 256, random crop 224, horizontal flip; pretrained
layers at a reduced rate. camloc scales the *learning rate* of the pretrained backbone by
``backbone_lr_scale`` (the authors scale its gradients by 0.1, which is the same step for SGD apart
from weight decay); 0 freezes it. The learning rate drops x0.1 as :func:`lr_steps` says: the
authors' 60/120/180-of-200 schedule scaled to the run, or once before the last epoch of a short run
(ours).

With the backbone frozen its feature maps are computed once, for the center crop of the 256 x 256
image and its mirror image, and the head trains on those (ours: the random crops of the recipe would
need a backbone pass per epoch), so a CPU run takes seconds to minutes.

Each epoch writes a self-describing, resumable checkpoint (atomically); a finished run is
registered as ``<arch>_<pool>`` (``vgg16_tap``) in ``$CAMLOC_HOME/models`` (default
``~/.cache/camloc/models``), where ``camloc localize --model vgg16_tap`` finds it.

Example:
    >>> model = finetune(FinetuneConfig(model="resnet18", metadata="data/cub-train", epochs=2))
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import torch
from torch import nn

from ..atomic import atomic_write
from ..data.dataset import ImageDataset
from ..data.imaging import Preprocess
from ..data.metadata import Sample, read_dataset
from ..data.transforms import rethinking_crop, train_transform
from ..device import default_device
from ..errors import CheckpointError, UsageError
from ..models.checkpoints import describe, is_camloc_checkpoint, read_checkpoint, registered_path
from ..models.config import model_config
from ..models.layers.pooling import POOLS
from ..models.registry import load_model
from ..models.retrofit import CAMHeadModel, retrofit


@dataclass
class FinetuneConfig:
    """Arguments of a fine-tune; stored in its checkpoint."""

    model: str = "efficientnet_lite0"
    checkpoint: Optional[str] = None
    metadata: Optional[str] = None
    images: Optional[str] = None
    image_folder: Optional[str] = None
    val_metadata: Optional[str] = None
    val_images: Optional[str] = None
    out: str = "finetuned.pth"
    pool: str = "tap"
    theta_tap: float = 0.1
    epochs: int = 5
    lr: float = 0.01
    batch_size: int = 32
    backbone_lr_scale: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    device: Optional[str] = None
    amp: bool = False
    resume: bool = False
    workers: int = 2
    seed: int = 0
    register: bool = True
    history: list = field(default_factory=list)

    def validate(self) -> None:
        """Refuse settings that cannot work, before any work."""
        if self.pool not in POOLS:
            raise UsageError(f"pool must be one of {', '.join(POOLS)}, not {self.pool!r}")
        if not 0.0 <= self.backbone_lr_scale <= 1.0:
            raise UsageError("backbone_lr_scale must be in [0, 1]")
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError("epochs and batch_size must be at least 1")


def _train_items(cfg: FinetuneConfig) -> tuple[list[str], list[int], list[str]]:
    """Training image paths, labels and class names (folder names where they are consistent)."""
    if cfg.image_folder:
        from torchvision.datasets import ImageFolder

        folder = ImageFolder(cfg.image_folder)
        return [p for p, _ in folder.samples], [c for _, c in folder.samples], list(folder.classes)
    if not cfg.metadata:
        raise UsageError("give --metadata DIR (wsolevaluation layout) or --image-folder DIR")
    samples = read_dataset(cfg.metadata)
    root = Path(cfg.images or cfg.metadata)
    return [str(root / s.image_id) for s in samples], [s.label for s in samples], _class_names(samples)


def _class_names(samples: list[Sample]) -> list[str]:
    k = max(s.label for s in samples) + 1
    folders: dict[int, set] = {}
    for s in samples:
        folders.setdefault(s.label, set()).add(Path(s.image_id).parent.name)
    names = []
    for c in range(k):
        f = folders.get(c, set())
        names.append(next(iter(f)) if len(f) == 1 and next(iter(f)) else f"class {c}")
    return names


def build(arch: str, pool: str, theta_tap: float, num_classes: int, checkpoint: Optional[str] = None,
          pretrained: bool = True, class_names: Optional[list[str]] = None) -> CAMHeadModel:
    """The retrofitted model a fine-tune trains (pretrained backbone, new head)."""
    base = load_model(arch, checkpoint=checkpoint, pretrained=pretrained)
    return retrofit(base, pool, theta_tap, num_classes=num_classes, class_names=class_names)


@torch.no_grad()
def _cache_features(model: CAMHeadModel, paths: list[str], labels: list[int], pre: Preprocess, device,
                    batch_size: int, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone feature maps of the rethinking center crop and its mirror image, for every training image."""
    from tqdm import tqdm

    data = ImageDataset(paths, rethinking_crop(pre.mean, pre.std), labels)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, collate_fn=ImageDataset.collate)
    feats, targets = [], []
    model.eval()
    for batch in tqdm(loader, disable=not progress, desc="features", unit="batch"):
        x = batch.images.to(device)
        for view in (x, x.flip(3)):
            feats.append(model.backbone_features(view).cpu())
            targets.append(batch.labels)
    return torch.cat(feats), torch.cat(targets)


def _optimizer(model: CAMHeadModel, cfg: FinetuneConfig) -> torch.optim.SGD:
    """SGD on the head at ``lr`` and (unless frozen) on the backbone at ``lr x backbone_lr_scale``."""
    head = model.head_parameters()
    head_ids = {id(p) for p in head}
    groups = [{"params": head, "lr": cfg.lr}]
    if cfg.backbone_lr_scale > 0:
        groups.append({"params": [p for p in model.parameters() if id(p) not in head_ids],
                       "lr": cfg.lr * cfg.backbone_lr_scale})
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)


def _resume(out: Path, cfg: FinetuneConfig, model, opt, sched, log) -> tuple[int, list]:
    """Restore model, optimizer and schedule from ``out``; returns ``(epochs done, history)``."""
    ckpt = read_checkpoint(out)
    if not is_camloc_checkpoint(ckpt) or ckpt["arch"] != cfg.model or ckpt["pool"] != cfg.pool:
        raise CheckpointError(f"{out}: cannot resume: it is not a {cfg.model} {cfg.pool} fine-tune")
    model.load_state_dict(ckpt["state_dict"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    log(f"resuming {out} after epoch {ckpt['epoch']}")
    return ckpt["epoch"], list(ckpt["history"])


def _epoch_batches(model: CAMHeadModel, frozen: bool, cached, loader, batch_size: int) -> Iterable:
    """One epoch's batches: shuffled cached features (frozen backbone) or the image loader."""
    if not frozen:
        model.train()
        return loader
    model.eval()
    model.per_location.train()
    feats, labels = cached
    order = torch.randperm(len(labels))
    return [(feats[order[i:i + batch_size]], labels[order[i:i + batch_size]]) for i in range(0, len(order), batch_size)]


def finetune(cfg: FinetuneConfig, progress: bool = True, log: Callable[[str], None] = print) -> CAMHeadModel:
    """Fine-tune ``cfg.model`` with a retrofitted ``cfg.pool`` head; returns the trained model."""
    from tqdm import tqdm

    cfg.validate()
    torch.manual_seed(cfg.seed)
    device = default_device(cfg.device)
    cuda = device.type == "cuda"
    if cfg.amp and not cuda:
        log("note: --amp applies on CUDA only; training in float32 on the CPU")
    paths, labels, names = _train_items(cfg)
    model = build(cfg.model, cfg.pool, cfg.theta_tap, len(names), cfg.checkpoint, class_names=names).to(device)
    pre = model_config(model).preprocess
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    frozen = cfg.backbone_lr_scale == 0.0
    opt = _optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, lr_steps(cfg.epochs), 0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and cuda)
    out = Path(cfg.out)
    start_epoch, history = _resume(out, cfg, model, opt, sched, log) if cfg.resume and out.is_file() else (0, [])
    val = read_dataset(cfg.val_metadata) if cfg.val_metadata else None
    loss_fn = nn.CrossEntropyLoss()

    cached = loader = None
    if frozen:
        cached = _cache_features(model, paths, labels, pre, device, cfg.batch_size, progress)
    else:
        loader = torch.utils.data.DataLoader(
            ImageDataset(paths, train_transform(pre.mean, pre.std), labels), batch_size=cfg.batch_size,
            shuffle=True, num_workers=cfg.workers, drop_last=len(paths) > cfg.batch_size, pin_memory=cuda,
            persistent_workers=cfg.workers > 0, collate_fn=ImageDataset.collate)
    for epoch in range(start_epoch, cfg.epochs):
        t0, seen, total_loss = time.perf_counter(), 0, 0.0
        batches = _epoch_batches(model, frozen, cached, loader, cfg.batch_size)
        for batch in tqdm(batches, disable=not progress, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch"):
            x, y = batch if frozen else (batch.images, batch.labels)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if cuda and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=cfg.amp and cuda):
                logits = model.forward_head(model.per_location(x)) if frozen else model(x)
                loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            seen += len(y)
            total_loss += float(loss.detach()) * len(y)
        sched.step()
        secs = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "loss": total_loss / max(seen, 1), "seconds": round(secs, 2),
                  "images_per_second": round(seen / secs, 1) if secs else None}
        if val is not None:
            record.update(_validate(model, val, cfg))
        history.append(record)
        log(json.dumps(record))
        cfg.history = history
        state = _checkpoint(model, cfg, len(names), epoch + 1, opt, sched, history)
        atomic_write(out, lambda fh: torch.save(state, fh))
    model.eval()
    if cfg.register:
        target = registered_path(f"{cfg.model}_{cfg.pool}")
        with open(out, "rb") as src:
            atomic_write(target, lambda fh: shutil.copyfileobj(src, fh))
        log(f"registered as {cfg.model}_{cfg.pool} ({target})")
    return model


def lr_steps(epochs: int) -> list[int]:
    """Epochs after which the learning rate drops x0.1.

    The authors' 60/120/180 of 200 scaled to the run (30, 60 and 90 %) from 10 epochs on; shorter
    runs drop once, for their last epoch (none below 3 epochs): ours, for brief fine-tunes.
    """
    if epochs >= 10:
        return sorted({round(epochs * f) for f in (0.3, 0.6, 0.9)})
    return [epochs - 1] if epochs >= 3 else []


def _checkpoint(model: CAMHeadModel, cfg: FinetuneConfig, num_classes: int, epoch: int, opt, sched,
                history: list) -> dict[str, Any]:
    return {
        **describe(model_config(model).replace(theta_tap=cfg.theta_tap), num_classes),
        "train_args": json.loads(json.dumps(asdict(cfg), default=str)),
        "epoch": epoch,
        "history": history,
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
    }


def _validate(model: CAMHeadModel, val: list[Sample], cfg: FinetuneConfig) -> dict:
    from ..eval.evaluate import evaluate
    from ..eval.protocols import Settings

    res = evaluate(model, val, cfg.val_images or cfg.val_metadata, Settings("rethinking", ("cam", "nwc+pas")),
                   progress=False)
    return {"val_top1_cls": res.metrics["cam"]["top1_cls"], "val_gt_known_loc": res.metrics["cam"]["gt_known_loc"],
            "val_gt_known_loc_nwc_pas": res.metrics["nwc+pas"]["gt_known_loc"]}
