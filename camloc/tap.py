"""Thresholded average pooling (TAP) and CAM-compatible heads retrofitted onto existing models.

TAP (PROTOCOLS.md section 1), per sample and channel::

    thr = theta * max_hw F        kept = F > thr (strict)
    p_c = sum(kept F) / max(count(kept), 1)

so an all-zero channel pools to 0, and ``theta = 0`` averages over the strictly positive pixels
only (it is not GAP). The CAM of a TAP model is still ``sum_c W[k,c] F_c`` over the raw features.

:func:`retrofit` returns a new model (the user's is deep-copied, never changed) of the form
``features -> [per-location layers] -> pool (TAP or GAP) -> Linear``:

* GAP-linear heads (ResNet, EfficientNet, DenseNet, ...): the pool is swapped, the classifier kept;
* early-pool heads (MobileNetV3: pool, then 1x1 conv / Linear layers, then the classifier): the
  layers between pool and classifier move before the pool and run at every location, Linear
  layers as 1x1 convolutions with the same weights, so the head becomes CAM-compatible and keeps
  its pretrained weights (a fine-tune adapts them to the new order);
* VGG: the paper's head: conv layers without pool5, a new 3x3 conv 512 -> 1024 + ReLU, the pool
  and a new Linear.

After a retrofit :func:`camloc.boxes` sees a GAP- or TAP-linear head: an exact CAM.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from .errors import ModelError
from .extractor import _POOL_TYPES, analyze, eval_mode, forward_hooks


class ThresholdedAvgPool2d(nn.Module):
    """TAP: average over the pixels above ``theta x`` the channel's maximum.

    Args:
        theta: the threshold factor (0.1 in the authors' VGG16 config, 0.0 for ResNet50-SE).
        flatten: return B x C instead of B x C x 1 x 1.

    Example:
        >>> pool = ThresholdedAvgPool2d(0.1)
        >>> pool(torch.rand(2, 8, 7, 7)).shape
        torch.Size([2, 8])
    """

    def __init__(self, theta: float = 0.1, flatten: bool = True) -> None:
        super().__init__()
        if not 0.0 <= theta <= 1.0:
            raise ValueError(f"theta_tap must be in [0, 1], not {theta}")
        self.theta = float(theta)
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        thr = self.theta * x.amax(dim=(2, 3), keepdim=True)
        kept = (x > thr).to(x.dtype)
        pooled = (x * kept).sum(dim=(2, 3)) / kept.sum(dim=(2, 3)).clamp_min(1.0)
        return pooled if self.flatten else pooled[:, :, None, None]

    def extra_repr(self) -> str:
        return f"theta={self.theta}"


class GlobalAvgPool2d(nn.Module):
    """Plain global average pooling to B x C (the ``gap`` pool of a retrofitted head)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def make_pool(pool: str, theta_tap: float = 0.1) -> nn.Module:
    """A pool by name, as timm selects pool types: ``tap`` or ``gap``."""
    if pool == "tap":
        return ThresholdedAvgPool2d(theta_tap)
    if pool == "gap":
        return GlobalAvgPool2d()
    raise ValueError(f"pool must be 'tap' or 'gap', not {pool!r}")


class _Stop(Exception):
    """Raised by the feature hook to end the backbone's forward pass early."""

    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.features = features


class CAMHeadModel(nn.Module):
    """``backbone`` up to ``feature_layer``, then ``per_location``, ``pool`` and ``fc``.

    The backbone's forward is cut at the feature layer (a forward hook that stops it), so any
    timm or torchvision network serves as the backbone without knowing its code; its old head
    is replaced by identities and never runs.

    Attributes:
        feature_layer: qualified name of the backbone's feature layer.
        relu: apply ReLU to the features first (the backbone's head did, e.g. DenseNet).
        per_location: layers applied at every location before pooling (may be empty).
        pool: TAP or GAP.
        fc: the classifier.
    """

    def __init__(self, backbone: nn.Module, feature_layer: str, per_location: nn.Module, pool: nn.Module,
                 fc: nn.Linear, relu: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_layer = feature_layer
        self.relu = relu
        self.per_location = per_location
        self.pool = pool
        self.fc = fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map the pool sees (B x C x H x W): backbone, optional ReLU, per-location layers."""
        return self.per_location(self.backbone_features(x))

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pretrained backbone's feature map (with the ReLU its old head applied)."""
        layer = self.backbone.get_submodule(self.feature_layer)

        def stop(_m, _a, out):
            raise _Stop(out)

        feats = None
        with forward_hooks([(layer, stop)]):
            try:
                self.backbone(x)
            except _Stop as s:
                feats = s.features
        if feats is None:
            raise ModelError(f"the feature layer {self.feature_layer!r} did not run")
        return torch.relu(feats) if self.relu else feats

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Pool and classify a feature map from :meth:`forward_features`."""
        return self.fc(self.pool(feats))

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the new or moved head (per-location layers and classifier)."""
        return list(self.per_location.parameters()) + list(self.fc.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _linear_as_conv(linear: nn.Linear) -> nn.Conv2d:
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.view(linear.out_features, linear.in_features, 1, 1))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def retrofit(
    model: nn.Module,
    pool: str = "tap",
    theta_tap: float = 0.1,
    num_classes: Optional[int] = None,
    input_size: tuple[int, int] = (224, 224),
) -> CAMHeadModel:
    """A copy of ``model`` with a CAM-compatible head ending in TAP (or GAP) and a Linear.

    Args:
        model: any classifier the extractor supports (the original is not modified).
        pool: ``"tap"`` or ``"gap"``.
        theta_tap: TAP's threshold factor.
        num_classes: a new classifier with this many classes (freshly initialised); default: keep
            the model's classes and, where the head allows, its classifier weights.
        input_size: the input size used to trace the model once.

    Returns:
        A :class:`CAMHeadModel`; ``camloc.boxes`` treats it as an exact-CAM model.
    """
    model = copy.deepcopy(model).eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.randn(2, 3, *input_size, generator=torch.Generator().manual_seed(0)).to(device)
    name = type(model).__name__.lower() + " " + str(getattr(model, "default_cfg", {}).get("architecture", ""))
    is_vgg = "vgg" in name and hasattr(model, "features")

    records: list[tuple[str, nn.Module]] = []
    pairs = [(m, (lambda n: (lambda mod, a, o: records.append((n, mod))))(n)) for n, m in model.named_modules() if n]
    with eval_mode(model), torch.no_grad(), forward_hooks(pairs):
        logits = model(x)
    k = logits.shape[1]
    spec = analyze(model, x)
    modules = dict(model.named_modules())

    if is_vgg:
        convs = [n for n, m in model.features.named_children() if isinstance(m, nn.Conv2d)]
        relus = [n for n, m in model.features.named_children() if isinstance(m, nn.ReLU)]
        feature_layer = f"features.{relus[-1]}"
        channels = model.features.get_submodule(convs[-1]).out_channels
        per_location = nn.Sequential(nn.Conv2d(channels, 1024, 3, padding=1), nn.ReLU(inplace=True))
        fc, relu, keep_fc = nn.Linear(1024, num_classes or k), False, False
    elif spec.exact and spec.pool == "avg" and spec.norm is None:
        feature_layer, relu = spec.feature_layer, spec.relu
        per_location = nn.Sequential()
        old = modules[spec.classifier]
        fc = old if isinstance(old, nn.Linear) else _conv_to_linear(old)
        keep_fc = True
    else:
        feature_layer, relu = spec.feature_layer, False
        f_pos = max(i for i, (n, _) in enumerate(records) if n == feature_layer)
        leaves = [(n, m) for n, m in records[f_pos + 1:] if not list(m.children())]
        linears = [i for i, (_, m) in enumerate(leaves) if isinstance(m, (nn.Linear, nn.Conv2d))]
        if not linears:
            raise ModelError(f"cannot retrofit {type(model).__name__}: no linear classifier after its feature map")
        layers = []
        for _, m in leaves[: linears[-1]]:
            if isinstance(m, _POOL_TYPES) or isinstance(m, nn.Flatten):
                continue
            if isinstance(m, nn.Linear):
                layers.append(_linear_as_conv(m))
            elif isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1):
                layers.append(m)
            elif (isinstance(m, (nn.Dropout, nn.Identity, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU,
                                 nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.BatchNorm2d))
                  or "act" in type(m).__name__.lower() or type(m).__name__ == "LayerNorm2d"):
                layers.append(m)  # per-location ops (LayerNorm2d normalises channels at each pixel)
            else:
                raise ModelError(f"cannot move {type(m).__name__} before the pool in a retrofit of {type(model).__name__}")
        per_location = nn.Sequential(*layers)
        last = leaves[linears[-1]][1]
        fc = last if isinstance(last, nn.Linear) else _conv_to_linear(last)
        keep_fc = True

    if num_classes is not None and (not keep_fc or num_classes != fc.out_features):
        fc = nn.Linear(fc.in_features, num_classes)
    elif not keep_fc:
        fc = nn.Linear(fc.in_features, k)
    # the old head never runs again: drop its parameters from the copy
    f_pos = max(i for i, (n, _) in enumerate(records) if n == feature_layer)
    ancestors = {feature_layer.rsplit(".", i)[0] for i in range(feature_layer.count(".") + 1)}
    ran_before = {n for n, _ in records[: f_pos + 1]}  # shared modules (a reused ReLU) must stay
    for n, _ in records[f_pos + 1:]:
        if n in ancestors or n in ran_before:
            continue
        try:
            _set_module(model, n, nn.Identity())
        except AttributeError:
            pass
    out = CAMHeadModel(model, feature_layer, per_location, make_pool(pool, theta_tap), fc, relu).to(device)
    return out


def _conv_to_linear(conv: nn.Module) -> nn.Linear:
    if not (isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1)):
        raise ModelError(f"the classifier {type(conv).__name__} is neither Linear nor a 1x1 convolution")
    lin = nn.Linear(conv.in_channels, conv.out_channels, bias=conv.bias is not None)
    with torch.no_grad():
        lin.weight.copy_(conv.weight.flatten(1))
        if conv.bias is not None:
            lin.bias.copy_(conv.bias)
    return lin
