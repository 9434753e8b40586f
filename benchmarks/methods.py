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
installed is skipped, with a line saying so.

The faithfulness metrics (``camloc.faithfulness`` on the CAM's maps of the same batch) are timed last,
as multiples of one forward pass too: the deletion and insertion curves at ``--faithfulness-steps``
steps beside the plain loop RISE's ``CausalMetric`` runs (one forward pass per step and image), and
Average Drop / Increase beside torch-cam's ``ClassificationMetric`` (which computes its own CAM: camloc
is timed with its own too). Usage::

    python benchmarks/methods.py [--images 'examples/images/*.jpg'] [--batch 8] [--repeats 3] [--scorecam-images 1]
        [--faithfulness-steps 16]
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


def plain_curves(model: torch.nn.Module, x: torch.Tensor, maps: torch.Tensor, classes: list[int],
                 steps: int) -> list[list[float]]:
    """Deletion and insertion as RISE's loop runs them: one image, one step, one forward pass at a time."""
    from camloc.eval.perturbation import Schedule, blur, salience_ranks

    h, w = x.shape[2:]
    schedule = Schedule.of(h, w, steps=steps)
    ranks, blurred = salience_ranks(maps, (h, w)), blur(x)
    curves = []
    with torch.no_grad():
        for i, c in enumerate(classes):
            for start, finish in ((x[i], torch.zeros_like(x[i])), (blurred[i], x[i])):
                curve = []
                for k in schedule.counts().tolist():
                    changed = (ranks[i] < k).view(1, h, w)
                    curve.append(float(model(torch.where(changed, finish, start)[None]).softmax(1)[0, c]))
                curves.append(curve)
    return curves


def torch_cam_drop(model: torch.nn.Module, layer: str, classifier: Optional[str],
                   x: torch.Tensor) -> Optional[Callable[[], object]]:
    """torch-cam's Average Drop / Increase of its own CAM on ``x``, or None where torch-cam is not installed."""
    try:
        import torchcam.methods as tc
        from torchcam.metrics import ClassificationMetric
    except ImportError:
        return None

    def run():
        with tc.CAM(model, target_layer=layer, fc_layer=classifier, input_shape=tuple(x.shape[1:])) as ext:
            metric = ClassificationMetric(ext, lambda logits: logits.softmax(-1))
            metric.update(x)
            return metric.summary()

    return run


def faithfulness_rows(model: torch.nn.Module, x: torch.Tensor, classes: list[int], layer: str,
                      classifier: Optional[str], steps: int, repeats: int) -> None:
    """Print the faithfulness metrics' cost: camloc's batched curves and drop against the plain loop and torch-cam."""
    maps = camloc.cams(model, x, classes=classes, nwc=False)
    n = len(x)
    curves = {"camloc": lambda: camloc.faithfulness(model, x, maps=maps, classes=classes, steps=steps,
                                                    metrics=("deletion", "insertion"), batch_size=32),
              "plain loop": lambda: plain_curves(model, x, maps, classes, steps),
              "forward": lambda: forward(model, x)}
    t = median_times(curves, repeats)
    print(f"\nfaithfulness of the CAM's maps, {n} images; deletion + insertion at {steps} steps "
          f"({2 * (steps + 1)} inputs per image in the plain loop, {2 * steps} batched in camloc)")
    print(f"{'metric':<22} {'camloc s/img':>12} {'x forward':>9} {'peer':>22} {'peer s/img':>11} {'ratio':>6}")
    print(f"{'deletion + insertion':<22} {t['camloc'] / n:>12.4f} {t['camloc'] / t['forward']:>8.1f}x "
          f"{'plain loop (RISE)':>22} {t['plain loop'] / n:>11.4f} {t['plain loop'] / t['camloc']:>5.2f}x")
    drop = {"camloc": lambda: camloc.faithfulness(model, x, method="cam", nwc=False, metrics=("average_drop",
                                                                                             "increase")),
            "torch-cam": torch_cam_drop(model, layer, classifier, x), "forward": lambda: forward(model, x)}
    t = median_times(drop, repeats)
    peer = (f"{'torch-cam':>22} {t['torch-cam'] / n:>11.4f} {t['torch-cam'] / t['camloc']:>5.2f}x"
            if t["torch-cam"] is not None else f"{'torch-cam: not installed':>22}")
    print(f"{'drop + increase':<22} {t['camloc'] / n:>12.4f} {t['camloc'] / t['forward']:>8.2f}x {peer}", flush=True)


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
    parser.add_argument("--faithfulness-steps", type=int, default=16, help="steps of the deletion / insertion curves")
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
    faithfulness_rows(model, x, classes, spec.feature_layer, spec.classifier, args.faithfulness_steps, args.repeats)


if __name__ == "__main__":
    main()
