"""Training recipes: one flat, typed set of hyperparameters, read from TOML and overridden by ``key=value``.

A recipe is a TOML file whose keys are the fields of :class:`TrainConfig` (sections are allowed for
readability and are ignored: a key means the same wherever it stands). ``base = "NAME"`` starts from
another recipe. Every recipe that ships with camloc (``camloc/train/recipes/*.toml``) says on each
line where the value comes from: the paper, the authors' code (won-bae/rethinkingCAM),
wsolevaluation (clovaai/wsolevaluation), ADL's code (junsukchoe/ADL), or ``ours`` where nothing
public gives it.

Example:
    >>> from camloc.train.config import list_recipes, load_config
    >>> "vgg16_tap_cub" in list_recipes()
    True
    >>> cfg = load_config("vgg16_tap_cub", ["epochs=2"], check=False)   # check=False: no dataset named yet
    >>> cfg.lr, cfg.pool, cfg.epochs, cfg.milestones
    (0.003, 'tap', 2, [60, 120, 180])
    >>> load_config("vgg16_tap_cub", ["epoch=2"])
    Traceback (most recent call last):
    camloc.utils.errors.UsageError: command line: unknown key 'epoch'; did you mean epochs?
    >>> load_config("wsol_resnet50_cam", ["train_metadata=no/such/folder"])
    Traceback (most recent call last):
    camloc.utils.errors.UsageError: train_metadata=no/such/folder: no such folder; check the path

Every problem (an unknown key, a wrong type, a missing dataset folder, a method that does not fit)
is one :class:`~camloc.utils.errors.UsageError` line naming the key and the fix, raised before any work.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from ..utils.errors import UsageError

#: Where camloc's own recipes live.
RECIPES = Path(__file__).resolve().parent / "recipes"
SCHEDULES = ("step", "wsol_step", "multistep", "cosine", "constant")
LR_RULES = ("uniform", "new_layers", "backbone_lr", "pretrained_grad")
SELECTIONS = ("wsolevaluation", "authors", "last")


@dataclass
class TrainConfig:
    """Every hyperparameter of a run (the recipe files document each one)."""

    # the network
    arch: str = "resnet18"
    pretrained: bool = True
    checkpoint: str | None = None
    pool: str = "gap"
    theta_tap: float = 0.0
    # the methods
    has: bool = False
    has_patch: int = 32
    has_drop_rate: float = 0.5
    adl: bool = False
    adl_positions: list = field(default_factory=list)
    adl_drop_rate: float = 0.75
    adl_gamma: float = 0.9
    # data
    train_metadata: str | None = None
    train_images: str | None = None
    image_folder: str | None = None
    multilabel: bool = False
    val_metadata: str | None = None
    val_images: str | None = None
    test_metadata: str | None = None
    test_images: str | None = None
    resize: int = 256
    crop: int = 224
    workers: int = 4
    # optimisation
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    lr_rule: str = "uniform"
    new_layers_lr_ratio: float = 10.0
    backbone_lr_scale: float = 1.0
    pretrained_grad_scale: float = 0.1
    batch_size: int = 64
    accumulate: int = 1
    epochs: int = 40
    schedule: str = "step"
    step_size: int = 30
    milestones: list = field(default_factory=list)
    lr_decay: float = 0.1
    warmup_epochs: int = 0
    # precision and machine
    amp: str = "none"
    channels_last: bool = False
    sync_bn: bool = False
    freeze_backbone: bool = False
    seed: int = 0
    deterministic: bool = False
    device: str | None = None
    threads: int | None = None
    # evaluation, selection, output
    eval_every: int = 1
    eval_variants: list = field(default_factory=lambda: ["cam", "nwc+pas"])
    selection: str = "wsolevaluation"
    out: str = "runs/train"
    last_file: str | None = None
    register: str | None = None
    resume: bool = False
    plots: bool = True

    # -- reading and checking ------------------------------------------------------------------
    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (not checked: call :meth:`validate` on it).

        Example:
            >>> from camloc.train.config import TrainConfig
            >>> TrainConfig().replace(epochs=3, lr=0.1).epochs
            3
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (lists copied), as a run's checkpoint stores it under ``train_config``.

        Example:
            >>> from camloc.train.config import TrainConfig
            >>> d = TrainConfig().to_dict()
            >>> d["arch"], d["eval_variants"], len(d)
            ('resnet18', ['cam', 'nwc+pas'], 56)
        """
        return dataclasses.asdict(self)

    @property
    def last_path(self) -> Path:
        """The checkpoint rewritten every epoch (resume reads it)."""
        return Path(self.last_file) if self.last_file else Path(self.out) / "last.pt"

    def validate(self) -> TrainConfig:
        """Refuse values that cannot work, each with one line naming the key and the fix."""
        choices = {"pool": ("gap", "tap"), "optimizer": ("sgd", "adamw"), "schedule": SCHEDULES, "lr_rule": LR_RULES,
                   "amp": ("none", "bf16", "fp16"), "selection": SELECTIONS}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise UsageError(f"{key}={getattr(self, key)!r} is not one of {', '.join(allowed)}")
        positive = ("has_patch", "batch_size", "accumulate", "epochs", "step_size", "resize", "crop", "eval_every")
        for key in positive:
            if getattr(self, key) < 1:
                raise UsageError(f"{key}={getattr(self, key)} must be at least 1")
        for key in ("theta_tap", "has_drop_rate", "adl_drop_rate", "adl_gamma", "backbone_lr_scale"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise UsageError(f"{key}={getattr(self, key)} must be in [0, 1]")
        if self.crop > self.resize:
            raise UsageError(f"crop={self.crop} is larger than resize={self.resize}: crop from the resized image")
        if self.lr <= 0:
            raise UsageError(f"lr={self.lr} must be positive")
        if self.workers < 0 or self.warmup_epochs < 0:
            raise UsageError("workers and warmup_epochs must not be negative")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"threads={self.threads} must be at least 1 (or none: PyTorch's default)")
        if self.has and self.has_patch > self.crop:
            raise UsageError(f"has_patch={self.has_patch} is larger than the {self.crop} px crop: HaS would hide all "
                             "or nothing; use a smaller has_patch")
        if self.freeze_backbone and (self.has or self.adl):
            raise UsageError("freeze_backbone trains on cached features: HaS and ADL change the backbone's input or "
                             "features, so set has=false and adl=false, or freeze_backbone=false")
        if self.selection == "authors" and not self.test_metadata:
            raise UsageError("selection='authors' keeps the best Top-1 Loc on the test split: set test_metadata")
        if self.pretrained and not self.checkpoint:
            from ..models.wsol import ARCHITECTURES

            spec = ARCHITECTURES.get(self.arch)
            if spec is not None and not spec.pretrained:
                raise UsageError(f"arch={self.arch} has no ImageNet weights (it is trained from scratch): "
                                 "set pretrained=false")
        if self.register and "/" in self.register:
            raise UsageError(f"register={self.register!r}: a name, not a path (e.g. vgg16_tap)")
        _check_folder("train_metadata", self.train_metadata, metadata=True)
        _check_folder("image_folder", self.image_folder, metadata=False)
        if not self.train_metadata and not self.image_folder:
            raise UsageError("no training data: set train_metadata=DIR (wsolevaluation layout) or image_folder=DIR")
        if self.multilabel and self.image_folder:
            raise UsageError("multilabel=true reads several classes per image from train_metadata: an image folder "
                             "gives one class per image; set train_metadata=DIR, or multilabel=false")
        if self.multilabel and self.selection == "authors":
            raise UsageError("selection='authors' keeps the best Top-1 Loc, a single-label metric: with "
                             "multilabel=true use selection=wsolevaluation or last")
        for key in ("val_metadata", "test_metadata"):
            _check_folder(key, getattr(self, key), metadata=True)
        for key in ("train_images", "val_images", "test_images"):
            _check_folder(key, getattr(self, key), metadata=False)
        return self


def _check_folder(key: str, value: str | None, metadata: bool) -> None:
    if not value:
        return
    path = Path(value)
    if not path.is_dir():
        raise UsageError(f"{key}={value}: no such folder; check the path")
    if metadata and not (path / "image_ids.txt").is_file():
        raise UsageError(f"{key}={value}: not a wsolevaluation metadata folder (no image_ids.txt in it)")


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _kind(key: str) -> type:
    hint = _HINTS[key]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _unknown(key: str, where: str) -> UsageError:
    close = difflib.get_close_matches(key, list(_FIELDS), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; camloc train --show prints every key"
    return UsageError(f"{where}: unknown key {key!r}{hint}")


def coerce(key: str, value: Any, where: str = "config") -> Any:
    """A value from TOML or the command line, checked against the field's type."""
    if key not in _FIELDS:
        raise _unknown(key, where)
    kind, optional = _kind(key), type(None) in typing.get_args(_HINTS[key])
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if optional and text.lower() in ("none", "null", ""):
            return None
        if kind is bool:
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
        elif kind is list:
            try:
                value = json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
            except ValueError as exc:
                raise UsageError(f"{where}: {key}={value!r} is not a list ({exc}); write a,b,c or [1, 2]") from exc
            return [int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v for v in value]
        else:
            try:
                return kind(text)
            except ValueError:
                pass
        raise UsageError(f"{where}: {key}={value!r} is not a {kind.__name__}")
    if value is None and optional:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UsageError(f"{where}: {key}={value!r} is a {type(value).__name__}, not a {kind.__name__}")
    return value


def recipe_path(name: str) -> Path:
    """A recipe by name (``camloc/train/recipes/NAME.toml``) or a TOML file by path."""
    path = Path(name)
    if path.suffix == ".toml" or os.sep in name:
        if not path.is_file():
            raise UsageError(f"{name}: no such recipe file; check the path")
        return path
    candidate = RECIPES / f"{name}.toml"
    if not candidate.is_file():
        close = difflib.get_close_matches(name, list_recipes(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; camloc train --list lists them"
        raise UsageError(f"unknown recipe {name!r}{hint}")
    return candidate


def list_recipes() -> list[str]:
    """Names of the recipes that ship with camloc."""
    return sorted(p.stem for p in RECIPES.glob("*.toml"))


def _flatten(table: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, where))
        elif key in out:
            raise UsageError(f"{where}: key {key!r} is set twice")
        else:
            out[key] = value
    return out


def read_recipe(name: str, _seen: Sequence[str] = ()) -> dict[str, Any]:
    """The values a recipe sets, its ``base`` recipes first."""
    path = recipe_path(name)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: not a readable TOML recipe ({exc})") from exc
    values = _flatten(table, str(path))
    base = values.pop("base", None)
    values.pop("description", None)
    out: dict[str, Any] = {}
    if base:
        if base in _seen:
            raise UsageError(f"{path}: recipe {base!r} is its own base")
        out.update(read_recipe(base, tuple(_seen) + (name,)))
    out.update({k: coerce(k, v, str(path)) for k, v in values.items()})
    return out


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings from the command line, checked.

    Example:
        >>> from camloc.train.config import parse_overrides
        >>> parse_overrides(["lr=0.01", "milestones=10,20", "pretrained=no", "eval_variants=cam,nwc"])
        {'lr': 0.01, 'milestones': [10, 20], 'pretrained': False, 'eval_variants': ['cam', 'nwc']}
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{item!r}: overrides are key=value (e.g. lr=0.01)")
        out[key.strip()] = coerce(key.strip(), value, "command line")
    return out


def load_config(recipe: str | None = None, overrides: Sequence[str] = (), check: bool = True,
                **values: Any) -> TrainConfig:
    """A :class:`TrainConfig`: the recipe (if any), then ``overrides``, then keyword values.

    The result is checked (:meth:`TrainConfig.validate`) unless ``check=False`` (to show a recipe
    without its data).

    Example:
        >>> import tempfile
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> from camloc.train.config import load_config
        >>> spec = SyntheticSpec(classes=2, size=32, train=4, train_fullsup=2, test=2)
        >>> meta = write_synthetic(tempfile.mkdtemp(), spec)     # a tiny wsolevaluation layout
        >>> cfg = load_config("vgg16_tap_cub", [f"train_metadata={meta['train']}"], test_metadata=str(meta["test"]),
        ...                   epochs=1, batch_size=2)
        >>> cfg.arch, cfg.selection, cfg.epochs, cfg.batch_size
        ('vgg16', 'authors', 1, 2)
        >>> load_config("vgg16_tap_cub", [f"train_metadata={meta['train']}"])   # its selection needs the test split
        Traceback (most recent call last):
        camloc.utils.errors.UsageError: selection='authors' keeps the best Top-1 Loc on the test split: ...
    """
    merged = read_recipe(recipe) if recipe else {}
    merged.update(parse_overrides(overrides))
    merged.update({k: coerce(k, v, "arguments") for k, v in values.items()})
    cfg = TrainConfig(**merged)
    return cfg.validate() if check else cfg
