"""camloc's time per method against pytorch-grad-cam's and torch-cam's, side by side in one run.

On efficientnet_lite0 (offline ImageNet weights) with a batch of real photos, every tool maps the
top-1 class on the same feature layer (the one camloc's analysis finds). Times are medians of
``--repeats`` interleaved runs after one warm-up each. Each method's cost is also given as a multiple
of one forward pass of the same batch (``x forward``: ``model(x)`` under no_grad, timed in the same
rounds); the peers' ratios are their time over camloc's (above 1: camloc is faster). ``pc1`` is
compared with pytorch-grad-cam's EigenCAM (torch-cam has none). What each tool returns differs a little: camloc's maps stay at
feature resolution, pytorch-grad-cam upsamples to the input with OpenCV and min-max normalises, torch-cam
min-max normalises at feature resolution. Score-CAM runs the whole network once per channel (1,280
here), so it is timed on ``--scorecam-images`` images only, with one repeat. A peer that is not
installed is skipped, with a line saying so. Usage::

    python benchmarks/methods.py [--images 'examples/images/*.jpg'] [--batch 8] [--repeats 3] [--scorecam-images 1]
"""

from __future__ import annotations

import argparse
import glob
import statistics
import time
import warnings
from typing import Callable, Optional

import torch

import camloc
from camloc.cam.methods import MethodExtractor
from camloc.cam.names import METHODS

#: Each camloc method's class in pytorch-grad-cam and torch-cam (``cam``: torch-cam's CAM only).
GRAD_CAM = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "xgradcam": "XGradCAM", "layercam": "LayerCAM",
            "scorecam": "ScoreCAM", "pc1": "EigenCAM"}
TORCH_CAM = {"cam": "CAM", "gradcam": "GradCAM", "gradcam++": "GradCAMpp", "xgradcam": "XGradCAM",
             "layercam": "LayerCAM", "scorecam": "ScoreCAM"}


def photos(pattern: str, batch: int, loc: camloc.Localizer) -> torch.Tensor:
    """``batch`` real photos (repeated if the pattern matches fewer), preprocessed for the model."""
    paths = sorted(glob.glob(pattern, recursive=True))
    if not paths:
        raise SystemExit(f"no image matches {pattern!r}")
    return torch.stack([loc.prepare(paths[i % len(paths)])[0] for i in range(batch)])


def grad_cam_fn(method: str, model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor,
                classes: list[int]) -> Optional[Callable[[], object]]:
    try:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        return None
    if method not in GRAD_CAM:
        return None
    cls = getattr(pytorch_grad_cam, GRAD_CAM[method])

    def run():
        with cls(model=model, target_layers=[layer]) as cam:
            if method == "scorecam":
                cam.batch_size = 64  # camloc's default masked images per pass
            targets = None if method == "pc1" else [ClassifierOutputTarget(c) for c in classes]  # EigenCAM: no class
            return cam(input_tensor=x, targets=targets)

    return run


def torch_cam_fn(method: str, model: torch.nn.Module, layer: str, classifier: Optional[str], x: torch.Tensor,
                 classes: list[int]) -> Optional[Callable[[], object]]:
    try:
        import torchcam.methods as tc
    except ImportError:
        return None
    if method not in TORCH_CAM:
        return None
    cls = getattr(tc, TORCH_CAM[method])
    kwargs = {"fc_layer": classifier} if method == "cam" else {"batch_size": 64} if method == "scorecam" else {}
    kwargs["input_shape"] = tuple(x.shape[1:])

    def run():
        with cls(model, target_layer=layer, **kwargs) as ext:
            if method in ("cam", "scorecam"):
                with torch.no_grad():
                    scores = model(x)
            else:
                scores = model(x)
            return ext(classes, scores)

    return run


def forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One forward pass under no_grad: the unit every method's cost is given in."""
    with torch.no_grad():
        return model(x)


def median_times(fns: dict[str, Optional[Callable]], repeats: int) -> dict[str, Optional[float]]:
    """Median seconds of each function, interleaved over ``repeats`` rounds after one warm-up each."""
    live = {k: f for k, f in fns.items() if f is not None}
    for f in live.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in live}
    for _ in range(repeats):
        for k, f in live.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(times[k]) if k in times else None for k in fns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default="examples/images/*.jpg", help="glob of real photos")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scorecam-images", type=int, default=1)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_grad_enabled(True)

    model = camloc.load_model("efficientnet_lite0")
    loc = camloc.Localizer(model)
    x = photos(args.images, args.batch, loc)
    spec = loc.extractor.analyze(x[:2])
    layer = model.get_submodule(spec.feature_layer)
    with torch.no_grad():
        classes = model(x).argmax(1).tolist()
    peers = []
    for name, module in (("pytorch-grad-cam", "pytorch_grad_cam"), ("torch-cam", "torchcam")):
        try:
            __import__(module)
            peers.append(name)
        except ImportError:
            print(f"{name} is not installed: skipped (pip install {'grad-cam' if module == 'pytorch_grad_cam' else 'torchcam'})")
    print(f"efficientnet_lite0, feature layer {spec.feature_layer!r}, {torch.get_num_threads()} threads; batch "
          f"{args.batch} of {args.images} (Score-CAM: {args.scorecam_images}); medians of {args.repeats}")
    header = f"{'method':<10} {'images':>6} {'camloc s/img':>12} {'x forward':>9}"
    for peer in peers:
        header += f" {peer + ' s/img':>22} {'ratio':>6}"
    print(header)
    for method in args.methods.split(","):
        n = args.scorecam_images if method == "scorecam" else args.batch
        xb, cb = x[:n], classes[:n]
        ex = MethodExtractor(model, method)
        fns: dict[str, Optional[Callable]] = {"camloc": lambda ex=ex, xb=xb, cb=cb: ex(xb, classes=cb, nwc=False),
                                              "forward": lambda xb=xb: forward(model, xb)}
        if "pytorch-grad-cam" in peers:
            fns["pytorch-grad-cam"] = grad_cam_fn(method, model, layer, xb, cb)
        if "torch-cam" in peers:
            fns["torch-cam"] = torch_cam_fn(method, model, spec.feature_layer, spec.classifier, xb, cb)
        t = median_times(fns, 1 if method == "scorecam" else args.repeats)
        row = f"{method:<10} {n:>6} {t['camloc'] / n:>12.4f} {t['camloc'] / t['forward']:>8.2f}x"
        for peer in peers:
            if t.get(peer) is None:
                row += f" {'n/a':>22} {'':>6}"
            else:
                row += f" {t[peer] / n:>22.4f} {t[peer] / t['camloc']:>5.2f}x"
        print(row, flush=True)


if __name__ == "__main__":
    main()
