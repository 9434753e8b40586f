"""What the full runs of the paper's tables cost: every shipped recipe's training throughput, measured, and
the hours its full run would take at that throughput.

For each recipe, the model it builds (random init: nothing is downloaded) takes training steps
(forward, backward, the recipe's optimizer and learning-rate groups, as ``camloc train`` makes them) at
the recipe's crop and a fixed batch on ``--device``,
after a warm-up step; recipes that build the same network (architecture, ADL, crop) share one
measurement (the pooling and HaS cost nothing measurable: see ``benchmarks/train.py``). The FLOPs of
one training image are counted with ``torch.utils.flop_counter``. Full-run hours = epochs x
training images / (images per second) / 3600 for the model alone: no data loading, no evaluation,
so a lower bound. Training images: CUB-200-2011 5,994, ImageNet-1k 1,281,167; recipes whose name
names no dataset (``wsol_*``) are priced on CUB.

    python benchmarks/recipes.py [--device cpu] [--batch 4] [--steps 2] [--amp none|bf16] [--only vgg16_tap_cub ...]

Prints a Markdown table; ``--json PATH`` also writes the rows.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from camloc.train.config import list_recipes, load_config
from camloc.train.loop import build_model, make_optimizer
from camloc.utils.atomic import atomic_write_text

TRAIN_IMAGES = {"cub": 5994, "imagenet": 1_281_167}
CLASSES = {"cub": 200, "imagenet": 1000}


def dataset_of(name: str) -> str:
    return "imagenet" if "imagenet" in name else "cub"


def measure(cfg, classes: int, device: torch.device, batch: int, steps: int, amp: str) -> tuple[float, float]:
    """(training images per second, training GFLOPs per image) of the recipe's network."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model, new_layers, _ = build_model(cfg, classes)
    model = model.to(device).train()
    opt = make_optimizer(model, cfg.replace(lr=1e-6), new_layers)
    x = torch.randn(batch, 3, cfg.crop, cfg.crop, device=device)
    y = torch.randint(0, classes, (batch,), device=device)
    dtype = {"bf16": torch.bfloat16}.get(amp)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()  # also the warm-up
    flops = counter.get_total_flops() / batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0), flops / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--amp", default="none", choices=["none", "bf16"])
    p.add_argument("--only", nargs="*", help="recipe names (default: every shipped recipe)")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    device = torch.device(args.device)
    cache: dict[tuple, tuple[float, float]] = {}
    rows = []
    for name in args.only or list_recipes():
        cfg = load_config(name, check=False, pretrained=False)
        data = dataset_of(name)
        key = (cfg.arch, cfg.adl, tuple(cfg.adl_positions), cfg.crop, data)
        if key not in cache:
            cache[key] = measure(cfg, CLASSES[data], device, args.batch, args.steps, args.amp)
        ips, gflops = cache[key]
        images = cfg.epochs * TRAIN_IMAGES[data]
        rows.append({"recipe": name, "arch": cfg.arch, "adl": cfg.adl, "has": cfg.has, "pool": cfg.pool, "dataset": data,
                     "epochs": cfg.epochs, "crop": cfg.crop, "images_per_second": round(ips, 2),
                     "train_gflops_per_image": round(gflops, 1), "hours": round(images / ips / 3600, 1),
                     "pflop_total": round(images * gflops / 1e6, 1), "device": str(device), "amp": args.amp})
        print(f"{name}: {ips:.2f} img/s, {gflops:.1f} GFLOP/img", flush=True)
    print(f"\nBatch {args.batch}, {args.steps} timed steps, {args.amp} on {device} "
          f"({torch.get_num_threads()} threads):\n")
    print("| recipe | dataset | epochs | train GFLOP / image | images / s | hours (model only) | total PFLOP |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['recipe']} | {r['dataset']} | {r['epochs']} | {r['train_gflops_per_image']} | "
              f"{r['images_per_second']} | {r['hours']:,} | {r['pflop_total']:,} |")
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
