"""Checkpoint files: reading any of them safely, and camloc's own self-describing format.

* :func:`read_checkpoint`: ``torch.load(path, weights_only=True)``, with one-line errors;
* :func:`load_checkpoint`: a state dict into a model, checked key by key and shape by shape first;
* a *camloc checkpoint* (``format: camloc-finetune-1``) describes the model it holds (architecture,
  head, classes, preprocessing; :func:`describe`) so that it rebuilds with no other argument;
* finished runs are registered under a name in ``$CAMLOC_HOME/models`` (:func:`registered_path`).

Example:
    >>> import os, tempfile, torch
    >>> import camloc
    >>> from camloc.models.checkpoints import config_of_checkpoint, describe, is_camloc_checkpoint, read_checkpoint
    >>> model = camloc.retrofit(camloc.load_model("resnet18", pretrained=False), pool="tap", num_classes=200)
    >>> path = os.path.join(tempfile.mkdtemp(), "best.pt")      # what camloc finetune saves, in short:
    >>> torch.save({**describe(camloc.model_config(model), 200), "state_dict": model.state_dict()}, path)
    >>> state = read_checkpoint(path)
    >>> is_camloc_checkpoint(state), config_of_checkpoint(state).pool
    (True, 'tap')
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..utils.errors import CheckpointError
from .config import ModelConfig, preprocess_from_dict

#: The format tag of camloc's self-describing checkpoints.
FORMAT = "camloc-finetune-1"


def camloc_home() -> Path:
    """The user cache folder: ``$CAMLOC_HOME`` or ``~/.cache/camloc``."""
    return Path(os.environ.get("CAMLOC_HOME", Path.home() / ".cache" / "camloc"))


def registered_path(name: str) -> Path:
    """Where a model registered as ``name`` (``vgg16_tap``) is stored."""
    return camloc_home() / "models" / f"{name.replace('/', '--')}.pth"


def registered_names() -> list[str]:
    """Names of the registered camloc checkpoints, sorted."""
    folder = camloc_home() / "models"
    return sorted(p.stem.replace("--", "/") for p in folder.glob("*.pth")) if folder.is_dir() else []


#: How a file saved by ``torch.save`` starts: a zip archive, or (before PyTorch 1.6) a pickle of torch's magic number.
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
#: The fix for a file that holds no checkpoint at all.
_RESAVE = "give the .pt/.pth file that torch.save (or camloc train) wrote"


def read_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors naming the file and the fix.

    A file that is not a PyTorch checkpoint (random bytes, text, a plain pickle, another zip, an empty
    file) is told apart from a truncated or corrupt one and from one that pickles code.

    Raises:
        CheckpointError: naming the file, what is wrong with it and what to do.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = "is a folder, not a checkpoint file" if os.path.isdir(path) else "no such checkpoint file"
        raise CheckpointError(f"{path}: {what}; check the path")
    try:
        with warnings.catch_warnings(record=True) as caught:  # a warning about a file that fails is noise
            warnings.simplefilter("always")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on broken files
        raise CheckpointError(f"{path}: {_unreadable(path, exc)}") from exc
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return loaded


def _unreadable(path: str, exc: Exception) -> str:
    """Why ``torch.load`` could not read ``path``, in words, with the fix (the message after the path)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_LEGACY_MAGIC))
    except OSError as err:
        return f"cannot be read ({err.strerror or err}); check its permissions"
    if not head:
        return f"is empty (0 bytes), not a camloc/PyTorch checkpoint; {_RESAVE}"
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, EOFError):
            return "is a truncated or corrupt PyTorch checkpoint (its zip archive is incomplete); copy it again in full"
        if not any(name.endswith("/data.pkl") for name in names):
            return f"is a zip archive but not a camloc/PyTorch checkpoint (no data.pkl in it); {_RESAVE}"
    elif head != _LEGACY_MAGIC:
        if _LEGACY_MAGIC.startswith(head):  # the start of the magic number, and nothing after it
            return "is a truncated PyTorch checkpoint (its data ends early); copy it again in full"
        return (f"is not a camloc/PyTorch checkpoint (torch.save writes a zip archive, or a pickle starting with "
                f"torch's magic number: this file is neither); {_RESAVE}")
    if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower():
        return ("not loadable with weights_only=True (it pickles code, not just tensors); "
                "re-save it with torch.save(model.state_dict(), path)")
    if isinstance(exc, (EOFError, pickle.UnpicklingError)) or "EOF" in str(exc) or "truncated" in str(exc):
        return "is a truncated PyTorch checkpoint (its data ends early); copy it again in full"
    return "is a corrupt PyTorch checkpoint (torch.load cannot read what it holds); copy it again in full"


def _state_dict_of(obj: Any, path: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors; "
                              "save one with torch.save(model.state_dict(), path)")
    if obj and all(k.startswith("module.") for k in obj):  # saved from DataParallel / DDP
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_checkpoint(model: nn.Module, path: str | os.PathLike, name: str = "the model",
                    loaded: Any = None) -> nn.Module:
    """Load a state dict into ``model`` after checking that every key and shape fits.

    ``loaded`` is the file's content when the caller has read it already.
    """
    path = os.fspath(path)
    state = _state_dict_of(read_checkpoint(path) if loaded is None else loaded, path)
    target = model.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [k for k in target if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} shape mismatches "
                         f"(e.g. {k}: {tuple(state[k].shape)} vs {tuple(target[k].shape)})")
        hint = "pass the --model it was trained with"
        if shapes and not missing and not unexpected and len({state[k].shape[0] for k in shapes}) == 1:
            hint += f", or --num-classes {state[shapes[0]].shape[0]} if only the classifier differs"
        raise CheckpointError(f"{path}: does not fit {name} ({'; '.join(parts)}); {hint}")
    model.load_state_dict(state)
    return model


def is_camloc_checkpoint(obj: Any) -> bool:
    """Whether a loaded checkpoint is camloc's self-describing format."""
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def describe(cfg: ModelConfig, num_classes: int) -> dict[str, Any]:
    """The part of a camloc checkpoint that says how to rebuild its model."""
    return {
        "format": FORMAT,
        "arch": cfg.arch,
        "pool": cfg.pool,
        "theta_tap": cfg.theta_tap,
        "num_classes": num_classes,
        "class_names": list(cfg.class_names or ()),
        "preprocess": cfg.preprocess.to_dict(),
        "train_size": list(cfg.train_size) if cfg.train_size is not None else None,
    }


def config_of_checkpoint(ckpt: dict[str, Any], name: str | None = None) -> ModelConfig:
    """The :class:`ModelConfig` a camloc checkpoint describes (its registered name, or ``arch_pool``)."""
    return ModelConfig(
        name=name or f"{ckpt['arch']}_{ckpt['pool']}",
        arch=ckpt["arch"],
        source="checkpoint",
        preprocess=preprocess_from_dict(ckpt["preprocess"]),
        class_names=tuple(ckpt["class_names"]) or None,
        pool=ckpt["pool"],
        theta_tap=ckpt["theta_tap"],
        train_size=tuple(ckpt["train_size"]) if ckpt.get("train_size") else None,
    )
