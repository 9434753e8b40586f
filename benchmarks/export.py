"""camloc's ONNX runtime (``OnnxLocalizer``) against the torch path (``camloc.Localizer``), measured side by side.

For each model (``--models``), in one process, on the same photos and the same thread count:

* ``images/s``: ``OnnxLocalizer(path, threads=N).boxes(photos)`` against ``camloc.Localizer(model).boxes(photos)``
  under ``torch.set_num_threads(N)``, end to end (paths in: decoding, preprocessing, the network, maps, thresholds
  and boxes), the median of ``--repeats`` interleaved runs, and their ratio; a sanity line counts the results
  where both give the same class and a box within one pixel of the network input (on the original, one input
  pixel is 1.01 px of a 227-px photo squashed to 224: a map level that flips at the threshold moves an edge by it);
* ``export``: what ``camloc.export`` took (tracing, writing, its onnxruntime self-check) and the file's size;
* the same images/s comparison on the GPU (``device="cuda"`` for both) where torch sees one and onnxruntime offers
  ``CUDAExecutionProvider``; otherwise one line says why it was skipped.

Then the installed size of the runtime's environment against the full one's, from this environment's
distributions: the sizes their RECORD files list, summed over the dependency closure (``requires()``
followed recursively, markers evaluated here, camloc's extras not followed, the extras a dependency asks for
followed). Runtime: numpy, pillow, onnxruntime, opencv-python-headless and the camloc modules
``import camloc.runtime`` loads (their source files); full: camloc's requirements (its installed metadata's,
and pyproject.toml's where that is newer) and the whole camloc package. Distributions required but not
installed count 0 and are named.

``--architectures`` instead exports every model of the architecture matrix (benchmarks/architectures.py,
docs/architectures.md: random weights, a 1000-class head) and prints, for each, whether it exported or why
it was refused, the self-check's map difference and how many of its top-2 results on the photos agree
with ``camloc.boxes`` (same class, box within one input pixel, map within 1e-4 after min-max scaling).

Photos: the first ``--images`` of ``$CAMLOC_DATA/imagenet-val`` when ``CAMLOC_DATA`` is set, else the three
photos of examples/images, repeated to ``--images``. Models other than efficientnet_lite0/1/2 (the ones with
offline weights) get random weights: they time the same. Usage::

    CAMLOC_DATA=DIR python benchmarks/export.py [--models efficientnet_lite0,resnet50] [--images 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import importlib.metadata as metadata
import io
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import onnxruntime
import timm
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import camloc
from camloc.data.location import data_root
from camloc.runtime import OnnxLocalizer

ROOT = Path(__file__).resolve().parent.parent
#: Models whose ImageNet weights are installed offline (the others are built with random weights).
OFFLINE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
#: The distributions the runtime needs besides its own camloc modules.
RUNTIME_ROOTS = ("numpy", "pillow", "onnxruntime", "opencv-python-headless")
MB = 1e6


def machine() -> str:
    """The CPU's model name (/proc/cpuinfo), its core count and today's date."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"


def photos(n: int) -> tuple[list[str], str]:
    """``n`` photo paths (the list repeated where it has fewer) and where they come from."""
    root = data_root()
    if root is not None:
        split = root / "imagenet-val"
        if not (split / "image_ids.txt").is_file():
            raise SystemExit(f"{split} is not a split (no image_ids.txt): point CAMLOC_DATA at the real splits "
                             "or unset it to use examples/images")
        paths = [str(split / s.image_id) for s in camloc.read_dataset(split)[:n]]
        source = "imagenet-val"
    else:
        paths = [str(p) for p in sorted((ROOT / "examples" / "images").glob("*.jpg"))]
        source = "examples/images (CAMLOC_DATA unset)"
    distinct = len(paths)
    paths = list(itertools.islice(itertools.cycle(paths), n))
    return paths, f"{source}, {distinct} distinct" if distinct < n else source


def build(name: str) -> torch.nn.Module:
    if name in OFFLINE:
        return camloc.load_model(name)
    return timm.create_model(name, pretrained=False).eval()  # random weights time the same


def flat(results: list) -> list:
    """Every result of a ``boxes(..., topk=k)`` call, image by image and class by class."""
    return [r for per_image in results for r in per_image]


def agreeing(a: list, b: list) -> int:
    """How many results name the same class with every box edge within one pixel of the network input."""
    return sum(x.class_index == y.class_index
               and max(abs(u - v) for u, v in zip(x.input_box, y.input_box, strict=True)) <= 1
               for x, y in zip(flat(a), flat(b), strict=True))


def side_by_side(fns: dict[str, Callable[[], list]], repeats: int) -> tuple[dict[str, float], dict[str, list]]:
    """The median seconds of each function over ``repeats`` interleaved runs, and each one's last results."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    last: dict[str, list] = {}
    for _ in range(repeats):  # interleaved, so drifts in machine load hit both paths alike
        for key, fn in fns.items():
            t0 = time.perf_counter()
            last[key] = fn()
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(ts) for k, ts in times.items()}, last


def compare(runtime: OnnxLocalizer, torch_loc: camloc.Localizer, paths: list[str], args: argparse.Namespace) -> dict:
    """Images/s of both paths on ``paths``, their ratio, and how many results agree."""
    calls = {"runtime": runtime.boxes, "torch": torch_loc.boxes}
    for call in calls.values():  # warm up: the head analysis, first-call allocations
        call(paths[:2], topk=args.topk, batch_size=args.batch_size)
    fns = {k: functools.partial(call, paths, topk=args.topk, batch_size=args.batch_size) for k, call in calls.items()}
    seconds, last = side_by_side(fns, args.repeats)
    rates = {k: len(paths) / s for k, s in seconds.items()}
    total = len(paths) * args.topk
    return {**rates, "ratio": rates["runtime"] / rates["torch"], "agree": agreeing(last["runtime"], last["torch"]),
            "of": total}


def gpu_unavailable() -> str | None:
    """Why the GPU comparison cannot run here, or None when it can."""
    why = []
    if not torch.cuda.is_available():
        why.append("torch sees no CUDA device")
    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        why.append(f"onnxruntime offers no CUDAExecutionProvider (only {', '.join(providers)}; "
                   "onnxruntime-gpu has it)")
    return "; ".join(why) or None


def gpu_compare(path: Path, model: torch.nn.Module, paths: list[str], args: argparse.Namespace) -> dict | str:
    """The CPU comparison on the GPU, or why it could not run."""
    runtime = OnnxLocalizer(path, device="cuda")
    if runtime.session.get_providers()[0] != "CUDAExecutionProvider":
        return f"onnxruntime would not place the graph on the GPU (providers {runtime.session.get_providers()})"
    return compare(runtime, camloc.Localizer(copy.deepcopy(model).to("cuda")), paths, args)


def bench_model(name: str, paths: list[str], folder: Path, args: argparse.Namespace) -> dict | str:
    """Export one model, then both comparisons; one line when it cannot be exported."""
    model = build(name)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
            report = camloc.export(model, folder / f"{name}.onnx", topk=args.topk, name=name)
    except camloc.CamlocError as exc:
        return str(exc)
    out = {"export_s": report.seconds, "size_mb": report.size / MB, "map_difference": report.map_difference,
           "cpu": compare(OnnxLocalizer(report.path, threads=args.threads), camloc.Localizer(model), paths, args)}
    why = gpu_unavailable()
    out["cuda"] = why or gpu_compare(report.path, model, paths, args)
    return out


# --- installed sizes -------------------------------------------------------------------------------


def closure(roots: Iterable[str]) -> tuple[dict[str, metadata.Distribution], list[str]]:
    """The installed distributions ``roots`` need, recursively, by canonical name; and those required but absent.

    A requirement counts where its marker holds in this environment; the roots' extras are never followed
    (an ``extra == ...`` marker fails), but the extras a dependency asks for (``cuda-toolkit[cublas]``) are.
    """
    found: dict[str, metadata.Distribution] = {}
    missing: set[str] = set()
    expanded: set[tuple[str, str]] = set()  # (distribution, extra) whose requirements are queued
    todo = [(Requirement(r), "") for r in roots]
    while todo:
        requirement, extra = todo.pop()
        key = canonicalize_name(requirement.name)
        if key in missing or (requirement.marker and not requirement.marker.evaluate({"extra": extra})):
            continue
        if key not in found:
            try:
                found[key] = metadata.distribution(requirement.name)
            except metadata.PackageNotFoundError:
                missing.add(key)
                continue
        for wanted in ("", *sorted(requirement.extras)):
            if (key, wanted) not in expanded:
                expanded.add((key, wanted))
                todo += [(Requirement(line), wanted) for line in found[key].requires or []]
    return found, sorted(missing)


def declared() -> list[str]:
    """The requirements pyproject.toml declares that camloc's installed metadata lacks (an older install's)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed metadata alone
        return []
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        return []
    installed = {canonicalize_name(Requirement(r).name) for r in metadata.distribution("camloc").requires or []}
    listed = tomllib.loads(pyproject.read_text())["project"].get("dependencies", [])
    return [r for r in listed if canonicalize_name(Requirement(r).name) not in installed]


def installed_size(dist: metadata.Distribution) -> int:
    """Bytes of the files the distribution's RECORD lists (the size it records, else the file on disk)."""
    total = 0
    for file in dist.files or []:
        if file.size is not None:
            total += file.size
        else:
            on_disk = Path(dist.locate_file(file))
            total += on_disk.stat().st_size if on_disk.is_file() else 0
    return total


def runtime_modules() -> tuple[list[str], bool]:
    """The source files of the camloc modules ``import camloc.runtime`` loads (in a fresh interpreter), and
    whether that import loaded torch."""
    code = ("import json, sys, camloc.runtime; print(json.dumps({'files': sorted(m.__file__ for n, m in "
            "list(sys.modules.items()) if n.split('.')[0] == 'camloc' and getattr(m, '__file__', None)), "
            "'torch': 'torch' in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return found["files"], found["torch"]


def package_files(folder: Path) -> list[Path]:
    """Every file of the camloc package (sources and package data), without compiled caches."""
    return [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def sizes() -> dict:
    """Installed bytes of the runtime's closure and of the full one, with what each counts."""
    ours = canonicalize_name("camloc")
    files, loads_torch = runtime_modules()
    runtime, runtime_missing = closure(RUNTIME_ROOTS)
    newer = declared()
    full, full_missing = closure(["camloc", *newer])
    full.pop(ours, None)  # camloc itself counts by its package folder (an editable install's RECORD lists none)
    package = package_files(Path(camloc.__file__).parent)
    return {
        "runtime": sum(map(installed_size, runtime.values())) + sum(Path(f).stat().st_size for f in files),
        "runtime_dists": len(runtime), "runtime_modules": len(files), "loads_torch": loads_torch,
        "full": sum(map(installed_size, full.values())) + sum(p.stat().st_size for p in package),
        "full_dists": len(full), "package_files": len(package),
        "missing": sorted(set(runtime_missing) | set(full_missing)), "declared": newer,
    }


# --- output ------------------------------------------------------------------------------------------


def print_speed(results: dict[str, dict | str]) -> None:
    print(f"\n{'model':22s} {'device':6s} {'runtime img/s':>13s} {'torch img/s':>11s} {'runtime/torch':>13s}  "
          "agree (class, box within 1 input px)")
    for name, res in results.items():
        if isinstance(res, str):
            print(f"{name:22s} not exported: {res}")
            continue
        for device in ("cpu", "cuda"):
            row = res[device]
            if isinstance(row, str):
                print(f"{name:22s} {device:6s} skipped: {row}")
            else:
                print(f"{name:22s} {device:6s} {row['runtime']:13.1f} {row['torch']:11.1f} {row['ratio']:12.2f}x  "
                      f"{row['agree']} of {row['of']}")


def difference(a, b) -> str | None:
    """How result ``a`` differs from ``b`` (class, box by more than one input pixel, map by more than 1e-4), or None."""
    from camloc.cam.rules import unit_range

    if a.class_index != b.class_index:
        return f"class {a.class_index} for {b.class_index} (scores {a.score:.6f} and {b.score:.6f})"
    edge = max(abs(u - v) for u, v in zip(a.input_box, b.input_box, strict=True))
    if edge > 1:
        return f"box edge {edge} input px off"
    gap = float(abs(unit_range(a.cam) - unit_range(b.cam)).max())
    return f"map {gap:.1e} off" if gap > 1e-4 else None


def matrix(paths: list[str], folder: Path) -> None:
    """``--architectures``: every model of the architecture matrix exported, or refused, and compared.

    Each model's random weights are drawn from seed 0, so a run can be repeated model by model.
    """
    import architectures  # benchmarks/architectures.py, beside this script

    print(f"\n{'model':54s} {'export':9s} {'self-check':>10s}  agree (top-2: class, box 1 input px, map 1e-4)")
    counts = {"exported": 0, "refused": 0, "agree": 0}
    for entry in architectures.MATRIX:
        torch.manual_seed(0)
        model = architectures.build(entry)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                report = camloc.export(model, folder / "m.onnx", topk=2)
        except camloc.CamlocError as exc:
            counts["refused"] += 1
            print(f"{entry.label:54s} refused   {str(exc).split(': ', 1)[-1][:90]}")
            continue
        got = flat(OnnxLocalizer(report.path).boxes(paths, topk=2))
        want = flat(camloc.Localizer(model).boxes(paths, topk=2))
        found = [d for d in (difference(a, b) for a, b in zip(got, want, strict=True)) if d]
        counts["exported"] += 1
        counts["agree"] += not found
        first = f"; first: {found[0]}" if found else ""
        print(f"{entry.label:54s} exported  {report.map_difference:10.1e}  {len(want) - len(found)} of {len(want)}"
              f"{' (' + report.exporter + ')' if report.exporter != 'dynamo' else ''}{first}")
    print(f"{counts['exported']} exported ({counts['agree']} of them agreeing on every result), "
          f"{counts['refused']} refused")


def print_export(results: dict[str, dict | str]) -> None:
    print(f"\n{'model':22s} {'export s':>8s} {'file MB':>8s}  self-check: largest map difference")
    for name, res in results.items():
        if isinstance(res, dict):
            print(f"{name:22s} {res['export_s']:8.1f} {res['size_mb']:8.1f}  {res['map_difference']:.1e}")


def print_sizes(s: dict) -> None:
    print("\ninstalled size (RECORD sizes over each dependency closure in this environment; camloc's extras not "
          "followed)")
    print(f"  runtime {s['runtime'] / MB:9.1f} MB  {', '.join(RUNTIME_ROOTS)} ({s['runtime_dists']} distributions) "
          f"+ the {s['runtime_modules']} camloc modules camloc.runtime imports"
          f"{' (it loaded torch!)' if s['loads_torch'] else ' (torch not loaded)'}")
    print(f"  full    {s['full'] / MB:9.1f} MB  camloc's requirements ({s['full_dists']} distributions) "
          f"+ the camloc package ({s['package_files']} files)")
    print(f"  ratio runtime / full {s['runtime'] / s['full']:.3f}")
    if s["declared"]:
        print(f"  note: pyproject.toml requires {', '.join(s['declared'])}, which camloc's installed metadata "
              "lacks (an older install): counted in full too")
    if s["missing"]:
        print(f"  note: required but not installed, counted 0: {', '.join(s['missing'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="efficientnet_lite0", help="comma-separated timm names")
    parser.add_argument("--images", type=int, default=32, help="photos per run")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads for both paths [default: every core]")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each path (the median counts)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--topk", type=int, default=1, help="classes localized per image")
    parser.add_argument("--architectures", action="store_true",
                        help="export every model of the architecture matrix instead; compare each with camloc.boxes")
    args = parser.parse_args()
    if min(args.images, args.threads, args.repeats, args.batch_size, args.topk) < 1:
        parser.error("--images, --threads, --repeats, --batch-size and --topk must be at least 1")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    paths, source = photos(args.images)
    print(f"machine: {machine()}")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, camloc {camloc.__version__}; "
          f"{args.threads} thread{'s' if args.threads > 1 else ''} for both")
    print(f"{len(paths)} photos from {source} (paths in: decoded on every run), batch {args.batch_size}, "
          f"top-{args.topk}, median of {args.repeats} interleaved runs")
    if args.architectures:
        with tempfile.TemporaryDirectory() as folder:
            matrix(paths, Path(folder))
        return
    with tempfile.TemporaryDirectory() as folder:
        results = {name: bench_model(name, paths, Path(folder), args) for name in args.models.split(",") if name}
    print_speed(results)
    print_export(results)
    print_sizes(sizes())


if __name__ == "__main__":
    main()
