"""`camloc localize` throughput against a plain timm inference loop, same DataLoader, one run.

Both decode and preprocess the same real JPEGs ($CAMLOC_DATA) in DataLoader workers with the same
batch size and worker count, run efficientnet_lite0, and write one JSON line per image (camloc: the
full result with boxes; plain: the top-1 class). Reports images per second and their ratio; each
is measured twice, interleaved, and the better run kept.

    python benchmarks/pipeline.py [--folder $CAMLOC_DATA/imagenet-val/images] [--images 320] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

import camloc
from camloc.batch.pipeline import RunOptions, run
from camloc.data.dataset import ImageDataset
from camloc.data.inputs import expand_inputs
from camloc.data.location import data_root, missing_data


def plain_loop(model, paths, pre, batch_size, workers, device, sink) -> None:
    """What a user would write: decode, forward (input in the model's dtype), top-1, one JSON line each."""
    dtype = next(model.parameters()).dtype
    data = ImageDataset(paths, pre, errors="return")
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, num_workers=workers,
                                         collate_fn=ImageDataset.collate, pin_memory=torch.device(device).type == "cuda")
    with torch.inference_mode():
        for batch in loader:
            top = model(batch.images.to(device, dtype=dtype, non_blocking=True)).float().softmax(1).max(1)
            for item, c, s in zip(batch.good, top.indices.tolist(), top.values.tolist(), strict=True):
                sink.write(json.dumps({"image": paths[item.index], "class": c, "score": s}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = data_root()
    parser.add_argument("--folder", default=None if data is None else str(data / "imagenet-val" / "images"),
                        help="the photos [default: $CAMLOC_DATA/imagenet-val/images]")
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.folder is None:
        parser.exit(2, f"{parser.prog}: error: {missing_data('--folder')}\n")
    paths = expand_inputs([args.folder])[: args.images]
    model = camloc.load_model().to(args.device)
    loc = camloc.Localizer(model)
    opts = RunOptions(batch_size=args.batch_size, workers=args.workers, progress=False)
    with open(os.devnull, "w") as sink:
        run(loc, paths[: args.batch_size], opts, lambda d: sink.write(json.dumps(d) + "\n"))  # warm-up
        times = {"plain timm loop": [], "camloc localize": []}
        for _ in range(2):
            t0 = time.perf_counter()
            plain_loop(model, paths, loc.preprocess, args.batch_size, args.workers, args.device, sink)
            times["plain timm loop"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run(loc, paths, opts, lambda d: sink.write(json.dumps(d) + "\n"))
            times["camloc localize"].append(time.perf_counter() - t0)
    print(f"{len(paths)} real JPEGs from {args.folder}; efficientnet_lite0 on {args.device}; batch {args.batch_size}, "
          f"{args.workers} decoding workers, torch {torch.get_num_threads()} threads")
    rates = {k: len(paths) / min(v) for k, v in times.items()}
    for k, r in rates.items():
        print(f"  {k:18s} {r:7.1f} images/s")
    print(f"  ratio camloc / plain: {rates['camloc localize'] / rates['plain timm loop']:.2f}x")


if __name__ == "__main__":
    main()
