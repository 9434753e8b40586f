"""The architecture matrix: which timm and transformers classifiers get exact CAMs, gradient maps, or no map.

Every entry of :data:`MATRIX` (timm) and :data:`HF_MATRIX` (transformers) is built with random weights (the head's structure, not its
training, decides the kind of map) and analysed by camloc (:func:`camloc.cam.analysis.analyze`, the
analysis :class:`camloc.CAMExtractor` runs on a first batch) on one random image at the entry's
input size (224 unless the model only takes another). :func:`classify` says what camloc made of it:

* ``exact``: the head is affine after pooling, ``mean_hw(M_k) + b_k = logit_k`` (checked on the
  analysed pass's own features: the relative error is part of the result);
* ``gradient``: the map is the gradient-weighted feature map, with the reason (``class token``,
  ``not affine after pooling``, ``no single classifier``);
* ``impossible``: camloc finds no spatial feature map, with the error's reason.

This file is the one place the list lives. ``tests/cam/test_architectures.py`` classifies every
entry again and compares with the committed ``docs/architectures.md``, which this script writes:

    python benchmarks/architectures.py               # rewrite docs/architectures.md
    python benchmarks/architectures.py --check       # only compare, exit 1 on a difference

Example:
    >>> classify(Entry("resnet18", "ResNet")).cells()
    ('resnet18', 'ResNet', 'exact', 'avg', 'layer4', 'nchw', '224', '7x7')
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import timm
import torch

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architectures.md"

sys.path.insert(0, str(ROOT))

from camloc.cam import heads  # noqa: E402
from camloc.cam.analysis import analyze, as_logits, traced  # noqa: E402
from camloc.utils.errors import ModelError  # noqa: E402


@dataclass(frozen=True)
class Entry:
    """One architecture: its name, its family, the input side it runs at, creation kwargs, its library.

    For ``library="timm"`` the name is a timm model and ``kwargs`` go to ``timm.create_model``; for
    ``library="transformers"`` the name is a transformers model class, ``kwargs`` set its config (a small
    one: the structure decides the map, not the size) and ``note`` says what sets it apart in the table.
    """

    name: str
    family: str
    size: int = 224
    kwargs: dict = field(default_factory=dict)
    library: str = "timm"
    note: str = ""

    @property
    def label(self) -> str:
        if self.library == "transformers":
            return f"{self.name} ({self.note})" if self.note else self.name
        extra = ", ".join(f"{k}={v!r}" for k, v in sorted(self.kwargs.items()))
        return f"{self.name} ({extra})" if extra else self.name


#: The smallest registered variant of each family (timm names), random weights.
MATRIX: list[Entry] = [
    Entry("resnet18", "ResNet"),
    Entry("resnext26ts", "ResNeXt"),
    Entry("regnetx_002", "RegNet"),
    Entry("efficientnet_b0", "EfficientNet"),
    Entry("tf_efficientnetv2_b0", "EfficientNetV2"),
    Entry("mobilenetv1_100", "MobileNetV1"),
    Entry("mobilenetv2_050", "MobileNetV2"),
    Entry("mobilenetv3_small_050", "MobileNetV3"),
    Entry("mobilenetv4_conv_small", "MobileNetV4"),
    Entry("lcnet_050", "LCNet"),
    Entry("ghostnet_100", "GhostNet"),
    Entry("mnasnet_small", "MnasNet"),
    Entry("convnext_atto", "ConvNeXt"),
    Entry("convnextv2_atto", "ConvNeXtV2"),
    Entry("densenet121", "DenseNet"),
    Entry("inception_v3", "Inception"),
    Entry("vgg11", "VGG"),
    Entry("hrnet_w18_small", "HRNet"),
    Entry("vit_tiny_patch16_224", "ViT"),
    Entry("vit_tiny_patch16_224", "ViT", kwargs={"global_pool": "avg"}),
    Entry("vit_tiny_patch16_224", "ViT", kwargs={"global_pool": "map"}),
    Entry("vit_pwee_patch16_reg1_gap_256", "ViT (register tokens)", 256),
    Entry("deit_tiny_patch16_224", "DeiT"),
    Entry("deit_tiny_distilled_patch16_224", "DeiT"),
    Entry("beit_base_patch16_224", "BEiT"),
    Entry("eva02_tiny_patch14_224", "EVA"),
    Entry("cait_xxs24_224", "CaiT"),
    Entry("pit_ti_224", "PiT"),
    Entry("xcit_nano_12_p16_224", "XCiT"),
    Entry("levit_128s", "LeViT"),
    Entry("swin_tiny_patch4_window7_224", "Swin"),
    Entry("swinv2_cr_tiny_ns_224", "SwinV2"),
    Entry("maxvit_pico_rw_256", "MaxViT", 256),
    Entry("coatnet_pico_rw_224", "CoAtNet"),
    Entry("efficientformer_l1", "EfficientFormer"),
    Entry("efficientformerv2_s0", "EfficientFormerV2"),
    Entry("mobilevit_xxs", "MobileViT", 256),
    Entry("mobilevitv2_050", "MobileViTV2", 256),
    Entry("fastvit_t8", "FastViT", 256),
    Entry("tiny_vit_5m_224", "TinyViT"),
    Entry("edgenext_xx_small", "EdgeNeXt", 256),
    Entry("poolformer_s12", "PoolFormer"),
    Entry("mixer_s16_224", "MLP-Mixer"),
    Entry("resmlp_12_224", "ResMLP"),
    Entry("pvt_v2_b0", "PVTv2"),
    Entry("coat_lite_tiny", "CoaT"),
    Entry("hiera_tiny_224", "Hiera"),
    Entry("efficientvit_m0", "EfficientViT (MSRA)"),
]


_CNN = {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1]}
_TOKENS = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
_WINDOWS = {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2]}


def _hf(name: str, family: str, note: str = "", **config) -> Entry:
    return Entry(name, family, kwargs=config, library="transformers", note=note)


#: Hugging Face transformers image classifiers, small random-initialised configs.
HF_MATRIX: list[Entry] = [
    _hf("ResNetForImageClassification", "ResNet", embedding_size=16, **_CNN),
    _hf("ConvNextForImageClassification", "ConvNeXt", **_CNN),
    _hf("ConvNextV2ForImageClassification", "ConvNeXtV2", **_CNN),
    _hf("EfficientNetForImageClassification", "EfficientNet", width_coefficient=0.25, depth_coefficient=0.25,
        hidden_dim=320),
    _hf("MobileNetV2ForImageClassification", "MobileNetV2", depth_multiplier=0.35),
    _hf("RegNetForImageClassification", "RegNet", embedding_size=16, groups_width=8, **_CNN),
    _hf("ViTForImageClassification", "ViT", **_TOKENS),
    _hf("DeiTForImageClassification", "DeiT", **_TOKENS),
    _hf("DeiTForImageClassificationWithTeacher", "DeiT", **_TOKENS),
    _hf("SwinForImageClassification", "Swin", **_WINDOWS),
    _hf("Swinv2ForImageClassification", "SwinV2", **_WINDOWS),
    _hf("BeitForImageClassification", "BEiT", **_TOKENS),
    _hf("BeitForImageClassification", "BEiT", "use_mean_pooling=False", use_mean_pooling=False, **_TOKENS),
    _hf("Dinov2ForImageClassification", "DINOv2", patch_size=14, **_TOKENS),
]
#: Every entry: timm's, then transformers'.
ENTRIES: list[Entry] = MATRIX + HF_MATRIX


@dataclass(frozen=True)
class Row:
    """What camloc made of one entry; :meth:`cells` is its line in docs/architectures.md."""

    model: str
    family: str
    kind: str
    reason: str
    feature_layer: str
    layout: str
    input: str
    grid: str
    error: Optional[float] = None  # exact heads: max |mean(M) + b - logit| / max |logit|
    library: str = "timm"

    def cells(self) -> tuple[str, ...]:
        return (self.model, self.family, self.kind, self.reason, self.feature_layer, self.layout, self.input, self.grid)


COLUMNS = ("model", "family", "CAM", "reason / head", "feature layer", "layout", "input", "grid")


def build(entry: Entry) -> torch.nn.Module:
    """The entry's model, random weights, a 1000-class head (a few timm names default to none), eval mode."""
    if entry.library == "transformers":
        import transformers

        cls = getattr(transformers, entry.name)
        torch.manual_seed(0)
        return cls(cls.config_class(**{"num_labels": 1000, **entry.kwargs})).eval()
    return timm.create_model(entry.name, pretrained=False, **{"num_classes": 1000, **entry.kwargs}).eval()


def short(error: Exception) -> str:
    """The first clause of a camloc error, for a table cell."""
    text = str(error).split(": ", 1)[-1] if str(error).startswith(type(error).__name__) else str(error)
    return re.split(r"[:;(]", text, maxsplit=1)[0].strip()


def classify(entry: Entry, model: Optional[torch.nn.Module] = None) -> Row:
    """Build ``entry`` (unless given) and classify its head with camloc, as a :class:`Row`.

    One traced forward pass (plus, for a token map whose head is not exact, the probe that finds
    the layer the logit reads). Exact heads are checked on that pass: ``Row.error`` is
    ``max_k |mean_hw(M_k) + b_k - logit_k| / max |logit|`` over all classes.
    """
    model = model if model is not None else build(entry)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, entry.size, entry.size, generator=generator)
    base = dict(model=entry.label, family=entry.family, input=str(entry.size), library=entry.library)
    try:
        run = traced(model, x)
        spec = analyze(model, x, run=run)
    except ModelError as exc:
        return Row(kind="impossible", reason=short(exc), feature_layer="-", layout="-", grid="-", **base)
    pos = run.last_index(spec.feature_layer)
    feats = run.snapshot if run.snapshot_index == pos else run.records[pos].output
    h, w = heads.as_grid(spec, feats, x.shape[-2:]).shape[-2:]
    error = None
    if spec.exact:
        modules = dict(model.named_modules())
        logits = as_logits(run.output).float()
        classes = torch.arange(logits.shape[1]).expand(logits.shape[0], -1)
        norm = modules[spec.norm] if spec.norm else None
        maps, bias = heads.exact_maps(spec, feats, modules[spec.classifier], norm, classes, False, x.shape[-2:])
        error = ((maps.mean((2, 3)) + bias - logits).abs().max() / logits.abs().max().clamp_min(1e-12)).item()
    return Row(
        kind="exact" if spec.exact else "gradient", reason=spec.form, feature_layer=spec.feature_layer,
        layout=spec.layout if spec.layout != "tokens" else f"tokens (+{spec.prefix_tokens})",
        grid=f"{h}x{w}", error=error, **base,
    )


def classify_all(entries: list[Entry] = ENTRIES, progress: bool = False) -> list[Row]:
    rows = []
    for entry in entries:
        start = time.perf_counter()
        rows.append(classify(entry))
        if progress:
            print(f"{entry.label:60s} {rows[-1].kind:10s} {time.perf_counter() - start:6.1f} s", file=sys.stderr)
    return rows


def summary(rows: list[Row]) -> str:
    """``N models, F families: e exact, g gradient, i impossible.`` for one table."""
    counts = {k: sum(r.kind == k for r in rows) for k in ("exact", "gradient", "impossible")}
    return (f"{len(rows)} models, {len({r.family for r in rows})} families: {counts['exact']} exact, "
            f"{counts['gradient']} gradient, {counts['impossible']} impossible.")


def table(rows: list[Row]) -> list[str]:
    """The table lines of ``rows``."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [f"`{c}`" if i in (0, 4) and c != "-" else c for i, c in enumerate(row.cells())]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(rows: list[Row]) -> str:
    """docs/architectures.md: a summary and one table line per entry, timm's table then transformers'."""
    timm_rows = [r for r in rows if r.library == "timm"]
    hf_rows = [r for r in rows if r.library == "transformers"]
    lines = [
        "# Architecture matrix",
        "",
        "Generated by `python benchmarks/architectures.py` (the list lives there); "
        "`tests/cam/test_architectures.py` checks that every model is still classified as this file says.",
        "Each model is a timm architecture with random weights (a 1000-class head), analysed by camloc as "
        "`camloc.CAMExtractor` does on a first batch: one random image of the given input side.",
        "",
        summary(timm_rows),
        "",
        "* **exact**: the head is affine after pooling, so `mean_hw(M_k) + b_k = logit_k` (checked for each "
        "model and all 1000 classes, relative error at most 1e-4); *reason / head* gives the pooled form and any "
        "folded norm.",
        "* **gradient**: the map weights the feature map by the gradient of the logit (`exact=False`); "
        "*class token*: the head reads the class token, so the map is taken before the last attention; "
        "*not affine after pooling*: an MLP or conv head; *no single classifier*: no one Linear gives the logits "
        "(e.g. averaged distillation heads).",
        "* **impossible**: no spatial feature map was found.",
        "* *layout*: how the feature layer's output lies on its grid: `nchw`, `nhwc` (channels last), "
        "`tokens (+p)` (p prefix tokens: class, distillation, register, then the patch grid).",
        "",
        *table(timm_rows),
    ]
    if hf_rows:
        lines += [
            "",
            "## Hugging Face transformers",
            "",
            "The image classifiers of the `transformers` library (`pip install \"camloc[hf]\"`), each its "
            "`...ForImageClassification` class built from a small config (two layers or one block per stage, "
            "a 1000-class head) with random weights, analysed the same way. A model loaded with "
            "`camloc.load_model(\"hf:ORG/NAME\")` or from a folder `save_pretrained` wrote gets the same map; its "
            "results are labelled by `config.id2label`. The columns are those above.",
            "",
            summary(hf_rows),
            "",
            "* DINOv2's head reads the class token and the mean of the patch tokens side by side, so the logit "
            "is not affine in the patch grid alone: a gradient map.",
            "* The DeiT classes keep a distillation token after the class token (`tokens (+2)`); "
            "`DeiTForImageClassificationWithTeacher` averages two heads, one on each token.",
            "",
            *table(hf_rows),
        ]
    return "\n".join(lines) + "\n"


def parse(text: str) -> list[tuple[str, ...]]:
    """The table lines of a rendered docs/architectures.md, as :meth:`Row.cells` tuples."""
    out = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| model |"):
            out.append(tuple(c.strip().strip("`") for c in line.strip().strip("|").split(" | ")))
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/architectures.md, write nothing")
    parser.add_argument("--out", type=Path, default=DOC, help="where to write the table (default docs/architectures.md)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = classify_all(progress=True)
    bad = [r for r in rows if r.error is not None and r.error > 1e-4]
    for r in bad:
        print(f"{r.model}: exact head but mean(M) + b differs from the logit by {r.error:.2e}", file=sys.stderr)
    print(f"{len(rows)} models in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.check:
        committed = parse(args.out.read_text(encoding="utf-8"))
        diff = [r.cells() for r in rows if r.cells() not in committed] + [c for c in committed if c not in [r.cells() for r in rows]]
        for d in diff:
            print("differs:", " | ".join(d), file=sys.stderr)
        return 1 if diff or bad else 0
    if bad:
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
