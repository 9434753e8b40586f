"""Start-up cost: ``import camloc``, ``camloc --help`` and ``camloc score`` beside ``import torch``, in one run.

Each command runs in a fresh interpreter several times (interleaved); the best wall time is kept.
``camloc score`` scores 30 saved maps (a generated split, boxes and masks) as it runs, without torch,
and once more with torch imported first: the cost the scorer no longer pays.

    python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

COMMANDS = {
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "python -c 'import camloc'": [sys.executable, "-c", "import camloc"],
    "camloc --help": [sys.executable, "-m", "camloc", "--help"],
    "camloc localize --help": [sys.executable, "-m", "camloc", "localize", "--help"],
    "python -c 'import camloc; camloc.CAMExtractor'": [sys.executable, "-c", "import camloc; camloc.CAMExtractor"],
}


def score_split(root: Path, n: int = 30) -> list[str]:
    """A split of ``n`` 224 x 224 images with one box and a mask each, and a saved map per image; the score arguments."""
    rng = np.random.default_rng(0)
    (root / "masks").mkdir()
    (root / "maps").mkdir()
    ids, boxes, masks = [], [], []
    for i in range(n):
        x0, y0 = (int(v) for v in rng.integers(0, 100, 2))
        x1, y1 = x0 + int(rng.integers(40, 120)), y0 + int(rng.integers(40, 120))
        mask = np.zeros((224, 224), np.uint8)
        mask[y0:y1, x0:x1] = 255
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
        score = np.clip(mask / 255.0 * 0.8 + rng.random((224, 224)) * 0.2, 0, 1)
        np.save(root / "maps" / f"{i}.jpg.npy", score)
        ids.append(f"{i}.jpg")
        boxes.append(f"{i}.jpg,{x0},{y0},{min(x1, 224)},{min(y1, 224)}")
        masks.append(f"{i}.jpg,masks/{i}.png,")
    (root / "image_ids.txt").write_text("\n".join(ids) + "\n")
    (root / "class_labels.txt").write_text("".join(f"{i},0\n" for i in ids))
    (root / "image_sizes.txt").write_text("".join(f"{i},224,224\n" for i in ids))
    (root / "localization.txt").write_text("\n".join(boxes) + "\n")
    (root / "mask_localization.txt").write_text("\n".join(masks) + "\n")
    return ["score", "--metadata", str(root), "--scoremaps", str(root / "maps"), "--masks", str(root), "--quiet"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    score = score_split(root)
    COMMANDS["camloc score (30 maps)"] = [sys.executable, "-m", "camloc", *score]
    COMMANDS["camloc score (30 maps), torch imported first"] = [
        sys.executable, "-c", f"import sys, torch; from camloc.cli import main; sys.argv = ['camloc', *{score!r}]; main()"]
    best = {name: float("inf") for name in COMMANDS}
    subprocess.run(COMMANDS["python -c 'import torch'"], check=True)  # warm the file cache
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            best[name] = min(best[name], time.perf_counter() - t0)
    torch_time = best["python -c 'import torch'"]
    print(f"best of {args.repeats} fresh interpreters ({sys.executable})")
    for name, seconds in best.items():
        print(f"  {name:48s} {seconds * 1000:7.0f} ms   {seconds / torch_time:5.2f}x import torch")


if __name__ == "__main__":
    main()
