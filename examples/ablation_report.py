"""The report of an ablation (shared by ``synthetic_ablation.py`` and ``cub_ablation.py``): Table 3-shaped
tables, the thresholds chosen on the calibration split, accuracy-against-threshold curves and overlay
grids, from the ``result.json`` of every finished run under ``OUT/runs``.

A run's result is :func:`camloc.eval.ablation.measure`'s output plus ``name``, ``method``
(``cam``/``has``/``adl``/``head``), ``pool``, ``seed``, ``config`` (the TrainConfig as a dict), ``train_minutes`` and ``measure_minutes``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

LABELS = {"cam": "CAM", "has": "HaS", "adl": "ADL", "head": "head-only"}
ORDER = list(LABELS)


def fingerprint(cfg, data: Optional[dict] = None) -> dict[str, Any]:
    """What makes a run's numbers: its TrainConfig without the output paths, and the data it used."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in ("out", "last_file")}
    return json.loads(json.dumps({"config": settings, "data": data}, default=str))


def run(name: str, method: str, pool: str, cfg, folder: Path, test, calibration, data: Optional[dict] = None,
        extra: Optional[Callable[[Any], dict]] = None, labels: Optional[dict] = None) -> dict:
    """Train one model by ``cfg`` and measure it into ``folder/result.json``, unless a finished run with
    the same :func:`fingerprint` is there (a run with other settings is redone, not mixed in).

    ``extra(model)`` adds its keys to the result (more measurements of the trained model); ``labels``
    are recorded as they are (what the run stands for in a report, e.g. its body signal)."""
    from camloc.eval.ablation import measure
    from camloc.train.loop import train
    from camloc.utils.atomic import atomic_write_text

    result_path = folder / "result.json"
    key = fingerprint(cfg, data)
    if result_path.is_file():
        old = json.loads(result_path.read_text())
        if old.get("fingerprint") == key:
            print(f"{name}: done before with the same settings, kept", flush=True)
            return old
        print(f"{name}: a result with other settings is there; training again", flush=True)
    t0 = time.perf_counter()
    model = train(cfg, progress=False, log=lambda m: None)
    minutes = (time.perf_counter() - t0) / 60
    t1 = time.perf_counter()
    result = measure(model, test, calibration)
    if extra is not None:
        result.update(extra(model))
    result.update(labels or {})
    result.update(name=name, method=method, pool=pool, seed=cfg.seed, train_minutes=round(minutes, 2),
                  measure_minutes=round((time.perf_counter() - t1) / 60, 2), config=cfg.to_dict(), fingerprint=key)
    atomic_write_text(result_path, json.dumps(result, indent=1))
    m = result["metrics"]
    print(f"{name}: trained in {minutes:.1f} min; Top-1 Cls {m['rethinking/cam/top1_cls']:.1f}, GT-known Loc "
          f"CAM {m['rethinking/cam/gt_known_loc']:.1f} -> NWC+PaS {m['rethinking/nwc+pas/gt_known_loc']:.1f}", flush=True)
    return result


def run_all(jobs: Sequence[tuple[str, Callable[[], Any]]], report: Callable[[], None]) -> int:
    """Run every job (a failed one is reported and the others go on), then the report; the exit status."""
    import sys

    failures = []
    for name, job in jobs:
        try:
            job()
        except Exception as exc:  # one failed run is reported; the others go on
            failures.append(name)
            print(f"{name}: FAILED ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
    report()
    if failures:
        print(f"{len(failures)} run(s) failed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


def one_per_class(samples: Sequence, n: int = 4) -> list:
    """The first sample of each of the first ``n`` classes met (the overlay grid's rows)."""
    chosen, seen = [], set()
    for s in samples:
        if s.label not in seen and len(chosen) < n:
            seen.add(s.label)
            chosen.append(s)
    return chosen


def load_results(out: Path, keep=lambda r: True) -> list[dict]:
    """Every finished run under ``out/runs`` that ``keep`` accepts."""
    results = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/result.json"))]
    return [r for r in results if keep(r)]


def group(results: Sequence[dict]) -> dict[tuple[str, str], list[dict]]:
    """Results by (method, pool), in the order CAM, HaS, ADL, head-only; GAP before TAP."""
    by: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(results, key=lambda r: (ORDER.index(r["method"]), r["pool"], r["seed"])):
        by.setdefault((r["method"], r["pool"]), []).append(r)
    return by


def tables(results: Sequence[dict], intro: str, calibration_name: str, mechanism: bool = True) -> str:
    """The Markdown report: one Table 3-shaped table per training method, the chosen thresholds, and (with
    ``mechanism``, for runs that were diagnosed) every model's localization beside its diagnosis."""
    from camloc.eval.ablation import COLUMNS, markdown, summarize, table3_rows

    by = group(results)
    text = [intro, ""]
    header = ["fixes"] + [h for _, h in COLUMNS]
    for method in dict.fromkeys(m for m, _ in by):
        runs = {p: by.get((method, p), []) for p in ("gap", "tap")}
        epochs = sorted({r["config"]["epochs"] for rs in runs.values() for r in rs})
        text.append(f"\n### {LABELS[method]} (GAP runs: {len(runs['gap'])}, TAP runs: {len(runs['tap'])}, "
                    f"epochs: {', '.join(map(str, epochs))})\n")
        text.append(markdown(header, table3_rows(*(summarize([r["metrics"] for r in runs[p]]) for p in ("gap", "tap")))))
    rows = []
    for (method, pool), rs in by.items():
        for variant in ("cam", "nwc", "pas", "nwc+pas"):
            chosen = [r["thresholds"][variant]["theta"] for r in rs if variant in r.get("thresholds", {})]
            if chosen:
                rows.append([f"{LABELS[method]}-{pool.upper()}", variant, ", ".join(f"{t:.2f}" for t in chosen)])
    if rows:
        text.append(f"\n### Thresholds chosen on {calibration_name} (theta, one per run)\n")
        text.append(markdown(["model", "variant", "theta"], rows))
    if mechanism and any("diagnose" in r for r in results):
        text.append("\n### Mechanism: each model's localization beside its diagnosis (camloc diagnose on the test split)\n")
        text.append(mechanism_table(results))
    minutes = sum(r["train_minutes"] + r["measure_minutes"] for r in results)
    text.append(f"\n{len(results)} runs; {minutes:.0f} minutes of training and measuring in all.\n")
    return "\n".join(text)


def curves_plot(results: Sequence[dict], path: Path, title: str) -> Path | None:
    """Box accuracy at IoU 0.5 against tau for CAM and for NWC + PaS, one line per (method, pool)."""
    from camloc.viz.figures import save_threshold_comparison

    panels, taus = {}, None
    for variant, name in (("cam", "CAM (threshold = tau x max)"), ("nwc+pas", "NWC + PaS (threshold = tau x p90)")):
        lines = {}
        for (method, pool), rs in group(results).items():
            with_curve = [r for r in rs if variant in r.get("curves", {})]
            if with_curve:
                lines[f"{LABELS[method]}-{pool.upper()}"] = [r["curves"][variant]["boxacc50"] for r in with_curve]
                taus = with_curve[0]["curves"][variant]["taus"]
        if lines:
            panels[name] = lines
    if not panels:
        return None
    return save_threshold_comparison(panels, taus, path, title=title)


def overlay_grids(results: Sequence[dict], out: Path, images: Sequence[str], classes: Sequence[int],
                  truth: Sequence, seed: int, title: str, runs: Optional[Path] = None) -> list[Path]:
    """The same images under every (method, pool) model of one seed: vanilla CAM boxes and NWC + PaS boxes
    (checkpoints under ``runs``, default ``out/runs``)."""
    import camloc
    from camloc.eval.batches import protocol_preprocess
    from camloc.models.registry import load_model
    from camloc.viz.render import save_overlay_grid

    models = {}
    for (method, pool), rs in group(results).items():
        first = next((r for r in rs if r["seed"] == seed), None)
        ckpt = (runs or out / "runs") / first["name"] / "last.pt" if first else None
        if ckpt is not None and ckpt.is_file():
            models[f"{LABELS[method]}-{pool.upper()}"] = load_model(str(ckpt))
    written = []
    for variant, label, kwargs in (
            ("cam", "vanilla CAM (0.2 x max)", {"nwc": False, "standard": "max", "theta": 0.2}),
            ("nwc_pas", "NWC + PaS (0.35 x p90)", {"nwc": True, "standard": "percentile", "theta": 0.35, "percentile": 90.0})):
        # the rethinking protocol's input (resize 256 x 256, center crop 224), as the tables
        columns = {name: camloc.boxes(m, list(images), classes=list(classes),
                                      preprocess=protocol_preprocess("rethinking", m), **kwargs)
                   for name, m in models.items()}
        if columns:
            written.append(save_overlay_grid(list(images), columns, out / f"overlays_{variant}.png", truth,
                                             title=f"{title}, seed {seed}, boxes by {label}"))
    return written


def write_report(out: Path, results: Sequence[dict], intro: str, calibration_name: str, images: Sequence[str],
                 classes: Sequence[int], truth: Sequence, curve_title: str, overlay_title: str,
                 runs: Optional[Path] = None, mechanism: bool = True) -> None:
    """``table.md``, ``results.json``, ``accuracy_vs_threshold.png`` and ``overlays_*.png`` under ``out``
    (the runs' checkpoints under ``runs``, default ``out/runs``)."""
    from camloc.utils.atomic import atomic_write_text

    if not results:
        print("no finished runs to report")
        return
    table = tables(results, intro, calibration_name, mechanism)
    atomic_write_text(out / "table.md", table)
    atomic_write_text(out / "results.json", json.dumps(list(results), indent=1))
    print(table)
    path = curves_plot(results, out / "accuracy_vs_threshold.png", curve_title)
    for p in ([path] if path else []) + overlay_grids(results, out, images, classes, truth, min(r["seed"] for r in results),
                                                      overlay_title, runs):
        print(f"wrote {p}")


#: The mechanism table's columns: (header, where the value is in a run's result).
MECHANISM = (
    ("Top-1 Cls", ("metrics", "rethinking/cam/top1_cls")),
    ("GT-known CAM", ("metrics", "rethinking/cam/gt_known_loc")),
    ("GT-known NWC", ("metrics", "rethinking/nwc/gt_known_loc")),
    ("GT-known CAM, calibrated", ("metrics", "calibrated/cam/gt_known_loc")),
    ("MaxBoxAccV2 CAM", ("metrics", "wsolevaluation/cam/maxboxacc_v2")),
    ("area-weight rho", ("diagnose", "area_weight_rho")),
    ("IoA +", ("diagnose", "ioa_positive")),
    ("IoA -", ("diagnose", "ioa_negative")),
    ("neg. weights", ("diagnose", "negative_weight_share")),
    ("box / GT CAM", ("diagnose", "box_gt_area_ratio", "cam")),
    ("box / GT NWC", ("diagnose", "box_gt_area_ratio", "nwc")),
    ("Top-1 part only", ("cue_top1", "part")),
    ("Top-1 body only", ("cue_top1", "body")),
)


def _lookup(result: dict, path: Sequence[str]) -> Optional[float]:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, (int, float)) else None


def mechanism_table(results: Sequence[dict]) -> str:
    """One row per (body signal, architecture, method, pool): its localization beside its diagnosis, mean ±
    std over seeds (diagnostics as fractions to 2 decimals, accuracies in % to 1)."""
    from camloc.eval.ablation import markdown

    by: dict[tuple, list[dict]] = {}
    for r in sorted(results, key=lambda r: (r.get("body_signal", 0.0), r.get("arch", ""), ORDER.index(r["method"]),
                                            r["pool"], r["seed"])):
        by.setdefault((r.get("body_signal", 0.0), r.get("arch", ""), r["method"], r["pool"]), []).append(r)
    synthetic = any("body_signal" in r for r in results)  # body signal and net columns only where they vary
    rows = []
    for (q, arch, method, pool), rs in by.items():
        row = ([f"{q:g}", arch] if synthetic else []) + [f"{LABELS[method]}-{pool.upper()}", str(len(rs))]
        for header, path in MECHANISM:
            values = [v for v in (_lookup(r, path) for r in rs) if v is not None]
            digits = 2 if path[0] == "diagnose" else 1
            if not values:
                row.append("-")
            elif len(values) == 1:
                row.append(f"{values[0]:.{digits}f}")
            else:
                mean = sum(values) / len(values)
                std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
                row.append(f"{mean:.{digits}f} ± {std:.{digits}f}")
        rows.append(row)
    columns = [(h, path) for h, path in MECHANISM if any(_lookup(r, path) is not None for r in results)]
    rows = [row[: 4 if synthetic else 2] + [row[(4 if synthetic else 2) + MECHANISM.index(c)] for c in columns]
            for row in rows]
    return markdown((["body signal", "net"] if synthetic else []) + ["model", "runs"] + [h for h, _ in columns], rows)


#: The mechanism figure's panels: (title, where the value is, scale to show it in).
MECHANISM_PANELS = (
    ("GT-known Loc, vanilla CAM (%)", ("metrics", "rethinking/cam/gt_known_loc")),
    ("GT-known Loc, NWC (%)", ("metrics", "rethinking/nwc/gt_known_loc")),
    ("area-weight rank correlation (Fig. 2)", ("diagnose", "area_weight_rho")),
    ("IoA of the negative-weight map (Fig. 3b)", ("diagnose", "ioa_negative")),
)


def mechanism_plot(results: Sequence[dict], path: Path, title: str) -> Optional[Path]:
    """Bars of GAP against TAP for every (body signal, net, method): localization and the diagnosis side by
    side, mean over seeds with one standard deviation and every seed's value as a dot."""
    import numpy as np

    from camloc.viz.figures import COLOURS, new_figure, save_figure

    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in sorted(results, key=lambda r: (r.get("body_signal", 0.0), r.get("arch", ""), ORDER.index(r["method"]))):
        key = (r.get("body_signal", 0.0), r.get("arch", ""), r["method"])
        groups.setdefault(key, {}).setdefault(r["pool"], []).append(r)
    if not groups or not any("diagnose" in r for r in results):
        return None
    fig = new_figure(3.4 * len(MECHANISM_PANELS) + 1.6, 4.2)
    axes = fig.subplots(1, len(MECHANISM_PANELS))
    x = np.arange(len(groups))
    for ax, (panel, where) in zip(axes, MECHANISM_PANELS, strict=True):
        for j, (pool, hatch) in enumerate((("gap", ""), ("tap", "//"))):
            values = [[v for v in (_lookup(r, where) for r in g.get(pool, [])) if v is not None] for g in groups.values()]
            means = [float(np.mean(v)) if v else np.nan for v in values]
            stds = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in values]
            pos = x + (j - 0.5) * 0.38
            ax.bar(pos, means, 0.38, yerr=stds, color=COLOURS[j], alpha=0.75, hatch=hatch, capsize=3,
                   label=pool.upper(), edgecolor="black", linewidth=0.5)
            for p, v in zip(pos, values, strict=True):
                ax.plot([p] * len(v), v, "o", color="black", markersize=2.5)
        ax.set_title(panel, fontsize=9)
        ax.set_xticks(x, [f"Q {q:g}\n{LABELS[m]}" + ("\nno BN" if arch.endswith("nobn") else "")
                          for q, arch, m in groups], fontsize=8)
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))
