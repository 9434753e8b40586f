"""Cost of the automatic threshold standards (otsu, li, triangle, yen) against PaS, in one run.

Times :func:`camloc.cam.boxes.thresholds` on one batch of CAM-like uint8 maps (random 7 x 7
activations, half of them ReLU'd, bicubic-upsampled to 224 x 224 and min-max quantised, as
:func:`camloc.cam.boxes.foreground` makes them), for PaS (0.35 x p90), the max and each automatic
rule; then scikit-image's ``threshold_<rule>`` called map by map on the same maps, for reference.
Each line gives the batch time (median of ``--repeat`` runs), the time per map and the ratio to
PaS. It also checks that the batched thresholds equal scikit-image's on every map.

    python benchmarks/thresholds.py [--maps 1000] [--size 224] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch

from camloc.cam.boxes import thresholds, to_uint8, upsample
from camloc.cam.rules import ThresholdRule, make_standard
from camloc.utils.defaults import ADAPTIVE_RULES


def cam_like_maps(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` x ``size`` x ``size`` uint8 maps made the way the pipeline makes them from raw CAMs."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(n, 7, 7, generator=g)
    raw[: n // 2] = raw[: n // 2].relu()
    return to_uint8(upsample(raw, (size, size)))


def timed(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    """Median wall time of ``fn`` in seconds over ``repeat`` runs, after one warm-up run."""
    fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", type=int, default=1000, help="maps in the batch")
    parser.add_argument("--size", type=int, default=224, help="side of each map in pixels")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each batched rule")
    parser.add_argument("--skimage-repeat", type=int, default=1, help="timed runs of each per-map scikit-image loop")
    parser.add_argument("--no-skimage", action="store_true", help="skip the per-map scikit-image reference")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    u8 = cam_like_maps(args.maps, args.size).to(device)
    standards: dict[str, ThresholdRule] = {"pas": ThresholdRule.pas(), "max": ThresholdRule.max()}
    standards.update({rule: make_standard(rule) for rule in ADAPTIVE_RULES})

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {args.threads} thread(s)"
    print(f"{args.maps} maps of {args.size} x {args.size} uint8 on {where}; torch {torch.__version__}")
    batched = {name: timed(lambda s=s: thresholds(u8, s), args.repeat, sync) for name, s in standards.items()}
    pas = batched["pas"]
    rows = [(f"{name} (batched)", t) for name, t in batched.items()]

    if not args.no_skimage:
        import skimage
        from skimage import filters

        maps = u8.cpu().numpy()
        for rule in ADAPTIVE_RULES:
            fn = getattr(filters, f"threshold_{rule}")
            ref = np.array([float(fn(m)) for m in maps])
            ours = thresholds(u8, standards[rule]).cpu().numpy()
            same = np.array_equal(maps > ours[:, None, None], maps > ref[:, None, None])
            rows.append((f"{rule} (skimage {skimage.__version__}, per map)",
                         timed(lambda fn=fn: [fn(m) for m in maps], args.skimage_repeat, lambda: None)))
            print(f"{rule}: batched masks equal scikit-image's on all {len(maps)} maps: {same}")

    width = max(len(name) for name, _ in rows)
    print(f"{'rule':<{width}}  {'batch ms':>9}  {'us/map':>8}  {'x PaS':>7}")
    for name, t in rows:
        print(f"{name:<{width}}  {t * 1e3:9.2f}  {t * 1e6 / args.maps:8.1f}  {t / pas:7.2f}")


if __name__ == "__main__":
    main()
