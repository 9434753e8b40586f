"""Real birds: efficientnet_lite0 (ImageNet weights, offline) trained end to end on CUB photos with vanilla
CAM, HaS and ADL, each with a GAP and a TAP head, scored with and without NWC and PaS; beside it, the
head-only fine-tune (frozen backbone, GAP and TAP) that ``camloc finetune`` does.

Trains on ``DATA/cub-train`` (889 photos of 50 species) with ``camloc.train.train`` (the fine-tune
preset: SGD, Nesterov, weight decay 5e-4, the backbone at 0.1x the head's learning rate) and scores
every model on ``DATA/cub-test`` (250 photos) with :func:`camloc.eval.ablation.measure`; the
calibrated thresholds are chosen on cub-train (these 889 photos are the only other CUB photos with
boxes here, and the model has seen them: say so when you quote those numbers).

    python examples/cub_ablation.py [--data ../shared/data] [--epochs 3] [--head-epochs 30]

About 25 minutes on a 2-core CPU with the defaults. Finished runs are kept under ``--out`` and not
redone: rerun to continue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # ablation_report.py beside this script
#: (method, extra TrainConfig values) for the end-to-end runs.
METHODS = {
    "cam": {},
    "has": {"has": True, "has_patch": 32},  # HaS-32
    # ADL after the last two stages (ours: efficientnet_lite0 is not in wsolevaluation; the WSOL
    # architectures put ADL after their last stages too)
    "adl": {"adl": True, "adl_positions": ["backbone.blocks.5", "backbone.blocks.6"]},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    p.add_argument("--out", default="runs/cub-ablation")
    p.add_argument("--epochs", type=int, default=3, help="end-to-end epochs")
    p.add_argument("--head-epochs", type=int, default=30, help="epochs of the head-only fine-tunes")
    p.add_argument("--methods", nargs="+", default=list(METHODS) + ["head"], choices=list(METHODS) + ["head"])
    p.add_argument("--pools", nargs="+", default=["gap", "tap"], choices=["gap", "tap"])
    p.add_argument("--theta-tap", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from camloc.eval.ablation import Split

    train_dir, test_dir = Path(args.data) / "cub-train", Path(args.data) / "cub-test"
    for d in (train_dir, test_dir):
        if not (d / "image_ids.txt").is_file():
            print(f"{d}: no CUB split there; pass --data DIR holding cub-train and cub-test", file=sys.stderr)
            return 2
    out = Path(args.out)
    test, calib = Split.read(test_dir), Split.read(train_dir)
    from ablation_report import run_all

    jobs = [(f"{m}-{p}-s{args.seed}", lambda m=m, p=p: run_one(args, f"{m}-{p}-s{args.seed}", m, p, train_dir, test, calib,
                                                              out / "runs" / f"{m}-{p}-s{args.seed}"))
            for m in args.methods for p in args.pools]
    return run_all(jobs, lambda: report(args, out, test))


def run_one(args, name, method, pool, train_dir: Path, test, calib, folder: Path) -> None:
    from ablation_report import run
    from camloc.train.finetune import FinetuneConfig, to_train_config

    head_only = method == "head"
    base = FinetuneConfig(model="efficientnet_lite0", metadata=str(train_dir), out=str(folder), pool=pool,
                          theta_tap=args.theta_tap, epochs=args.head_epochs if head_only else args.epochs,
                          backbone_lr_scale=0.0 if head_only else 0.1, workers=0, seed=args.seed, register=False)
    cfg = to_train_config(base).replace(**({} if head_only else METHODS[method])).validate()
    run(name, method, pool, cfg, folder, test, calib, data={"train": str(train_dir), "test": str(test.name)})


def report(args, out: Path, test) -> None:
    from ablation_report import load_results, one_per_class, write_report

    results = load_results(out, lambda r: r["method"] in args.methods and r["pool"] in args.pools and r["seed"] == args.seed)
    chosen = one_per_class(test.samples)  # four species, the first photo of each
    intro = (f"efficientnet_lite0 (ImageNet weights) trained on cub-train (889 photos, 50 species): end to end for "
             f"{args.epochs} epochs (backbone at 0.1x the head's rate), or head only for {args.head_epochs} epochs "
             f"(frozen backbone); scored on cub-test ({len(test.samples)} photos), one seed ({args.seed}).")
    write_report(out, results, intro, "cub-train (the training photos: optimistic)",
                 [str(Path(test.images) / s.image_id) for s in chosen], [s.label for s in chosen],
                 [list(s.boxes) for s in chosen],
                 "box accuracy (IoU 0.5, wsolevaluation sweep) on cub-test", "cub-test photos")


if __name__ == "__main__":
    sys.exit(main())
