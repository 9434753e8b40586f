"""``camloc train``: one training loop for WSOL models, on one CPU, one GPU or many (torchrun / DDP).

What a run does, in order (each step a function below):

1. :func:`build_model`: a WSOL architecture (:mod:`camloc.models.wsol`) or any registered model with
   a retrofitted TAP/GAP head (:func:`camloc.models.retrofitting.retrofit`), ADL modules where asked;
2. the data (:mod:`camloc.train.data`): a wsolevaluation split or an ImageFolder through camloc's
   one Dataset, the recipe's augmentation (resize, random crop, flip), seeded per (epoch, sample) so
   that a run sharded over ranks or resumed after a kill sees exactly the same crops; a frozen
   backbone trains on cached feature maps instead (the ``camloc finetune`` preset);
3. :func:`param_groups`: the optimizer's groups by a named learning-rate rule: ``uniform``,
   ``new_layers`` (wsolevaluation: x10 on the new layers), ``backbone_lr`` (the backbone's rate
   scaled, 0 freezes it) or ``pretrained_grad`` (the authors: gradients of pretrained layers x0.1);
4. per epoch: HaS on the input where asked, AMP (bf16, or fp16 with a grad scaler), gradient
   accumulation, the schedule (:func:`lr_factor`), metrics reduced over ranks;
5. every ``eval_every`` epochs, camloc's evaluator on the validation (and test) split, the best checkpoint kept by the
   named selection rule, a resumable ``last.pt`` written atomically (model, optimizer, schedule, scaler, epoch, RNG
   states), a CSV log (and TensorBoard scalars where the ``tensorboard`` package is installed), and plots at the end;
   one short line per epoch to ``log`` and the full record to ``on_epoch`` (:mod:`camloc.train.logs`).

Checkpoints are self-describing: ``camloc localize --model RUN/best.pt`` and ``camloc.load_model``
rebuild them with no other argument. They record the run's resize and crop (``preprocess``, ``train_size``), so the
model is evaluated, during the run and after it, and localizes at that size
(:func:`camloc.models.config.at_train_size`). Only rank 0 writes.

Example:
    >>> import os, tempfile
    >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
    >>> from camloc.train import load_config, train     # a recipe instead: load_config("wsol_vgg16_cam", [...])
    >>> root, out = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> meta = write_synthetic(root, SyntheticSpec(classes=2, size=32, train=4, train_fullsup=1, test=1))
    >>> cfg = load_config(arch="smallcnn", pretrained=False, train_metadata=str(meta["train"]), train_images=root,
    ...                   resize=64, crop=56, batch_size=2, epochs=1, workers=0, device="cpu", out=out, plots=False)
    >>> type(train(cfg, progress=False, log=lambda line: None)).__name__, sorted(os.listdir(out))   # the model, files
    ('CAMHeadModel', ['best.pt', 'last.pt', 'log.csv'])
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..batch.torchrun import join_process_group, torchrun_env
from ..data.metadata import Sample, read_dataset
from ..models.checkpoints import describe, is_camloc_checkpoint, load_checkpoint, read_checkpoint, registered_path
from ..models.config import attach, model_config, trained_preprocess
from ..models.layers.adl import ADL
from ..models.layers.has import HideAndSeek
from ..models.registry import load_model
from ..models.retrofitting import CAMHeadModel, retrofit
from ..models.wsol import ARCHITECTURES, build_wsol, insert_after
from ..utils.atomic import atomic_write
from ..utils.device import default_device
from ..utils.errors import CheckpointError, UsageError
from .config import TrainConfig
from .data import EpochSampler, training_data, training_loader
from .logs import SELECTION_METRICS, epoch_line, legend, tensorboard, write_log
from .objective import split_metrics, training_objective


# -- the model ---------------------------------------------------------------------------------
def build_model(cfg: TrainConfig, num_classes: int, class_names: list[str] | None = None
                ) -> tuple[CAMHeadModel, tuple[str, ...], dict[str, Any]]:
    """The network a run trains, the name prefixes of its new layers, and how to rebuild it."""
    adl_args = {"adl_drop_rate": cfg.adl_drop_rate, "adl_gamma": cfg.adl_gamma}
    if cfg.arch in ARCHITECTURES:
        spec = ARCHITECTURES[cfg.arch]
        positions = list(cfg.adl_positions or spec.adl_positions)
        model = build_wsol(cfg.arch, num_classes, cfg.pool, cfg.theta_tap,
                           pretrained=cfg.pretrained and not cfg.checkpoint, adl=cfg.adl,
                           adl_positions=positions if cfg.adl else None, **adl_args)
        if cfg.checkpoint:
            load_checkpoint(model, cfg.checkpoint, cfg.arch)
        new_layers = tuple(spec.new_layers)
        builder = "wsol"
    else:
        base = load_model(cfg.arch, checkpoint=cfg.checkpoint, pretrained=cfg.pretrained)
        model = retrofit(base, cfg.pool, cfg.theta_tap, num_classes=num_classes, class_names=class_names,
                         input_size=(cfg.crop, cfg.crop))
        positions = list(cfg.adl_positions)
        if cfg.adl:
            if not positions:
                raise UsageError(f"adl=true with arch={cfg.arch}: name where ADL goes, e.g. "
                                 f"adl_positions=backbone.layer3,backbone.layer4 (module names of the model)")
            insert_after(model, positions, lambda: ADL(cfg.adl_drop_rate, cfg.adl_gamma))
        new_layers = ("per_location", "fc")
        builder = "retrofit"
    own = model_config(model)
    cfg_model = own.replace(
        name=cfg.register or f"{cfg.arch}_{cfg.pool}", arch=cfg.arch, pool=cfg.pool, theta_tap=cfg.theta_tap,
        class_names=tuple(class_names) if class_names else None,
        preprocess=trained_preprocess(own.preprocess, cfg.resize, cfg.crop), train_size=(cfg.resize, cfg.crop))
    attach(model, cfg_model)
    build = {"builder": builder, "adl": cfg.adl, "adl_positions": positions if cfg.adl else [], **adl_args}
    return model, new_layers, build


def param_groups(model: nn.Module, cfg: TrainConfig, new_layers: tuple[str, ...], trainable: set | None = None
                 ) -> list[dict[str, Any]]:
    """Optimizer groups by the named learning-rate rule (``trainable``: names to train, default all)."""
    new, old = [], []
    for name, p in model.named_parameters():
        if trainable is not None and name not in trainable:
            continue
        (new if name.startswith(new_layers) else old).append(p)
    if cfg.lr_rule == "new_layers":
        return [{"params": old, "lr": cfg.lr}, {"params": new, "lr": cfg.lr * cfg.new_layers_lr_ratio}]
    if cfg.lr_rule == "backbone_lr":
        groups = [{"params": new, "lr": cfg.lr}]
        return groups + ([{"params": old, "lr": cfg.lr * cfg.backbone_lr_scale}] if cfg.backbone_lr_scale > 0 else [])
    return [{"params": old + new, "lr": cfg.lr}]


def make_optimizer(model: nn.Module, cfg: TrainConfig, new_layers: tuple[str, ...], trainable: set | None = None
                   ) -> torch.optim.Optimizer:
    """The recipe's optimizer (SGD with momentum and Nesterov, or AdamW) over :func:`param_groups`."""
    groups = param_groups(model, cfg, new_layers, trainable)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """The learning-rate multiplier of an epoch (0-based) by the named schedule, after warm-up.

    ``step``: ``decay ** (e // step_size)``; ``wsol_step``: ``decay ** ((e + 1) // step_size)`` (wsolevaluation decays
    at the end of epoch ``step_size - 1``); ``multistep``: ``decay`` per milestone passed; ``cosine``: ``(1 + cos(pi e /
    epochs)) / 2``; warm-up (ours): linear ``(e + 1) / (warmup_epochs + 1)`` over the first ``warmup_epochs``.
    """
    if cfg.schedule == "step":
        f = cfg.lr_decay ** (epoch // cfg.step_size)
    elif cfg.schedule == "wsol_step":
        f = cfg.lr_decay ** ((epoch + 1) // cfg.step_size)
    elif cfg.schedule == "multistep":
        f = cfg.lr_decay ** sum(epoch >= m for m in cfg.milestones)
    elif cfg.schedule == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs))
    else:
        f = 1.0
    if epoch < cfg.warmup_epochs:
        f *= (epoch + 1) / (cfg.warmup_epochs + 1)
    return f


# -- evaluation and selection ------------------------------------------------------------------
def evaluate_splits(model: nn.Module, cfg: TrainConfig, splits: dict[str, tuple[list[Sample], str]]
                    ) -> dict[str, float]:
    """``split/protocol/variant/metric`` for each split: rethinking where it has boxes, wsolevaluation always.

    wsolevaluation gives MaxBoxAccV2 and PxAP (multi-label: each the mean over classes). The training split's labels
    are the model's classes by construction, so a low Top-1 Cls early in training is not the wrong-label-space
    warning ``evaluate`` gives (it is silenced here).
    """
    import warnings

    from ..eval.ablation import flatten
    from ..eval.evaluation import LabelSpaceWarning
    from ..eval.protocols import Settings

    out: dict[str, float] = {}
    variants = tuple(cfg.eval_variants)
    for split, (samples, images) in splits.items():
        protocols = (["rethinking"] if any(s.boxes for s in samples) else []) + ["wsolevaluation"]
        for protocol in protocols:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LabelSpaceWarning)
                rows = split_metrics(model, samples, images, Settings(protocol, variants), cfg.multilabel)
            flatten(out, f"{split}/{protocol}", rows)
    return out


# -- the loop ----------------------------------------------------------------------------------
class _Process:
    """This process's place in the run: rank, world, device, and whether it started the group."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.rank, self.world, _ = torchrun_env()
        wanted, self.started_group = join_process_group(cfg.device)
        self.device = default_device(wanted)
        self.main = self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.started_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _state(model, cfg, num_classes, build, epoch, history, best, opt, sched, scaler) -> dict[str, Any]:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        **describe(model_config(model), num_classes), "build": build,
        "train_config": json.loads(json.dumps(cfg.to_dict(), default=str)),
        "epoch": epoch, "history": history, "best": best, "selection": cfg.selection,
        "state_dict": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict(), "rng": rng,
    }


def _resume(cfg: TrainConfig, model, opt, sched, scaler, log) -> tuple[int, list, dict]:
    """Restore a run from ``last.pt``: ``(epochs done, history, best)``."""
    path = cfg.last_path
    ckpt = read_checkpoint(path)
    saved = ckpt.get("train_config") or {}
    same = ({k: saved.get(k) for k in ("arch", "pool", "has", "adl")}
            == {k: getattr(cfg, k) for k in ("arch", "pool", "has", "adl")})
    if not is_camloc_checkpoint(ckpt) or not same:
        raise CheckpointError(f"{path}: cannot resume: it is not a run of {cfg.arch} with pool={cfg.pool}, "
                              f"has={cfg.has}, adl={cfg.adl}; start a new run in another out folder")
    model.load_state_dict(ckpt["state_dict"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if "cuda" in ckpt["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    log(f"resuming {path} after epoch {ckpt['epoch']}")
    return ckpt["epoch"], list(ckpt["history"]), dict(ckpt.get("best") or {})


def train(cfg: TrainConfig, progress: bool = True, log: Callable[[str], None] = print,
          on_epoch: Callable[[dict[str, Any]], None] | None = None) -> CAMHeadModel:
    """Run a training recipe (see the module docs); returns the trained model in eval mode.

    Args:
        cfg: the run's configuration.
        progress: a progress bar over each epoch's batches (it goes away when the epoch ends).
        log: takes the run's lines: a legend, then one short line per epoch (:func:`camloc.train.logs.epoch_line`),
            then what was kept.
        on_epoch: takes each epoch's full record (every metric, as the CSV log has it) on rank 0.
    """
    from tqdm import tqdm

    cfg.validate()
    proc = _Process(cfg)
    modes = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark, torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, proc, progress, log, tqdm, on_epoch)
    finally:  # the process-wide switches a run sets are the caller's again afterwards
        torch.use_deterministic_algorithms(modes[0])
        torch.backends.cudnn.benchmark = modes[1]
        torch.set_num_threads(modes[2])
        proc.close()


def _train(cfg: TrainConfig, proc: _Process, progress: bool, log, tqdm, on_epoch) -> CAMHeadModel:
    """The run itself: its setup, then each epoch and its end, then the last word (rank 0)."""
    run = _setup(cfg, proc, progress, log)
    if proc.main and run.start < cfg.epochs:
        log(legend(cfg, run.log_path))
    for epoch in range(run.start, cfg.epochs):
        record = _train_epoch(run, cfg, proc, epoch, progress, tqdm)
        _end_epoch(run, cfg, proc, epoch, record, log, on_epoch)
    if run.board is not None:
        run.board.close()
    if run.skipped and proc.main:
        log(f"note: {run.skipped} unreadable training images were skipped (each epoch counts them again)")
    run.model.eval()
    if proc.main:
        _finish(cfg, run.model, run.history, run.best, run.best_path, log)
    proc.barrier()
    return run.model


@dataclasses.dataclass
class _Run:
    """A run under way: what its epochs train, with what, and where the end of each epoch writes."""

    model: CAMHeadModel
    train_module: nn.Module
    num_classes: int
    build: dict[str, Any]
    splits: dict[str, tuple[list[Sample], str]]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    sampler: EpochSampler
    loader: torch.utils.data.DataLoader
    hide_and_seek: HideAndSeek | None
    pretrained: list[nn.Parameter]
    objective: Any  # SingleLabel or MultiLabel (camloc.train.objective)
    start: int
    history: list[dict[str, Any]]
    best: dict[str, Any]
    best_path: Path | None
    log_path: Path
    board: Any
    skipped: int = 0


def _setup(cfg: TrainConfig, proc: _Process, progress: bool, log: Callable[[str], None]) -> _Run:
    """Seed and switches, the data and the model, the optimizer and schedule, a resumed state, the loader."""
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif proc.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    paths, labels, names, objective = training_objective(cfg)
    model, new_layers, build = build_model(cfg, len(names), names)
    model = model.to(proc.device)
    splits = _evaluation_splits(cfg)
    data, module, collate, trainable = training_data(cfg, model, paths, labels, proc.device, progress and proc.main)
    opt = make_optimizer(model, cfg, new_layers, trainable)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(cfg, e))
    scaler = torch.amp.GradScaler(proc.device.type, enabled=cfg.amp == "fp16")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    start, history, best = 0, [], {}
    if cfg.resume and cfg.last_path.is_file():
        start, history, best = _resume(cfg, model, opt, sched, scaler, log)
    train_module = module
    if proc.world > 1:
        cuda = proc.device.type == "cuda"
        train_module = nn.parallel.DistributedDataParallel(module, device_ids=[proc.device.index] if cuda else None)
    sampler, loader = training_loader(cfg, data, collate, proc.rank, proc.world, pin_memory=proc.device.type == "cuda")
    hide_and_seek = HideAndSeek(cfg.has_patch, cfg.has_drop_rate).train() if cfg.has else None
    pretrained = [p for n, p in model.named_parameters() if not n.startswith(new_layers)]
    out = Path(cfg.out)
    best_path = None if cfg.last_file else out / "best.pt"
    log_path = cfg.last_path.with_suffix(".log.csv") if cfg.last_file else out / "log.csv"
    board = tensorboard(log_path.parent / "tensorboard") if proc.main and cfg.plots else None
    return _Run(model, train_module, len(names), build, splits, opt, sched, scaler, amp_dtype, sampler, loader,
                hide_and_seek, pretrained, objective, start, history, best, best_path, log_path, board)


def _evaluation_splits(cfg: TrainConfig) -> dict[str, tuple[list[Sample], str]]:
    """``{split: (samples, image root)}`` of the validation and test splits the recipe names."""
    splits = {}
    for split in ("val", "test"):
        meta = getattr(cfg, f"{split}_metadata")
        if meta:
            splits[split] = (read_dataset(meta, multilabel=cfg.multilabel), getattr(cfg, f"{split}_images") or meta)
    return splits


def _train_epoch(run: _Run, cfg: TrainConfig, proc: _Process, epoch: int, progress: bool, tqdm) -> dict[str, Any]:
    """One pass over the training data (0-based ``epoch``); returns its record, reduced over ranks."""
    run.sampler.set_epoch(epoch)
    run.model.train()
    if cfg.freeze_backbone:
        run.model.backbone.eval()
    t0, sums = time.perf_counter(), [0.0] * run.objective.width  # loss x n, correct, n (and F1's counts)
    bar = tqdm(total=len(run.loader), disable=not (progress and proc.main), desc=f"epoch {epoch + 1}/{cfg.epochs}",
               unit="batch", leave=False)
    for step, batch in enumerate(run.loader):
        inputs = _batch_inputs(run, cfg, proc, batch)
        if inputs is None:
            continue
        x, y = inputs
        logits, loss = _step(run, cfg, proc, step, x, y)
        sums = [a + b for a, b in zip(sums, run.objective.tally(logits, loss, y), strict=True)]
        bar.update(1)
    bar.close()
    run.sched.step()
    summary, seen = run.objective.summary(proc.all_sum(sums))
    secs = time.perf_counter() - t0
    return {
        "epoch": epoch + 1, **summary,
        "lr": run.opt.param_groups[0]["lr"], "seconds": round(secs, 2),
        "images_per_second": round(seen / secs, 1) if secs else None}


def _batch_inputs(run: _Run, cfg: TrainConfig, proc: _Process, batch: Any
                  ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A batch's inputs and labels on the device (HaS applied where asked); None when none could be read."""
    if cfg.freeze_backbone:
        x, y = batch
    else:
        run.skipped += len(batch.items) - len(batch.good)
        if batch.images is None:
            return None
        x, y = batch.images, batch.labels
    x, y = x.to(proc.device, non_blocking=True), run.objective.targets(y.to(proc.device, non_blocking=True))
    if cfg.channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    if run.hide_and_seek is not None:
        x = run.hide_and_seek(x)
    return x, y


def _step(run: _Run, cfg: TrainConfig, proc: _Process, step: int, x: torch.Tensor, y: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward of one batch, the optimizer's step where an accumulation ends: ``(logits, loss)``."""
    boundary = (step + 1) % cfg.accumulate == 0 or step + 1 == len(run.loader)
    sync = contextlib.nullcontext() if boundary or proc.world == 1 else run.train_module.no_sync()
    with sync:
        with torch.autocast(proc.device.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
            logits = run.train_module(x)
        loss = run.objective.loss_fn(logits.float(), y)
        run.scaler.scale(loss / cfg.accumulate).backward()
    if boundary:
        if cfg.lr_rule == "pretrained_grad":
            for p in run.pretrained:
                if p.grad is not None:
                    p.grad.mul_(cfg.pretrained_grad_scale)
        run.scaler.step(run.opt)
        run.scaler.update()
        run.opt.zero_grad(set_to_none=True)
    return logits, loss


def _end_epoch(run: _Run, cfg: TrainConfig, proc: _Process, epoch: int, record: dict[str, Any],
               log: Callable[[str], None], on_epoch: Callable[[dict[str, Any]], None] | None) -> None:
    """Rank 0: the evaluation when due, the epoch's line and record, the selection, the checkpoints, the log."""
    evaluate_now = (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs
    if proc.main:
        if evaluate_now and run.splits:
            t0 = time.perf_counter()
            record.update(evaluate_splits(run.model, cfg, run.splits))
            record["eval_seconds"] = round(time.perf_counter() - t0, 2)
        run.history.append(record)
        log(epoch_line(record, cfg))
        if on_epoch is not None:
            on_epoch(record)
        improved = _select(cfg, record, run.best, epoch + 1)
        state = _state(run.model, cfg, run.num_classes, run.build, epoch + 1, run.history, run.best, run.opt,
                       run.sched, run.scaler)
        atomic_write(cfg.last_path, lambda fh: torch.save(state, fh))
        if run.best_path is not None and improved:
            shutil.copyfile(cfg.last_path, run.best_path)
        write_log(run.log_path, run.history)
        if run.board is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    run.board.add_scalar(key, value, epoch + 1)
            run.board.flush()
    else:
        run.history.append(record)
    proc.barrier()


def _select(cfg: TrainConfig, record: dict[str, Any], best: dict[str, Any], epoch: int) -> bool:
    """Update ``best`` by the selection rule; True when this epoch is the new best."""
    if cfg.selection == "last" or cfg.selection not in SELECTION_METRICS:
        best.update(epoch=epoch, metric="last", value=None)
        return True
    key = "/".join(SELECTION_METRICS[cfg.selection])
    if key not in record:
        if best.get("value") is None:  # nothing measured yet (no split, or no evaluation): keep the latest
            best.update(epoch=epoch, metric=f"{key} (not measured: the latest epoch is kept)", value=None)
            return True
        return False
    if best.get("value") is None or record[key] > best["value"]:
        best.update(epoch=epoch, metric=key, value=record[key])
        return True
    return False


def _finish(cfg: TrainConfig, model: nn.Module, history: list, best: dict, best_path: Path | None, log) -> None:
    """Plots, the registration under a name, and the last word on what was kept."""
    if cfg.plots and history:
        from ..viz.training import save_training_plots

        for path in save_training_plots(history, Path(cfg.out)):
            log(f"wrote {path}")
    kept = best_path if best_path is not None and best_path.is_file() else cfg.last_path
    if best:
        log(f"kept epoch {best.get('epoch')} by selection '{cfg.selection}' ({best.get('metric')}"
            + (f" = {best['value']:.2f}" if best.get("value") is not None else "") + f"): {kept}")
    if cfg.register:
        target = registered_path(cfg.register)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(kept, "rb") as src:
            atomic_write(target, lambda fh: shutil.copyfileobj(src, fh))
        log(f"registered as {cfg.register} ({target})")
