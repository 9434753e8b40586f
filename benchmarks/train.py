"""Training speed: ``camloc train`` against a plain torch loop, and the cost of HaS and ADL, in one run.

Both loops train the same model (built once by camloc, copied), on the same images, with the same
DataLoader (camloc's Dataset and the recipe's augmentation, same batch and workers), the same SGD,
for the same number of images; each configuration runs ``--repeats`` epochs per round, the rounds
interleave the configurations, and the best epoch's images per second is kept. Images: $CAMLOC_DATA/cub-train where present, else generated noise.

    python benchmarks/train.py [--arch resnet18] [--images 96] [--batch-size 16] [--crop 160] [--device cpu]
                               [--amp none|bf16|fp16] [--channels-last] [--workers 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from camloc.data.dataset import ImageDataset
from camloc.data.location import data_root
from camloc.data.transforms import train_transform
from camloc.models.config import model_config
from camloc.train.config import TrainConfig
from camloc.train.loop import build_model, train

DATA = data_root()
CUB = None if DATA is None else DATA / "cub-train"


def write_split(folder: Path, n: int, classes: int = 4) -> Path:
    """A wsolevaluation split of ``n`` images: real CUB photos where present, else noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    if CUB is not None and (CUB / "image_ids.txt").is_file():
        ids = (CUB / "image_ids.txt").read_text().split()[:n]
        for i, image_id in enumerate(ids):
            target = folder / f"{i}.jpg"
            target.write_bytes((CUB / image_id).read_bytes())
            rows.append((target.name, i % classes))
    else:
        rng = np.random.default_rng(0)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
            rows.append((f"{i}.jpg", i % classes))
    sizes = [Image.open(folder / r[0]).size for r in rows]
    (folder / "image_ids.txt").write_text("\n".join(r[0] for r in rows))
    (folder / "class_labels.txt").write_text("\n".join(f"{r[0]},{r[1]}" for r in rows))
    (folder / "image_sizes.txt").write_text("\n".join(f"{r[0]},{w},{h}" for r, (w, h) in zip(rows, sizes, strict=True)))
    (folder / "localization.txt").write_text("\n".join(f"{r[0]},0,0,{w},{h}" for r, (w, h) in zip(rows, sizes, strict=True)))
    return folder


def plain_loop(model: nn.Module, split: Path, cfg: TrainConfig, device: torch.device) -> float:
    """Images per second of the best of ``repeats`` epochs of a plain torch training loop."""
    ids = (split / "image_ids.txt").read_text().split()
    labels = [int(line.split(",")[1]) for line in (split / "class_labels.txt").read_text().split()]
    pre = model_config(model).preprocess
    data = ImageDataset([split / i for i in ids], train_transform(pre.mean, pre.std, cfg.resize, cfg.crop), labels)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.workers,
                                         collate_fn=ImageDataset.collate, persistent_workers=cfg.workers > 0,
                                         drop_last=True, pin_memory=device.type == "cuda")
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    best = 0.0
    for _ in range(cfg.epochs):
        model.train()
        t0, seen = time.perf_counter(), 0
        for batch in loader:
            x, y = batch.images.to(device, non_blocking=True), batch.labels.to(device, non_blocking=True)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model(x).float(), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            seen += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, seen / (time.perf_counter() - t0))
    return best


def layer_costs(base: TrainConfig, positions: list[str], device: torch.device) -> dict[str, float]:
    """Milliseconds per training step of HaS, of the ADL modules, and of the whole forward + backward
    (the same batch and model), measured directly: end-to-end epochs on a shared CPU are noisier
    than these layers cost."""
    from camloc.models.layers.adl import ADL
    from camloc.models.layers.has import HideAndSeek

    def best_ms(fn, n: int = 5) -> float:
        fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return 1000 * min(times)

    model, _, _ = build_model(base.replace(adl=True, adl_positions=positions), 4)
    model = model.to(device).train()
    x = torch.randn(base.batch_size, 3, base.crop, base.crop, device=device)
    inputs: list[torch.Tensor] = []
    adls = [m for m in model.modules() if isinstance(m, ADL)]
    handles = [m.register_forward_hook(lambda mod, a, out: inputs.append(a[0].detach().requires_grad_())) for m in adls]
    try:
        model(x)  # records the ADL inputs of this batch (the benchmark's own model)
    finally:
        for h in handles:
            h.remove()
    has = HideAndSeek(base.has_patch, base.has_drop_rate).train()
    return {
        "step (forward + backward)": best_ms(lambda: model(x).sum().backward()),
        "HaS": best_ms(lambda: has(x)),
        "ADL (all positions)": best_ms(lambda: sum(a(i).sum() for a, i in zip(adls, inputs, strict=True)).backward()),
    }


def camloc_rate(cfg: TrainConfig) -> float:
    history = []
    train(cfg, progress=False, log=lambda m: None, on_epoch=history.append)
    return max(h["images_per_second"] for h in history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--repeats", type=int, default=2, help="Epochs per run (the best epoch counts).")
    parser.add_argument("--rounds", type=int, default=2, help="Interleaved rounds of all configurations.")
    parser.add_argument("--adl-positions", default="backbone.layer3.0,backbone.layer4.0,backbone.layer4.1",
                        help="Where ADL goes in --arch (module names); the default suits resnet18.")
    parser.add_argument("--json", help="Also write the numbers to this JSON file.")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        split = write_split(Path(tmp) / "split", args.images)
        base = TrainConfig(arch=args.arch, pretrained=False, train_metadata=str(split), batch_size=args.batch_size,
                           crop=args.crop, resize=max(args.crop, round(args.crop * 256 / 224)), workers=args.workers,
                           epochs=args.repeats, schedule="constant", amp=args.amp, channels_last=args.channels_last,
                           device=args.device, eval_every=10_000, selection="last", plots=False,
                           out=str(Path(tmp) / "run"), lr=0.01)
        model, _, _ = build_model(base, 4)
        runs = {
            "plain torch loop": lambda: plain_loop(copy.deepcopy(model).to(device), split, base, device),
            "camloc train (cam)": lambda: camloc_rate(base),
            "camloc train (HaS-32)": lambda: camloc_rate(base.replace(has=True, out=str(Path(tmp) / "has"))),
            "camloc train (ADL)": lambda: camloc_rate(base.replace(adl=True, adl_positions=args.adl_positions.split(","),
                                                                  out=str(Path(tmp) / "adl"))),
        }
        costs = layer_costs(base, args.adl_positions.split(","), device)
        rates = {name: 0.0 for name in runs}
        for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits every configuration alike
            for name, run in runs.items():
                rates[name] = max(rates[name], run())
    print(f"{args.arch}, random init, {args.images} images ({'CUB photos' if CUB is not None and CUB.is_dir() else 'noise'}), "
          f"crop {args.crop}, batch {args.batch_size}, {args.workers} workers, {args.device}, amp {args.amp}"
          f"{', channels_last' if args.channels_last else ''}, torch {torch.__version__}; best epoch of {args.rounds} x {args.repeats}")
    for name, rate in rates.items():
        print(f"  {name:24s} {rate:7.1f} images/s")
    plain, cam = rates["plain torch loop"], rates["camloc train (cam)"]
    print(f"  camloc / plain: {cam / plain:.2f}x;  HaS cost: {100 * (cam / rates['camloc train (HaS-32)'] - 1):+.1f} %;"
          f"  ADL cost: {100 * (cam / rates['camloc train (ADL)'] - 1):+.1f} %")
    step = costs["step (forward + backward)"]
    print(f"  per step, measured directly: forward + backward {step:.1f} ms; HaS {costs['HaS']:.2f} ms "
          f"({100 * costs['HaS'] / step:.2f} %); ADL {costs['ADL (all positions)']:.2f} ms "
          f"({100 * costs['ADL (all positions)'] / step:.2f} %)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "images_per_second": rates, "ms_per_step": costs},
                                              indent=2))


if __name__ == "__main__":
    main()
