"""Which threshold rule localizes best without calibration data? Otsu, Li, triangle and Yen beside PaS
and vanilla CAM's max, each with NWC off and on, on the real splits in ``DATA``.

efficientnet_lite0 (ImageNet weights, offline), the paper's CAM; every rule scored from the same maps:

* GT-known Loc under the rethinking protocol (one fixed threshold per rule: 0.2 x max for vanilla,
  0.35 x p90 for PaS, the rule's own per-map threshold for the automatic rules);
* MaxBoxAccV2 under wsolevaluation. For max and PaS it is the best over 1,000 values of tau chosen
  on the test split itself (an oracle threshold); an automatic rule has no tau, so its number is the
  box accuracy at its own threshold (one operating point, nothing chosen on the test split).

imagenet-val and coco-masks map the ground-truth class (their labels are ImageNet classes); cub-test
maps the top-1 predicted class (CUB's bird species are not ImageNet's classes).

    python examples/threshold_rules.py [--data $CAMLOC_DATA] [--out runs/threshold_rules]

Writes ``OUT/<split>-<protocol>.json`` (each evaluation's full result; finished ones are not redone)
and prints the markdown table docs/thresholds.md quotes. About 10 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from camloc.data.location import data_root, missing_data

ROOT = Path(__file__).resolve().parent.parent
#: (split, --cam-class) of each real split scored.
SPLITS = (("imagenet-val", "gt"), ("cub-test", "top1"), ("coco-masks", "gt"))
#: Table rows: (standard shown, variant without NWC, variant with NWC).
RULES = (("max (vanilla, 0.2 x max)", "cam", "nwc"), ("PaS (0.35 x p90)", "pas", "nwc+pas"),
         ("otsu", "otsu", "nwc+otsu"), ("li", "li", "nwc+li"), ("triangle", "triangle", "nwc+triangle"),
         ("yen", "yen", "nwc+yen"))


def run(data: Path, out: Path, batch_size: int) -> dict[tuple[str, str], dict]:
    """Every split under both protocols, every rule with and without NWC: ``{(split, protocol): result}``."""
    import camloc
    from camloc.data.metadata import read_dataset
    from camloc.eval.protocols import VARIANTS, Settings

    model = camloc.load_model("efficientnet_lite0")
    results = {}
    for split, cam_class in SPLITS:
        root = data / split
        if not (root / "image_ids.txt").is_file():
            print(f"skipped {split}: {root} is not there", file=sys.stderr)
            continue
        samples = read_dataset(root)
        for protocol in ("rethinking", "wsolevaluation"):
            path = out / f"{split}-{protocol}.json"
            if path.is_file():
                results[split, protocol] = json.loads(path.read_text())
                continue
            settings = Settings(protocol, tuple(VARIANTS), cam_class=cam_class, metrics=("maxboxacc_v2",))
            result = camloc.evaluate(model, samples, root, settings, batch_size=batch_size)
            results[split, protocol] = result.to_dict()
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results[split, protocol], indent=1))
            print(f"{split} {protocol}: {len(samples)} images, {len(result.failed)} failed", file=sys.stderr)
    return results


def table(results: dict[tuple[str, str], dict]) -> str:
    """The markdown table: a row per rule and NWC setting, two columns per split; the best of each column bold."""
    splits = [s for s, _ in SPLITS if (s, "rethinking") in results]
    cols = [(s, p, key) for s in splits for p, key in (("rethinking", "gt_known_loc"), ("wsolevaluation", "maxboxacc_v2"))]
    rows = [(name, nwc, variant) for name, off, on in RULES for nwc, variant in (("off", off), ("on", on))]
    values = {(v, c): results[c[0], c[1]]["variants"][v][c[2]] for _, _, v in rows for c in cols}
    best = {c: max(values[v, c] for _, _, v in rows) for c in cols}
    head = "| standard | NWC | " + " | ".join(
        f"{s} {'GT-known Loc' if k == 'gt_known_loc' else 'MaxBoxAccV2'}" for s, _, k in cols) + " |"
    lines = [head, "|" + "---|" * (2 + len(cols))]
    for name, nwc, v in rows:
        cells = [f"**{values[v, c]:.2f}**" if values[v, c] == best[c] else f"{values[v, c]:.2f}" for c in cols]
        lines.append(f"| {name} | {nwc} | " + " | ".join(cells) + " |")
    n = {s: results[s, "rethinking"]["dataset"]["n"] for s in splits}
    return "\n".join(lines) + "\n\nImages: " + ", ".join(f"{s} {n[s]}" for s in splits) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=data_root(), help="folder of the real splits [default: $CAMLOC_DATA]")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "threshold_rules")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if args.data is None:
        parser.exit(2, f"{parser.prog}: error: {missing_data()}\n")
    results = run(args.data, args.out, args.batch_size)
    if not results:
        sys.exit(f"no split found under {args.data}: pass --data DIR (wsolevaluation layout)")
    print(table(results))


if __name__ == "__main__":
    main()
