"""CAM-compatible heads retrofitted onto existing models: ``features -> [per-location] -> TAP/GAP -> Linear``.

:func:`retrofit` returns a new model (the user's is deep-copied, never changed). What it does
depends on the head it finds, recognised by structure (:mod:`camloc.cam.analysis`), never by name:

* **GAP-linear** heads (ResNet, EfficientNet, DenseNet, ...): the pool is swapped, the classifier kept;
* **early-pool** heads (MobileNetV3: pool, then 1x1 conv / Linear layers, then the classifier): the
  layers between pool and classifier move before the pool and run at every location, Linear
  layers as 1x1 convolutions with the same weights, so the head keeps its pretrained weights;
* **spatial-mixing** heads (VGG, AlexNet: a Linear on the flattened map, or a conv that covers it):
  the paper's head: the feature map before the last pooling, a new 3x3 conv C -> 1024 + ReLU, the
  pool and a new Linear.

The backbone's feature map is read without running the old head (it is replaced by identities):
through timm's ``forward_features`` where that returns exactly the feature map, otherwise by a
forward hook on the feature layer.

Example:
    >>> import timm, torch
    >>> from camloc.models.retrofitting import retrofit
    >>> model = retrofit(timm.create_model("resnet18"), pool="tap", theta_tap=0.1, num_classes=200)
    >>> model(torch.randn(2, 3, 224, 224)).shape
    torch.Size([2, 200])
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from ..cam.analysis import analyze, as_logits, traced
from ..cam.heads import HeadSpec
from ..cam.hooks import Record, Trace, forward_hooks
from ..cam.pooling import is_pool
from ..utils.device import device_of
from ..utils.errors import ModelError
from .config import ModelConfig, attach, model_config
from .layers.pooling import make_pool

#: Layers that act on each location alone, so they may run before the pool.
_PER_LOCATION = (nn.Dropout, nn.Identity, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.Hardsigmoid,
                 nn.Sigmoid, nn.Tanh, nn.BatchNorm2d, nn.Flatten)


class CAMHeadModel(nn.Module):
    """``backbone`` up to ``feature_layer``, then ``per_location``, ``pool`` and ``fc``.

    Attributes:
        feature_layer: qualified name of the backbone's feature layer.
        route: how the feature map is read: ``forward_features`` (timm) or ``hook``.
        relu: apply ReLU to the features first (the backbone's head did, e.g. DenseNet).
        per_location: layers applied at every location before pooling (may be empty).
        pool: TAP or GAP.
        fc: the classifier.
        camloc_cfg: the model's :class:`~camloc.models.config.ModelConfig`.
    """

    def __init__(self, backbone: nn.Module, feature_layer: str, per_location: nn.Module, pool: nn.Module,
                 fc: nn.Linear, relu: bool = False, route: str = "hook",
                 cfg: ModelConfig | None = None) -> None:
        super().__init__()
        if route not in ("forward_features", "hook"):
            raise ValueError(f"route must be 'forward_features' or 'hook', not {route!r}")
        self.backbone = backbone
        self.feature_layer = feature_layer
        self.route = route
        self.relu = relu
        self.per_location = per_location
        self.pool = pool
        self.fc = fc
        attach(self, cfg or ModelConfig())

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pretrained backbone's feature map (with the ReLU its old head applied)."""
        if self.route == "forward_features":
            feats = self.backbone.forward_features(x)
        else:
            feats = _hooked_features(self.backbone, self.feature_layer, x)
        return torch.relu(feats) if self.relu else feats

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map the pool sees (B x C x H x W): backbone, optional ReLU, per-location layers."""
        return self.per_location(self.backbone_features(x))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Pool and classify a feature map from :meth:`forward_features`."""
        return self.fc(self.pool(feats))

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the new or moved head (per-location layers and classifier)."""
        return list(self.per_location.parameters()) + list(self.fc.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B x classes): ``forward_head(forward_features(x))``."""
        return self.forward_head(self.forward_features(x))


def _hooked_features(backbone: nn.Module, feature_layer: str, x: torch.Tensor) -> torch.Tensor:
    """Run the backbone (its old head is identities) and keep the feature layer's output.

    The hook hands the rest of the forward pass a copy, so functional in-place ops after the
    feature layer (torchvision DenseNet's ``relu_``) cannot change what it kept.
    """
    kept: list[torch.Tensor] = []

    def keep(_m, _a, out):
        kept.append(out)
        return out.clone()

    with forward_hooks([(backbone.get_submodule(feature_layer), keep)]):
        backbone(x)
    if not kept:
        raise ModelError(f"the feature layer {feature_layer!r} did not run in the backbone's forward pass")
    return kept[-1]


def _linear_as_conv(linear: nn.Linear) -> nn.Conv2d:
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.view(linear.out_features, linear.in_features, 1, 1))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def _as_linear(module: nn.Module) -> nn.Linear:
    if isinstance(module, nn.Linear):
        return module
    if not (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)):
        raise ModelError(f"the classifier {type(module).__name__} is neither Linear nor a 1x1 convolution")
    lin = nn.Linear(module.in_channels, module.out_channels, bias=module.bias is not None)
    with torch.no_grad():
        lin.weight.copy_(module.weight.flatten(1))
        if module.bias is not None:
            lin.bias.copy_(module.bias)
    return lin


def _mixes_locations(head: Sequence[Record]) -> bool:
    """Whether a head layer combines locations.

    That is a conv with a kernel over a spatial input, or a Linear on a flattened spatial map (its
    inputs are the C x H x W values of a spatial output before it).
    """
    spatial_sizes = set()
    for r in head:
        m, inp, out = r.module, r.input, r.output
        if isinstance(m, nn.Conv2d) and isinstance(inp, torch.Tensor) and inp.ndim == 4:
            if inp.shape[2] * inp.shape[3] > 1 and m.kernel_size != (1, 1):
                return True
        if isinstance(m, nn.Linear) and m.in_features in spatial_sizes:
            return True
        if isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[2] * out.shape[3] > 1:
            spatial_sizes.add(out[0].numel())
    return False


def _pools_globally(record: Record) -> bool:
    """A parameter-free layer that turns a spatial map into one value per channel (any global pool)."""
    inp, out = record.input, record.output
    return (isinstance(inp, torch.Tensor) and isinstance(out, torch.Tensor) and inp.ndim == 4
            and inp.shape[2] * inp.shape[3] > 1 and out[0].numel() * inp.shape[2] * inp.shape[3] <= inp[0].numel() * 2
            and not any(True for _ in record.module.parameters()))


def _last_unpooled(records: Sequence[Record], pos: int) -> int:
    """The last spatial output of a leaf layer at or before ``pos`` that is not a pooling.

    That is the map before the pools that close the backbone (VGG's pool5).
    """
    for i in range(pos, -1, -1):
        r = records[i]
        out = r.output
        if (not list(r.module.children()) and not is_pool(r.module) and isinstance(out, torch.Tensor)
                and out.ndim == 4 and out.shape[2] * out.shape[3] > 1):
            return i
    raise ModelError("no spatial feature map before the pooling layers")


def _per_location_layers(model_name: str, leaves: Sequence[Record]) -> list[nn.Module]:
    """The head's layers before its classifier, as layers that run at every location."""
    layers: list[nn.Module] = []
    for r in leaves:
        m = r.module
        if is_pool(m) or isinstance(m, nn.Flatten) or _pools_globally(r):
            continue
        if isinstance(m, nn.Linear):
            layers.append(_linear_as_conv(m))
        elif isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1):
            layers.append(m)
        elif isinstance(m, _PER_LOCATION) or "act" in type(m).__name__.lower() or type(m).__name__ == "LayerNorm2d":
            layers.append(m)  # per-location ops (LayerNorm2d normalises channels at each pixel)
        else:
            raise ModelError(f"cannot move {type(m).__name__} before the pool in a retrofit of {model_name}")
    return layers


def _replace_with_identity(model: nn.Module, names: Sequence[str]) -> None:
    """Replace the named submodules by ``nn.Identity`` (only the outermost of nested names)."""
    chosen = set(names)
    for name in sorted(chosen):
        parts = name.split(".")
        if any(".".join(parts[:i]) in chosen for i in range(1, len(parts))):
            continue  # an ancestor goes as a whole
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, nn.Identity())


def retrofit(
    model: nn.Module,
    pool: str = "tap",
    theta_tap: float = 0.1,
    num_classes: int | None = None,
    input_size: tuple[int, int] = (224, 224),
    class_names: Sequence[str] | None = None,
) -> CAMHeadModel:
    """A copy of ``model`` with a CAM-compatible head ending in TAP (or GAP) and a Linear.

    Args:
        model: any classifier the extractor supports (the original is not modified).
        pool: ``"tap"`` or ``"gap"``.
        theta_tap: TAP's threshold factor.
        num_classes: a new classifier with this many classes (freshly initialised); default: keep
            the model's classes and, where the head allows, its classifier weights.
        input_size: the input size used to trace the model once.
        class_names: names of the new classes (default: the model's own when its classes are kept).

    Returns:
        A :class:`CAMHeadModel` in eval mode; ``camloc.boxes`` treats it as an exact-CAM model.
    """
    base_cfg = model_config(model)
    model = copy.deepcopy(model).eval()
    device = device_of(model)
    x = torch.randn(2, 3, *input_size, generator=torch.Generator().manual_seed(0)).to(device)
    run = traced(model, x)
    k = as_logits(run.output).shape[1]
    plan = _plan_head(model, run, analyze(model, x, run=run), k)
    fc = plan.fc
    if num_classes is not None and (not plan.keep_fc or num_classes != fc.out_features):
        fc = nn.Linear(fc.in_features, num_classes)
    _strip_old_head(model, run, plan.pos)
    route = "forward_features" if _forward_features_gives(model, x, plan.feats) else "hook"
    kept_classes = num_classes is None or num_classes == k
    names = tuple(class_names) if class_names is not None else (base_cfg.class_names if kept_classes else None)
    cfg = base_cfg.replace(pool=pool, theta_tap=theta_tap if pool == "tap" else None, class_names=names)
    return CAMHeadModel(model, run.records[plan.pos].name, plan.per_location, make_pool(pool, theta_tap), fc,
                        plan.relu, route, cfg).to(device).eval()


class _Plan(NamedTuple):
    """The new head: where the features are read, what runs per location, the classifier."""

    pos: int
    feats: torch.Tensor
    per_location: nn.Module
    fc: nn.Linear
    relu: bool
    keep_fc: bool


def _plan_head(model: nn.Module, run: Trace, spec: HeadSpec, k: int) -> _Plan:
    """The head kind (see the module docs) and its new layers, from the traced forward pass."""
    pos = run.last_index(spec.feature_layer)
    feats = run.snapshot if run.snapshot_index == pos else run.records[pos].output
    head = run.records[pos + 1:]
    name = type(model).__name__
    if _mixes_locations(head):  # the paper's VGG head, on the map before pool5
        pos = _last_unpooled(run.records, pos)
        feats = run.records[pos].output
        conv = nn.Sequential(nn.Conv2d(feats.shape[1], 1024, 3, padding=1), nn.ReLU(inplace=True))
        return _Plan(pos, feats, conv, nn.Linear(1024, k), False, False)
    if spec.exact and spec.pool == "avg" and spec.norm is None:
        return _Plan(pos, feats, nn.Sequential(), _as_linear(model.get_submodule(spec.classifier)), spec.relu, True)
    leaves = [r for r in head if not list(r.module.children())]
    linears = [i for i, r in enumerate(leaves) if isinstance(r.module, (nn.Linear, nn.Conv2d))]
    if not linears:
        raise ModelError(f"cannot retrofit {name}: no linear classifier after its feature map")
    per_location = nn.Sequential(*_per_location_layers(name, leaves[: linears[-1]]))
    fc = _as_linear(leaves[linears[-1]].module)
    with torch.no_grad():
        width = per_location(feats).shape[1]
    if fc.in_features != width:  # a classifier that read two pooled copies (catavgmax): a new one
        return _Plan(pos, feats, per_location, nn.Linear(width, fc.out_features), False, False)
    return _Plan(pos, feats, per_location, fc, False, True)


def _strip_old_head(model: nn.Module, run: Trace, pos: int) -> None:
    """The old head never runs again: its modules become identities.

    The feature layer's ancestors and shared modules that also ran before it, such as a reused ReLU, stay.
    """
    feature_layer = run.records[pos].name
    ancestors = {feature_layer.rsplit(".", i)[0] for i in range(feature_layer.count(".") + 1)}
    ran_before = {r.name for r in run.records[: pos + 1]}
    _replace_with_identity(model, [r.name for r in run.records[pos + 1:]
                                   if r.name not in ancestors and r.name not in ran_before])


def _forward_features_gives(model: nn.Module, x: torch.Tensor, feats: torch.Tensor) -> bool:
    """Whether the model's own ``forward_features`` (timm) returns exactly the feature map."""
    forward_features = getattr(model, "forward_features", None)
    if not callable(forward_features):
        return False
    with torch.no_grad():
        out = forward_features(x)
    return (isinstance(out, torch.Tensor) and out.shape == feats.shape
            and torch.allclose(out, feats, rtol=1e-5, atol=1e-6))
