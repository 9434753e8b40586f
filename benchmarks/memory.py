"""Peak memory of `camloc localize` is flat in the number of images: 200 vs 2,000, one run.

Each size runs `camloc localize @list --out DIR` in a fresh process (results streamed to the journal,
overlays off to keep the run short), over real photos ($CAMLOC_DATA, repeated to reach the count;
the example photos where the data is absent); the peak RSS of that process is read from
``getrusage(RUSAGE_CHILDREN)`` after it exits.

    python benchmarks/memory.py [--sizes 200,2000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from camloc.data.location import data_root

HERE = Path(__file__).resolve().parent

CHILD = """
import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,2000")
    data = data_root()
    parser.add_argument("--folder", type=Path, default=None if data is None else data / "imagenet-val" / "images",
                        help="the photos [default: $CAMLOC_DATA/imagenet-val/images, else the example photos]")
    args = parser.parse_args()
    folder = args.folder
    photos = sorted(str(p) for p in folder.iterdir()) if folder is not None and folder.is_dir() else sorted(
        str(p) for p in (HERE.parent / "examples" / "images").glob("*.jpg"))
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            listing = Path(tmp) / f"list{n}.txt"
            listing.write_text("\n".join(photos[i % len(photos)] for i in range(n)))
            cmd = [sys.executable, "-m", "camloc.cli", "localize", f"@{listing}", "--out", f"{tmp}/out{n}",
                   "--no-overlays", "--quiet", "--format", "jsonl"]
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, *cmd], capture_output=True, text=True, check=True)
            kb, rc = out.stdout.split()
            peaks[n] = int(kb) / 1024
            lines = sum(1 for _ in open(f"{tmp}/out{n}/results.jsonl"))
            print(f"{n:6d} images: peak RSS {peaks[n]:7.1f} MiB, {lines} results, exit {rc}, "
                  f"{time.perf_counter() - t0:.0f} s")
    small, large = peaks[min(peaks)], peaks[max(peaks)]
    print(f"peak RSS ratio {max(peaks)} / {min(peaks)} images: {large / small:.3f} (flat means within 1.10)")


if __name__ == "__main__":
    main()
