"""Start-up cost: ``import camloc`` and ``camloc --help`` beside ``import torch``, measured in one run.

Each command runs in a fresh interpreter several times (interleaved); the best wall time is kept.

    python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

COMMANDS = {
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "python -c 'import camloc'": [sys.executable, "-c", "import camloc"],
    "camloc --help": [sys.executable, "-m", "camloc", "--help"],
    "camloc localize --help": [sys.executable, "-m", "camloc", "localize", "--help"],
    "python -c 'import camloc; camloc.CAMExtractor'": [sys.executable, "-c", "import camloc; camloc.CAMExtractor"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
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
