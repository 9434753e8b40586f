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
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from .atomic import atomic_write
from .errors import CheckpointError, UsageError
from .imaging import Preprocess, load_image, preprocess_for
from .metadata import Sample, read_dataset
from .registry import default_device
from .tap import CAMHeadModel, retrofit

FORMAT = "camloc-finetune-1"


def camloc_home() -> Path:
    """The user cache folder: ``$CAMLOC_HOME`` or ``~/.cache/camloc``."""
    return Path(os.environ.get("CAMLOC_HOME", Path.home() / ".cache" / "camloc"))


def registered_path(name: str) -> Path:
    """Where a fine-tuned ``<arch>_<pool>`` model is registered."""
    return camloc_home() / "models" / f"{name.replace('/', '--')}.pth"


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


class _Images(torch.utils.data.Dataset):
    """(image tensor, label) pairs through camloc's robust decoder."""

    def __init__(self, items: list[tuple[str, int]], transform: Callable) -> None:
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        return self.transform(load_image(path)), label


def _train_transform(pre: Preprocess):
    import torchvision.transforms as T

    return T.Compose([
        T.Resize((256, 256), interpolation=T.InterpolationMode.BILINEAR),
        T.RandomCrop(224),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(pre.mean, pre.std),
    ])


def _train_items(cfg: FinetuneConfig) -> tuple[list[tuple[str, int]], list[str]]:
    """Training images with labels, and class names (folder names where they are consistent)."""
    if cfg.image_folder:
        from torchvision.datasets import ImageFolder

        folder = ImageFolder(cfg.image_folder)
        return [(p, c) for p, c in folder.samples], list(folder.classes)
    if not cfg.metadata:
        raise UsageError("give --metadata DIR (wsolevaluation layout) or --image-folder DIR")
    samples = read_dataset(cfg.metadata)
    root = Path(cfg.images or cfg.metadata)
    items = [(str(root / s.image_id), s.label) for s in samples]
    return items, _class_names(samples)


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
          pretrained: bool = True) -> CAMHeadModel:
    """The retrofitted model a fine-tune trains (pretrained backbone, new head)."""
    from .registry import load_model

    base = load_model(arch, checkpoint=checkpoint, pretrained=pretrained)
    model = retrofit(base, pool, theta_tap, num_classes=num_classes)
    model.camloc_preprocess = preprocess_for(base)
    return model


def load_finetuned(path: str | os.PathLike, name: Optional[str] = None, loaded: Any = None) -> CAMHeadModel:
    """Rebuild a fine-tuned model from its self-describing checkpoint (``weights_only=True``).

    ``loaded`` is the file's content when the caller has read it already.
    """
    from .registry import read_checkpoint

    ckpt = read_checkpoint(path) if loaded is None else loaded
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a camloc fine-tune checkpoint; make one with camloc finetune")
    model = build(ckpt["arch"], ckpt["pool"], ckpt["theta_tap"], ckpt["num_classes"], pretrained=False)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: does not fit {ckpt['arch']} with a {ckpt['pool']} head ({str(exc).splitlines()[0]})") from exc
    model.camloc_class_names = tuple(ckpt["class_names"])
    model.camloc_preprocess = Preprocess(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["preprocess"].items()})
    model.camloc_name = name or f"{ckpt['arch']}_{ckpt['pool']}"
    return model.eval()


def is_finetune_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


@torch.no_grad()
def _cache_features(model: CAMHeadModel, items, pre: Preprocess, device, batch_size: int, progress: bool):
    """Backbone feature maps of the center crop and its mirror image, for every training image."""
    from tqdm import tqdm

    crop = Preprocess((224, 224), "crop", (256, 256), pre.mean, pre.std, "bilinear")
    feats, labels = [], []
    model.eval()
    for start in tqdm(range(0, len(items), batch_size), disable=not progress, desc="features", unit="batch"):
        chunk = items[start : start + batch_size]
        x = torch.stack([crop(load_image(p))[0] for p, _ in chunk]).to(device)
        for view in (x, x.flip(3)):
            feats.append(model.backbone_features(view).cpu())
            labels.append(torch.tensor([c for _, c in chunk]))
    return torch.cat(feats), torch.cat(labels)


def finetune(cfg: FinetuneConfig, progress: bool = True, log: Callable[[str], None] = print) -> CAMHeadModel:
    """Fine-tune ``cfg.model`` with a retrofitted ``cfg.pool`` head; returns the trained model."""
    from tqdm import tqdm

    if cfg.pool not in ("tap", "gap"):
        raise UsageError("pool must be 'tap' or 'gap'")
    if not 0.0 <= cfg.backbone_lr_scale <= 1.0:
        raise UsageError("backbone_lr_scale must be in [0, 1]")
    torch.manual_seed(cfg.seed)
    device = torch.device(default_device(cfg.device))
    cuda = device.type == "cuda"
    if cfg.amp and not cuda:
        log("note: --amp applies on CUDA only; training in float32 on the CPU")
    items, names = _train_items(cfg)
    model = build(cfg.model, cfg.pool, cfg.theta_tap, len(names), cfg.checkpoint).to(device)
    pre = model.camloc_preprocess
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    frozen = cfg.backbone_lr_scale == 0.0
    head = model.head_parameters()
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    groups = [{"params": head, "lr": cfg.lr}]
    if not frozen:
        groups.append({"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale})
    opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    steps = lr_steps(cfg.epochs)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, steps, 0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and cuda)
    start_epoch, history = 0, []
    out = Path(cfg.out)
    if cfg.resume and out.is_file():
        from .registry import read_checkpoint

        ckpt = read_checkpoint(out)
        if not is_finetune_checkpoint(ckpt) or ckpt["arch"] != cfg.model or ckpt["pool"] != cfg.pool:
            raise CheckpointError(f"{out}: cannot resume: it is not a {cfg.model} {cfg.pool} fine-tune")
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start_epoch, history = ckpt["epoch"], list(ckpt["history"])
        log(f"resuming {out} after epoch {start_epoch}")
    val = read_dataset(cfg.val_metadata) if cfg.val_metadata else None
    loss_fn = nn.CrossEntropyLoss()

    if frozen:
        feats, labels = _cache_features(model, items, pre, device, cfg.batch_size, progress)
    else:
        loader = torch.utils.data.DataLoader(
            _Images(items, _train_transform(pre)), batch_size=cfg.batch_size, shuffle=True,
            num_workers=cfg.workers, drop_last=len(items) > cfg.batch_size, pin_memory=cuda,
            persistent_workers=cfg.workers > 0)
    for epoch in range(start_epoch, cfg.epochs):
        t0, seen, total_loss = time.perf_counter(), 0, 0.0
        if frozen:
            model.eval()
            model.per_location.train()
            order = torch.randperm(len(labels))
            batches = [(feats[order[i:i + cfg.batch_size]], labels[order[i:i + cfg.batch_size]])
                       for i in range(0, len(order), cfg.batch_size)]
        else:
            model.train()
            batches = loader
        for x, y in tqdm(batches, disable=not progress, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch"):
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
        state = _checkpoint(model, cfg, names, pre, epoch + 1, opt, sched, history)
        atomic_write(out, lambda fh: torch.save(state, fh))
    model.eval()
    model.camloc_class_names = tuple(names)
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


def _checkpoint(model, cfg: FinetuneConfig, names, pre: Preprocess, epoch, opt, sched, history) -> dict:
    return {
        "format": FORMAT,
        "arch": cfg.model,
        "pool": cfg.pool,
        "theta_tap": cfg.theta_tap,
        "num_classes": len(names),
        "class_names": list(names),
        "preprocess": pre.to_dict(),
        "train_args": json.loads(json.dumps(asdict(cfg), default=str)),
        "epoch": epoch,
        "history": history,
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
    }


def _validate(model: CAMHeadModel, val: list[Sample], cfg: FinetuneConfig) -> dict:
    from .evaluate import Settings, evaluate

    res = evaluate(model, val, cfg.val_images or cfg.val_metadata, Settings("rethinking", ("cam", "nwc+pas")),
                   progress=False)
    return {"val_top1_cls": res.metrics["cam"]["top1_cls"], "val_gt_known_loc": res.metrics["cam"]["gt_known_loc"],
            "val_gt_known_loc_nwc_pas": res.metrics["nwc+pas"]["gt_known_loc"]}
