"""camloc.boxes against the plain forward pass and against peers, measured side by side in one run.

For each model: a batch of 16 at 224 px on the CPU; the median of ``--repeats`` interleaved runs of

* ``forward``: ``model(x)`` under no_grad, the floor any CAM method pays;
* ``camloc.boxes``: maps, NWC, PaS thresholds and boxes (everything a user gets);
* ``torch-cam CAM``: maps only, no boxes (if torchcam is installed);
* ``grad-cam GradCAM``: maps only, backward through the whole network (if grad-cam is installed).

Ratios are to the forward pass of the same run. Usage::

    python benchmarks/throughput.py [--models resnet50,efficientnet_lite0,mobilenetv3_large_100] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import timm
import torch

import camloc


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def build(name: str) -> torch.nn.Module:
    if name == "efficientnet_lite0":
        return camloc.load_model(name)
    return timm.create_model(name, pretrained=False).eval()  # random weights time the same


def methods(model: torch.nn.Module, x: torch.Tensor) -> dict:
    loc = camloc.Localizer(model)
    spec = loc.extractor.head or loc.extractor.analyze(x[:2])
    layers = dict(model.named_modules())
    out = {
        "forward": lambda: _forward(model, x),
        "camloc.boxes": lambda: camloc.boxes(model, x),
    }
    try:
        from torchcam.methods import CAM

        if spec.exact:
            def torchcam_cam():
                with CAM(model, target_layer=spec.feature_layer, fc_layer=spec.classifier) as ext, torch.no_grad():
                    logits = model(x)
                    ext(logits.argmax(1).tolist(), logits)

            out["torch-cam CAM (maps only)"] = torchcam_cam
    except ImportError:
        pass
    try:
        from pytorch_grad_cam import GradCAM

        def gradcam():
            with GradCAM(model=model, target_layers=[layers[spec.feature_layer]]) as cam:
                cam(input_tensor=x, targets=None)

        out["grad-cam GradCAM (maps only)"] = gradcam
    except ImportError:
        pass
    return out


def _forward(model, x):
    with torch.no_grad():
        model(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet50,efficientnet_lite0,mobilenetv3_large_100")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} x {args.size} px, CPU")
    for name in args.models.split(","):
        model = build(name)
        x = torch.randn(args.batch, 3, args.size, args.size)
        fns = methods(model, x)
        for fn in fns.values():  # warm-up (and camloc's one-time head analysis)
            fn()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit every method alike
            for k, fn in fns.items():
                times[k] += timed(fn, 1)
        base = statistics.median(times["forward"])
        exact = camloc.Localizer(model).extractor.head.exact
        print(f"\n{name} ({'exact CAM' if exact else 'non-affine head: gradient map'})")
        for k, ts in times.items():
            med = statistics.median(ts)
            print(f"  {k:32s} {med * 1000:8.1f} ms   {med / base:5.2f}x forward")


if __name__ == "__main__":
    main()
