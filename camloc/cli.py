"""The ``camloc`` command line.

Exit codes: 0 all went well, 1 some image failed (the others still got results), 2 usage errors
(an unknown model, a bad option, a checkpoint that does not fit).
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import click

from .errors import CamlocError
from .registry import DEFAULT_MODEL, default_device


def _fail_usage(exc: Exception) -> "click.exceptions.Exit":
    click.echo(f"camloc: error: {exc}", err=True)
    return click.exceptions.Exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="camloc")
def main() -> None:
    """camloc: object boxes from any image classifier, by class activation maps."""


@main.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True, help="Registered model name.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Local weights (loaded with weights_only=True).")
@click.option("--num-classes", type=int, help="Classes of the checkpoint's classifier, when not the model's default.")
@click.option("--class", "class_index", type=int, help="Localize this class instead of the top-1 prediction.")
@click.option("--topk", type=int, help="Localize each image's top-k predicted classes.")
@click.option("--nwc/--no-nwc", default=True, show_default=True, help="Negative weight clamping in the map.")
@click.option("--standard", type=click.Choice(["percentile", "max"]), default="percentile", show_default=True,
              help="Threshold against a percentile of the map (PaS) or its maximum (vanilla CAM).")
@click.option("--theta", type=float, help="Threshold factor [default: 0.35 with percentile, 0.2 with max].")
@click.option("--percentile", type=float, default=90.0, show_default=True, help="Percentile for PaS.")
@click.option("--all-regions", is_flag=True, help="Report every region's box, not only the largest.")
@click.option("--resize", type=click.Choice(["full", "crop"]),
              help="Squash the whole image to the input size, or resize + center crop [default: the model's own].")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="Decoding worker processes.")
@click.option("--device", help="Device for the model, e.g. cuda or cpu [default: cuda if available].")
@click.option("--calibration", type=click.Path(dir_okay=False), help="theta, percentile and NWC from camloc calibrate (overrides those options).")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv", "coco"]),
              help="Output on stdout [default: table on a terminal, JSON lines otherwise].")
@click.option("--json", "as_json", is_flag=True, help="Same as --format jsonl.")
@click.option("--out", type=click.Path(file_okay=False), help="Write results.jsonl (and csv/coco), overlays and maps here.")
@click.option("--save-maps", is_flag=True, help="With --out: the raw map of each image as .npy.")
@click.option("--no-overlays", is_flag=True, help="With --out: skip the overlay PNGs.")
@click.option("--resume", is_flag=True, help="With --out: skip images already in its results.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def localize(images, model_name, checkpoint, num_classes, class_index, topk, nwc, standard, theta, percentile,
             all_regions, resize, batch_size, workers, device, calibration, fmt, as_json, out, save_maps, no_overlays,
             resume, quiet) -> None:
    """Localize the predicted class in each IMAGE (files, folders, @list.txt) and print its box in original pixels.

    Under torchrun the images are sharded across ranks; rank 0 merges the results in input order.
    Exit code 0: all fine; 1: some images failed (each reported, the rest done); 2: usage error.
    """
    import torch

    from . import pipeline
    from .api import Localizer, make_standard
    from .registry import load_model

    fmt = "jsonl" if as_json else fmt or ("table" if sys.stdout.isatty() else "jsonl")
    if batch_size < 1:
        raise _fail_usage(ValueError("--batch-size must be at least 1"))
    if class_index is not None and topk is not None:
        raise _fail_usage(ValueError("give --class or --topk, not both"))
    if (save_maps or resume) and not out:
        raise _fail_usage(ValueError("--save-maps and --resume need --out DIR"))
    rank, world, backend = pipeline.distributed_context()
    if world > 1 and not out:
        raise _fail_usage(ValueError("under torchrun give --out DIR: each rank writes its shard there"))
    try:
        paths = pipeline.expand_inputs(images)
        if world > 1:
            import torch.distributed as dist

            dist.init_process_group(backend)
            if device is None and torch.cuda.is_available():
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
        model = load_model(model_name, checkpoint=checkpoint, num_classes=num_classes)
        model = model.to(default_device(device))
        loc = Localizer(model, nwc=nwc, standard=make_standard(standard, theta, percentile), all_regions=all_regions,
                        resize=resize, calibration=calibration)
    except (CamlocError, ValueError) as exc:
        raise _fail_usage(exc) from None

    out_dir = Path(out) if out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    journal = None
    if out_dir:
        journal = out_dir / (pipeline.JOURNAL if world == 1 else f"results.rank{rank}.jsonl")
    formatter = pipeline.Formatter(fmt) if world == 1 else None
    writer = pipeline.JournalWriter(journal)
    opts = pipeline.RunOptions(batch_size=batch_size, workers=workers, classes=class_index, topk=topk, out=out,
                               overlays=not no_overlays, save_maps=save_maps, resume=resume, progress=not quiet)

    def emit(d: dict) -> None:
        writer(d)
        if formatter:
            formatter(d)

    try:
        _, failed = pipeline.run(loc, paths, opts, emit, rank, world)
    except KeyboardInterrupt:
        writer.close()
        where = f" in {journal}" if journal else ""
        click.echo(f"camloc: interrupted; every finished result is kept{where} (rerun with --resume)", err=True)
        raise click.exceptions.Exit(130) from None
    except CamlocError as exc:
        writer.close()
        raise _fail_usage(exc) from None
    writer.close()
    if formatter:
        formatter.close()
    if world > 1:
        import torch.distributed as dist

        counts = torch.tensor([failed])
        dist.all_reduce(counts)
        failed = int(counts.item())
        dist.barrier()
        if rank == 0:
            shards = pipeline.journals(out_dir)
            merged = list(pipeline.in_order(paths, shards))
            from .atomic import atomic_write_text

            atomic_write_text(out_dir / pipeline.JOURNAL, "".join(json.dumps(d) + "\n" for d in merged))
            for shard in shards[1:]:
                shard.unlink(missing_ok=True)
            formatter = pipeline.Formatter(fmt)
            for d in merged:
                formatter(d)
            formatter.close()
        dist.barrier()
        dist.destroy_process_group()
    if out_dir and rank == 0 and fmt in ("csv", "coco"):
        from .atomic import atomic_write_text

        buf = io.StringIO()
        pipeline.write_records(pipeline.in_order(paths, [out_dir / pipeline.JOURNAL]), fmt, buf)
        atomic_write_text(out_dir / ("results.csv" if fmt == "csv" else "results.coco.json"), buf.getvalue())
    if failed:
        if rank == 0:
            click.echo(f"camloc: {failed} of {len(paths)} images failed", err=True)
        raise click.exceptions.Exit(1)


@main.command("models")
@click.argument("pattern", default="*")
@click.option("--check", is_flag=True, help="Build each match (random weights) to tell exact-CAM heads from gradient maps.")
def models_cmd(pattern: str, check: bool) -> None:
    """List registered model names matching PATTERN (fnmatch): where weights come from, and the CAM kind.

    Sources: offline (ships with camloc's dependencies), local fine-tune (camloc finetune),
    download (timm / torchvision hubs). CAM: exact (affine head after pooling, or a TAP/GAP
    retrofit), gradient (non-affine head), none (no spatial feature map), or - (not checked; --check).
    """
    from .registry import list_models, resolve_name

    names = list_models(pattern)
    if check and len(names) > 200:
        raise _fail_usage(ValueError(f"{len(names)} names match: narrow the pattern to check them"))
    for name in names:
        source = resolve_name(name)[0]
        where = {"offline": "offline", "finetuned": "local fine-tune"}.get(source, "download")
        kind = "exact" if source in ("offline", "finetuned") else "-"
        if check and source not in ("offline", "finetuned"):
            kind = _cam_kind(name)
        click.echo(f"{name}\t{where}\t{kind}")


def _cam_kind(name: str) -> str:
    import torch

    from .errors import ModelError
    from .extractor import analyze
    from .imaging import preprocess_for
    from .registry import create_model

    try:
        model = create_model(name, pretrained=False)
        h, w = preprocess_for(model).input_size
        return "exact" if analyze(model, torch.randn(1, 3, h, w)).exact else "gradient"
    except ModelError:
        return "none"
    except Exception as exc:  # noqa: BLE001 - a model that cannot even be built is reported, not fatal
        return f"error ({type(exc).__name__})"


def _metric(v) -> str:
    return "-" if v is None else f"{v:6.2f}"


def _print_table(result) -> None:
    rows = result.metrics
    keys = [k for k in ("top1_cls", "top5_cls", "gt_known_loc", "top1_loc", "maxboxacc", "maxboxacc_v2", "pxap")
            if any(k in r for r in rows.values())]
    s = result.settings
    source = f"score maps {result.dataset['scoremaps']}" if "scoremaps" in result.dataset else f"CAM class: {s.cam_class}"
    click.echo(f"protocol {s.protocol}; {result.dataset['n']} images; {source}"
               + (f"; thresholds: theta {s.theta_max} x max, PaS {s.theta_pas} x p{s.percentile:g}"
                  if s.protocol == "rethinking" else f"; tau interval {s.interval}"))
    if s.calibration:
        c = s.calibration
        same = " (the SAME split: an optimistic number)" if os.path.abspath(c["metadata"]) == os.path.abspath(
            result.dataset.get("metadata", "")) else ""
        click.echo(f"calibrated variant: theta {c['theta']} x p{c['percentile']:g}, NWC {'on' if c['nwc'] else 'off'}; "
                   f"calibrated on {c['metadata']}, evaluated on {result.dataset.get('metadata')}{same}")
    click.echo("variant\t" + "\t".join(keys))
    for name, row in rows.items():
        click.echo(name + "\t" + "\t".join(_metric(row.get(k)) for k in keys))


@main.command()
@click.option("--metadata", required=True, type=click.Path(file_okay=False, exists=True), help="Metadata folder (wsolevaluation layout).")
@click.option("--images", type=click.Path(file_okay=False, exists=True), help="Image root [default: the metadata folder].")
@click.option("--masks", "masks_root", type=click.Path(file_okay=False, exists=True), help="Mask root [default: the image root].")
@click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True)
@click.option("--checkpoint", type=click.Path(dir_okay=False))
@click.option("--num-classes", type=int)
@click.option("--protocol", type=click.Choice(["rethinking", "wsolevaluation"]), default="rethinking", show_default=True)
@click.option("--variants", default="cam,nwc,pas,nwc+pas", show_default=True, help="Comma-separated: cam, nwc, pas, nwc+pas.")
@click.option("--cam-class", type=click.Choice(["gt", "top1"]), default="gt", show_default=True,
              help="Map the ground-truth class, or the top-1 prediction (for labels that are not the model's classes).")
@click.option("--interval", type=float, default=0.001, show_default=True, help="Tau step of the wsolevaluation sweep.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--device")
@click.option("--limit", type=int, help="Evaluate the first N images only.")
@click.option("--save-maps", type=click.Path(file_okay=False), help="Write score maps to DIR/<variant>/<image_id>.npy.")
@click.option("--plots", type=click.Path(file_okay=False), help="Write accuracy-vs-threshold and PR-curve PNGs here.")
@click.option("--calibration", type=click.Path(dir_okay=False), help="Add a 'calibrated' variant from camloc calibrate.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def evaluate(metadata, images, masks_root, model_name, checkpoint, num_classes, protocol, variants, cam_class, interval,
             batch_size, device, limit, save_maps, plots, calibration, as_json, quiet) -> None:
    """Evaluate localization on a WSOL split under one protocol, every variant from one forward pass."""

    from .evaluate import Settings, evaluate as run_evaluation
    from .metadata import read_dataset
    from .registry import load_model

    try:
        names = tuple(v.strip() for v in variants.split(",") if v.strip())
        calib = None
        if calibration:
            from dataclasses import asdict

            from .calibrate import Calibration

            calib = asdict(Calibration.load(calibration))
            calib["file"] = str(calibration)
            names = names + ("calibrated",) if "calibrated" not in names else names
        settings = Settings(protocol=protocol, variants=names, cam_class=cam_class, interval=interval, calibration=calib)
        samples = read_dataset(metadata)[:limit] if limit else read_dataset(metadata)
        model = load_model(model_name, checkpoint=checkpoint, num_classes=num_classes)
        model = model.to(default_device(device))
        result = run_evaluation(model, samples, images or metadata, settings, masks=masks_root,
                                batch_size=batch_size, save_maps=save_maps, progress=not quiet)
    except CamlocError as exc:
        raise _fail_usage(exc) from None
    result.dataset.update(metadata=str(metadata), model=model_name)
    if plots:
        from .plots import save_plots

        for path in save_plots(result, plots):
            click.echo(f"wrote {path}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        _print_table(result)


@main.command()
@click.option("--metadata", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--scoremaps", required=True, type=click.Path(file_okay=False, exists=True),
              help="Folder of <image_id>.npy score maps (224 x 224, values in [0, 1]).")
@click.option("--masks", "masks_root", type=click.Path(file_okay=False, exists=True), help="Mask root [default: the metadata folder].")
@click.option("--interval", type=float, default=0.001, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", is_flag=True)
def score(metadata, scoremaps, masks_root, interval, as_json, quiet) -> None:
    """Score saved maps of any WSOL method with MaxBoxAcc, MaxBoxAccV2 and PxAP (wsolevaluation)."""
    from .evaluate import EvaluationResult, Settings, score_maps
    from .metadata import read_dataset

    try:
        settings = Settings(protocol="wsolevaluation", variants=("cam",), interval=interval, cam_class="top1")
        samples = read_dataset(metadata)
        metrics, curves = score_maps(samples, scoremaps, settings, masks_root or metadata, progress=not quiet)
    except CamlocError as exc:
        raise _fail_usage(exc) from None
    result = EvaluationResult(settings, {"metadata": str(metadata), "scoremaps": str(scoremaps), "n": len(samples)},
                              {"maps": metrics}, {"maps": curves})
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        _print_table(result)


@main.command()
@click.option("--metadata", required=True, type=click.Path(file_okay=False, exists=True), help="A labelled split with boxes (e.g. train-fullsup).")
@click.option("--images", type=click.Path(file_okay=False, exists=True))
@click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True)
@click.option("--checkpoint", type=click.Path(dir_okay=False))
@click.option("--num-classes", type=int)
@click.option("--nwc/--no-nwc", default=True, show_default=True)
@click.option("--cam-class", type=click.Choice(["gt", "top1"]), default="gt", show_default=True)
@click.option("--percentiles", default="50,60,70,80,85,90,95,100", show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--device")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to save the calibration (JSON).")
@click.option("--quiet", is_flag=True)
def calibrate(metadata, images, model_name, checkpoint, num_classes, nwc, cam_class, percentiles, batch_size, device,
              out, quiet) -> None:
    """Pick theta and the percentile that maximise GT-known Loc on a labelled split, and save them."""

    from .calibrate import calibrate as run_calibration
    from .metadata import read_dataset
    from .registry import load_model

    try:
        pcts = [float(p) for p in percentiles.split(",") if p.strip()]
        model = load_model(model_name, checkpoint=checkpoint, num_classes=num_classes)
        model = model.to(default_device(device))
        best, _ = run_calibration(model, read_dataset(metadata), images or metadata, nwc=nwc, cam_class=cam_class,
                                  percentiles=pcts, batch_size=batch_size, model_name=model_name,
                                  metadata=str(metadata), progress=not quiet)
        best.save(out)
    except (CamlocError, ValueError) as exc:
        raise _fail_usage(exc) from None
    click.echo(f"theta {best.theta} x p{best.percentile:g} (NWC {'on' if nwc else 'off'}): GT-known Loc "
               f"{best.gt_known_loc:.2f} % on {best.n} images of {metadata}; saved to {out}")


@main.command()
@click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True, help="Architecture to retrofit.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Start from these weights instead of the pretrained ones.")
@click.option("--metadata", type=click.Path(file_okay=False, exists=True), help="Training split (wsolevaluation layout).")
@click.option("--images", type=click.Path(file_okay=False, exists=True), help="Image root [default: the metadata folder].")
@click.option("--image-folder", type=click.Path(file_okay=False, exists=True), help="Or a torchvision ImageFolder (classification only).")
@click.option("--val-metadata", type=click.Path(file_okay=False, exists=True), help="Validation split with boxes: Top-1 Cls and GT-known Loc each epoch.")
@click.option("--val-images", type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Checkpoint, rewritten every epoch.")
@click.option("--pool", type=click.Choice(["tap", "gap"]), default="tap", show_default=True)
@click.option("--theta-tap", type=float, default=0.1, show_default=True)
@click.option("--epochs", type=int, default=5, show_default=True)
@click.option("--lr", type=float, default=0.01, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--backbone-lr-scale", type=float, default=0.1, show_default=True, help="0 freezes the backbone (features computed once).")
@click.option("--weight-decay", type=float, default=5e-4, show_default=True)
@click.option("--device", help="cuda or cpu [default: cuda if available].")
@click.option("--amp", is_flag=True, help="Mixed precision (CUDA).")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from --out if it exists.")
@click.option("--no-register", is_flag=True, help="Do not register the result as <arch>_<pool>.")
@click.option("--quiet", is_flag=True)
def finetune(model_name, checkpoint, metadata, images, image_folder, val_metadata, val_images, out, pool, theta_tap,
             epochs, lr, batch_size, backbone_lr_scale, weight_decay, device, amp, workers, resume, no_register,
             quiet) -> None:
    """Retrofit a CAM-compatible TAP (or GAP) head onto MODEL and fine-tune it briefly."""
    from .finetune import FinetuneConfig, finetune as run_finetune

    cfg = FinetuneConfig(model=model_name, checkpoint=checkpoint, metadata=metadata, images=images,
                         image_folder=image_folder, val_metadata=val_metadata, val_images=val_images, out=out,
                         pool=pool, theta_tap=theta_tap, epochs=epochs, lr=lr, batch_size=batch_size,
                         backbone_lr_scale=backbone_lr_scale, weight_decay=weight_decay, device=device, amp=amp,
                         resume=resume, workers=workers, register=not no_register)
    try:
        run_finetune(cfg, progress=not quiet, log=lambda m: click.echo(m, err=True))
    except (CamlocError, ValueError) as exc:
        raise _fail_usage(exc) from None


if __name__ == "__main__":  # pragma: no cover
    main()
