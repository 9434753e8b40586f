"""Real birds: efficientnet_lite0 (ImageNet weights, offline) trained end to end on CUB photos with vanilla
CAM, HaS and ADL, each with a GAP and a TAP head, scored with and without NWC and PaS; beside it, the
head-only fine-tune (frozen backbone, GAP and TAP) that ``camloc finetune`` does.

Trains on ``DATA/cub-train`` (889 photos of 50 species) with ``camloc.train.train`` (the fine-tune
preset: SGD, Nesterov, weight decay 5e-4, the backbone at 0.1x the head's learning rate) and scores
every model on ``DATA/cub-test`` (250 photos) with :func:`camloc.eval.ablation.measure`; the
calibrated thresholds are chosen on cub-train (these 889 photos are the only other CUB photos with
boxes here, and the model has seen them: say so when you quote those numbers).

Every model is also diagnosed on cub-test (:func:`camloc.eval.diagnosis.diagnose`: the Fig. 2 rank
correlation of channel area and class weight, Fig. 3b's IoA of the positive- and negative-weight
maps, the share of negative weights, the box-to-ground-truth area ratio per variant), so each gain or
loss comes with its mechanism.

    python examples/cub_ablation.py [--data DATA] [--epochs 3] [--head-epochs 30]   # about 60 min on a 2-core CPU
    python examples/cub_ablation.py --gpu            # 30 epochs x CAM/HaS/ADL x GAP/TAP x 3 seeds, on CUDA
    python examples/cub_ablation.py --quick          # the whole pipeline on 16 + 8 photos, one epoch

``--gpu`` is the run for a machine with a CUDA device: end to end for 30 epochs, seeds 0, 1 and 2,
mixed precision (``camloc finetune --amp``: fp16 autocast on CUDA), 8 decoding workers, batch 64. ``DATA`` is a folder holding ``cub-train`` and
``cub-test`` in wsolevaluation's layout (default: the folder the ``CAMLOC_DATA`` environment variable
names; without either, the script stops and says so).
Finished runs are kept under ``--out`` and not redone: rerun to continue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from camloc.data.location import data_root, missing_data

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


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=data_root(),
                   help="folder with cub-train and cub-test [default: $CAMLOC_DATA]")
    p.add_argument("--out", help="where the runs and the report go [default: runs/cub-ablation, -gpu, -quick]")
    p.add_argument("--epochs", type=int, default=3, help="end-to-end epochs")
    p.add_argument("--head-epochs", type=int, default=30, help="epochs of the head-only fine-tunes")
    p.add_argument("--methods", nargs="+", default=list(METHODS) + ["head"], choices=list(METHODS) + ["head"])
    p.add_argument("--pools", nargs="+", default=["gap", "tap"], choices=["gap", "tap"])
    p.add_argument("--theta-tap", type=float, default=0.1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0, help="image decoding processes")
    p.add_argument("--amp", action="store_true", help="mixed precision on CUDA (camloc finetune --amp)")
    p.add_argument("--gpu", action="store_true", help="the GPU run: 30 epochs, 3 seeds, CAM/HaS/ADL, --amp, batch 64")
    p.add_argument("--quick", action="store_true", help="16 training and 8 test photos, one epoch: checks the pipeline")
    args = p.parse_args(argv)
    if args.gpu:
        args.epochs, args.seeds, args.methods, args.amp = max(args.epochs, 30), [0, 1, 2], list(METHODS), True
        args.workers, args.batch_size = max(args.workers, 8), 64
    if args.quick:
        args.epochs, args.head_epochs, args.seeds, args.batch_size = 1, 1, args.seeds[:1], 8
    args.out = args.out or "runs/cub-ablation" + ("-gpu" if args.gpu else "-quick" if args.quick else "")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from camloc.eval.ablation import Split

    if args.data is None:
        print(f"cub_ablation.py: error: {missing_data()}", file=sys.stderr)
        return 2
    train_dir, test_dir = args.data / "cub-train", args.data / "cub-test"
    for d in (train_dir, test_dir):
        if not (d / "image_ids.txt").is_file():
            print(f"{d}: no CUB split there; pass --data DIR holding cub-train and cub-test", file=sys.stderr)
            return 2
    out = Path(args.out)
    train_meta, test_meta = train_dir, test_dir
    if args.quick:  # the first photos of each split, as metadata folders of their own (the images stay put)
        train_meta, test_meta = subset(train_dir, out / "data" / "cub-train", 16), subset(test_dir, out / "data" / "cub-test", 8)
    test, calib = Split.read(test_meta, test_dir), Split.read(train_meta, train_dir)
    from ablation_report import run_all

    names = [(m, p, seed, f"{m}-{p}-s{seed}") for m in args.methods for p in args.pools for seed in args.seeds]
    jobs = [(name, lambda m=m, p=p, seed=seed, name=name: run_one(args, name, m, p, seed, train_meta, test, calib,
                                                                  out / "runs" / name))
            for m, p, seed, name in names]
    return run_all(jobs, lambda: report(args, out, test))


def subset(meta: Path, to: Path, n: int) -> Path:
    """``n`` images spread evenly over a metadata folder (its first and last among them, so the species
    of a CUB split are all within the subset's label range) as a folder of their own (image paths unchanged)."""
    to.mkdir(parents=True, exist_ok=True)
    ids = [line for line in (meta / "image_ids.txt").read_text().splitlines() if line.strip()]
    wanted = {ids[round(i * (len(ids) - 1) / max(n - 1, 1))] for i in range(n)}
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        lines = (meta / name).read_text().splitlines()
        (to / name).write_text("\n".join(line for line in lines if line.split(",")[0] in wanted) + "\n")
    return to


def run_one(args, name, method, pool, seed, train_dir: Path, test, calib, folder: Path) -> None:
    from ablation_report import run

    from camloc.train.finetuning import FinetuneConfig, to_train_config

    head_only = method == "head"
    base = FinetuneConfig(model="efficientnet_lite0", metadata=str(train_dir), out=str(folder), pool=pool,
                          images=calib.images, theta_tap=args.theta_tap,
                          epochs=args.head_epochs if head_only else args.epochs,
                          backbone_lr_scale=0.0 if head_only else 0.1, workers=args.workers, seed=seed,
                          register=False, batch_size=args.batch_size, amp=args.amp)
    cfg = to_train_config(base).replace(**({} if head_only else METHODS[method])).validate()

    def extra(model) -> dict:
        from camloc.eval.diagnosis import diagnose

        return {"diagnose": diagnose(model, test.samples, test.images, progress=False, workers=args.workers).summary}

    run(name, method, pool, cfg, folder, test, calib, data={"train": str(train_dir), "test": str(test.name)},
        extra=extra)


def report(args, out: Path, test) -> None:
    from ablation_report import load_results, one_per_class, write_report

    results = load_results(out, lambda r: r["method"] in args.methods and r["pool"] in args.pools
                           and r["seed"] in args.seeds)
    chosen = one_per_class(test.samples)  # four species, the first photo of each
    intro = (f"efficientnet_lite0 (ImageNet weights) trained on cub-train (889 photos, 50 species): end to end for "
             f"{args.epochs} epochs (backbone at 0.1x the head's rate), or head only for {args.head_epochs} epochs "
             f"(frozen backbone); scored on cub-test ({len(test.samples)} photos), seeds {args.seeds}.")
    write_report(out, results, intro, "cub-train (the training photos: optimistic)",
                 [str(Path(test.images) / s.image_id) for s in chosen], [s.label for s in chosen],
                 [list(s.boxes) for s in chosen],
                 "box accuracy (IoU 0.5, wsolevaluation sweep) on cub-test", "cub-test photos")


if __name__ == "__main__":
    sys.exit(main())
