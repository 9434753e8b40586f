"""The WSOL architectures of the evaluation study and the field, built from torchvision and timm.

Each builder takes the library's ImageNet network and applies the WSOL changes by structure (strides,
paddings, pools, new head layers), then returns a
:class:`~camloc.models.retrofitting.CAMHeadModel` with ``route="forward_features"``: the backbone is a
:class:`WSOLBackbone` (an ``nn.Sequential`` of the library's own modules, under their own names,
whose ``forward_features`` returns the feature map), so the extractor, the frozen-feature caching of
:meth:`~camloc.models.retrofitting.CAMHeadModel.backbone_features` and checkpoints work as for a
retrofitted model. Every architecture gives a 14 x 14 feature map at 224 x 224.

======================  ==============================================================================
``vgg16``               torchvision ``vgg16`` ``features`` without pool5; head: conv 3x3 512 -> 1024 + ReLU
                        (clovaai/wsolevaluation ``wsol/vgg.py``; won-bae/rethinkingCAM)
``resnet50``            timm ``resnet50`` with ``layer4[0]`` at stride 1 (clovaai/wsolevaluation
                        ``wsol/resnet.py``)
``seresnet50``          timm ``seresnet50``, the same change (ResNet50-SE of junsukchoe/ADL)
``inception_v3``        torchvision ``inception_v3`` cut after ``Mixed_6e``, strides and pools as
                        wsolevaluation's ``InceptionCam`` (the SPG backbone, ``wsol/inception.py``);
                        head: two 3x3 convs to 1024 with dropout
``mobilenetv1``         timm ``mobilenetv1_100``, its last stride-2 stage at stride 1 (ours)
``googlenet``           torchvision ``googlenet`` with ``maxpool4`` an identity (ours)
``smallcnn``            a small VGG-style CNN with batch norm and no ImageNet weights, for training from
                        scratch on a CPU (the synthetic benchmark, :mod:`camloc.data.synthetic`) (ours)
``smallcnn_nobn``       ``smallcnn`` without batch norm (each conv with a bias), as VGG16 has none: batch
                        norm rescales every channel, which can hide how GAP weighs channels by their
                        active area. It trains far more slowly from scratch than ``smallcnn`` (ours)
======================  ==============================================================================

``adl=True`` inserts :class:`~camloc.models.layers.adl.ADL` after the modules named in the
architecture's :attr:`ArchSpec.adl_positions` (wsolevaluation's places where it has them), with
:func:`insert_after`; ADL is the identity in eval mode, so the maps of a trained model need nothing
special. :attr:`ArchSpec.new_layers` names the layers that wsolevaluation trains with a 10x learning
rate.

Example:
    >>> import camloc, torch
    >>> from camloc.models.wsol import build_wsol
    >>> model = build_wsol("resnet50", num_classes=200, pool="gap", adl=True)
    >>> camloc.CAMExtractor(model)(torch.randn(1, 3, 224, 224)).maps.shape
    torch.Size([1, 1, 14, 14])
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import rethinking_crop
from ..utils.errors import ModelError, UsageError
from .config import ModelConfig
from .layers.adl import ADL
from .layers.pooling import make_pool
from .retrofitting import CAMHeadModel


@dataclass(frozen=True)
class ArchSpec:
    """What camloc knows about a WSOL architecture.

    Attributes:
        name: the architecture's name in :data:`ARCHITECTURES`.
        source: where the structure comes from (repository and file), or ``ours`` where no public WSOL
            code defines it.
        adl_positions: qualified names of modules of the built model after whose output ADL is
            applied by default.
        new_layers: qualified-name prefixes of the layers that are new or changed, those that
            wsolevaluation trains with a 10x learning rate.
        feature_size_at_224: side of the feature map for a 224 x 224 input.
        pretrained: whether the library has ImageNet weights for it (``pretrained=True`` works).
    """

    name: str
    source: str
    adl_positions: tuple[str, ...]
    new_layers: tuple[str, ...]
    feature_size_at_224: int = 14
    pretrained: bool = True


ARCHITECTURES: dict[str, ArchSpec] = {
    "vgg16": ArchSpec(
        "vgg16",
        "clovaai/wsolevaluation wsol/vgg.py (VggCam; ADL where its 'adl' config puts 'A': after pool3, after "
        "conv4_3's ReLU before pool4, after conv5_3's ReLU) and won-bae/rethinkingCAM: torchvision vgg16 "
        "features without pool5, conv6 3x3 512->1024 + ReLU, pool, fc",
        ("backbone.features.16", "backbone.features.22", "backbone.features.29"),
        ("per_location", "fc"),
    ),
    "resnet50": ArchSpec(
        "resnet50",
        "clovaai/wsolevaluation wsol/resnet.py (ResNetCam: layer4 with stride 1; ADL after layer3[0], "
        "layer4[0], layer4[2] as its _ADL_POSITION): timm resnet50, every stride-2 conv of layer4[0] at stride 1",
        ("backbone.layer3.0", "backbone.layer4.0", "backbone.layer4.2"),
        ("backbone.layer4", "fc"),
    ),
    "seresnet50": ArchSpec(
        "seresnet50",
        "clovaai/wsolevaluation wsol/resnet.py applied to timm seresnet50 (ResNet50-SE as in junsukchoe/ADL): "
        "every stride-2 conv of layer4[0] at stride 1; ADL after layer3[0], layer4[0], layer4[2]",
        ("backbone.layer3.0", "backbone.layer4.0", "backbone.layer4.2"),
        ("backbone.layer4", "fc"),
    ),
    "inception_v3": ArchSpec(
        "inception_v3",
        "clovaai/wsolevaluation wsol/inception.py (InceptionCam / InceptionAdl, the SPG backbone): torchvision "
        "inception_v3 to Mixed_6e, Conv2d_1a padding 1, stem pools 3/2 padding 1 ceil, an extra pool 3/2 ceil "
        "after Mixed_5d, Mixed_6a at stride 1; head dropout, conv 768->1024, ReLU, dropout, conv 1024->1024, "
        "ReLU, dropout (its 1x1 conv + GAP written as pool + Linear: identical for GAP)",
        ("backbone.Mixed_5d", "backbone.Mixed_6e", "per_location.5"),
        ("per_location", "fc"),
    ),
    "mobilenetv1": ArchSpec(
        "mobilenetv1",
        "ours (no public WSOL code): timm mobilenetv1_100 with its last stride-2 stage (blocks.4) at stride 1; "
        "ADL after the last two stages (ours)",
        ("backbone.blocks.3", "backbone.blocks.4"),
        ("backbone.blocks.4", "fc"),
    ),
    "googlenet": ArchSpec(
        "googlenet",
        "ours: torchvision googlenet (aux_logits=False, transform_input=False) with maxpool4 an identity so "
        "inception5a/5b keep 14x14; ADL after inception4e and inception5b (ours)",
        ("backbone.inception4e", "backbone.inception5b"),
        ("backbone.inception5a", "backbone.inception5b", "fc"),
    ),
    "smallcnn": ArchSpec(
        "smallcnn",
        "ours: conv 3x3/2 (16) + max pool, then VGG-style blocks of conv 3x3 + batch norm + ReLU (32, pool, "
        "64, pool, 64, 64) to a 14 x 14 map at 224, and VGG16-GAP's head (conv 3x3 64->128 + ReLU); "
        "ADL after block2 (the last block at 28 x 28) and block4 (the last block), as VGG16's goes after its "
        "last layers at 28 x 28 and 14 x 14. No ImageNet weights: every layer is new",
        ("backbone.block2", "backbone.block4"),
        ("backbone", "per_location", "fc"),
        pretrained=False,
    ),
    "smallcnn_nobn": ArchSpec(
        "smallcnn_nobn",
        "ours: smallcnn without batch norm (every conv 3x3 with a bias, then ReLU), as VGG16 has none; "
        "the same channels, strides, pools, head, init (He, fan-out) and ADL positions, 14 x 14 at 224. "
        "No ImageNet weights: every layer is new",
        ("backbone.block2", "backbone.block4"),
        ("backbone", "per_location", "fc"),
        pretrained=False,
    ),
}


class WSOLBackbone(nn.Sequential):
    """The library's modules, in order and under their own names; ``forward_features`` = ``forward``.

    Its state dict keys are the library's (``layer4.0.conv2.weight``), so pretrained weights and
    checkpoints map one to one.
    """

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map (B x C x H x W)."""
        return self(x)


class InceptionBStride1(nn.Module):
    """Inception-v3's ``Mixed_6a`` (torchvision ``InceptionB``) at stride 1, as wsolevaluation's.

    wsolevaluation's is ``InceptionB(288, kernel_size=3, stride=1, padding=1)`` (clovaai/wsolevaluation
    ``wsol/inception.py``).

    The two stride-2 3x3 convolutions get stride 1 and padding 1, and the pooling branch, which
    torchvision computes functionally, becomes a max pool 3, stride 1, padding 1. The branches are
    torchvision's own modules (same names, same weights).
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.branch3x3 = block.branch3x3
        self.branch3x3dbl_1 = block.branch3x3dbl_1
        self.branch3x3dbl_2 = block.branch3x3dbl_2
        self.branch3x3dbl_3 = block.branch3x3dbl_3
        for conv in (self.branch3x3.conv, self.branch3x3dbl_3.conv):
            conv.stride, conv.padding = (1, 1), (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The three branches on ``x``, concatenated along the channels (stride 1: ``x``'s size)."""
        branch3x3 = self.branch3x3(x)
        dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([branch3x3, dbl, pool], 1)


# -- building blocks ------------------------------------------------------------------------------


def _pretrained_failure(arch: str, exc: BaseException) -> ModelError:
    reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return ModelError(f"could not load ImageNet weights for the WSOL {arch} ({reason}): use pretrained=False "
                      "(random init) or load a checkpoint")


def _timm(arch: str, name: str, pretrained: bool) -> nn.Module:
    import timm

    if not pretrained:
        return timm.create_model(name, pretrained=False)
    try:
        return timm.create_model(name, pretrained=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise _pretrained_failure(arch, exc) from exc


def _torchvision(arch: str, name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    import torchvision

    if not pretrained:
        return torchvision.models.get_model(name, weights=None, **kwargs)
    # With weights, torchvision fixes aux_logits and init_weights itself (and rejects other values).
    kwargs = {k: v for k, v in kwargs.items() if k not in ("aux_logits", "init_weights")}
    try:
        return torchvision.models.get_model(name, weights="DEFAULT", **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        raise _pretrained_failure(arch, exc) from exc


def _children(model: nn.Module, names: Sequence[str]) -> OrderedDict[str, nn.Module]:
    return OrderedDict((n, getattr(model, n)) for n in names)


def _stride_one(module: nn.Module) -> int:
    """Every stride-2 convolution in ``module`` at stride 1 (padding and dilation unchanged); the count."""
    changed = 0
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
            if type(m) is not nn.Conv2d:  # timm's Conv2dSame pads by the stride: not a plain change
                raise ModelError(f"cannot set the stride of a {type(m).__name__} to 1")
            m.stride = (1, 1)
            changed += 1
    return changed


def init_new_layers(module: nn.Module, conv_init: str) -> None:
    """Initialise new layers as wsolevaluation's ``initialize_weights`` (``wsol/util.py``) does.

    Convolutions: ``he`` (Kaiming normal, fan-out, ReLU gain) or ``xavier`` (Xavier uniform), bias 0;
    Linear layers: weights N(0, 0.01), bias 0.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            if conv_init == "he":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif conv_init == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                raise ValueError(f"conv_init must be 'he' or 'xavier', not {conv_init!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# -- the architectures ----------------------------------------------------------------------------

#: A builder: (pretrained, adl) -> (backbone, per-location layers, their output channels).
_Built = tuple[WSOLBackbone, nn.Module, int]


def _vgg16(pretrained: bool, adl: bool) -> _Built:
    # init_weights=False skips initialising the 100M-weight classifier that is thrown away; the
    # convolutions then get torchvision's VGG init (He, fan-out), which init_new_layers also is.
    tv = _torchvision("vgg16", "vgg16", pretrained, init_weights=False)
    features = tv.features[:30]  # keys "0".."29": pool5 (index 30) dropped, 14 x 14 at 224
    if not isinstance(tv.features[30], nn.MaxPool2d) or not isinstance(features[29], nn.ReLU):
        raise ModelError("torchvision's vgg16 features are not laid out as expected (pool5 at index 30)")
    if not pretrained:
        init_new_layers(features, "he")
    head = nn.Sequential(nn.Conv2d(512, 1024, 3, padding=1), nn.ReLU(inplace=True))
    init_new_layers(head, "he")
    return WSOLBackbone(OrderedDict(features=features)), head, 1024


def _resnet(timm_name: str) -> Callable[[bool, bool], _Built]:
    def build(pretrained: bool, adl: bool) -> _Built:
        m = _timm(timm_name, timm_name, pretrained)
        if _stride_one(m.layer4[0]) == 0:
            raise ModelError(f"timm's {timm_name} layer4[0] has no stride-2 convolution to change")
        names = ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4")
        return WSOLBackbone(_children(m, names)), nn.Sequential(), m.num_features

    return build


def _inception_v3(pretrained: bool, adl: bool) -> _Built:
    tv = _torchvision("inception_v3", "inception_v3", pretrained, aux_logits=False, init_weights=False,
                      transform_input=False)
    tv.Conv2d_1a_3x3.conv.padding = (1, 1)
    tv.maxpool1 = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
    tv.maxpool2 = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
    tv.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)  # wsolevaluation's extra pool after Mixed_5d
    tv.Mixed_6a = InceptionBStride1(tv.Mixed_6a)
    names = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
             "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "maxpool3", "Mixed_6a", "Mixed_6b", "Mixed_6c",
             "Mixed_6d", "Mixed_6e")

    def drop() -> nn.Module:  # wsolevaluation's InceptionAdl head has no dropout; Identity keeps the keys
        return nn.Identity() if adl else nn.Dropout(0.5)

    head = nn.Sequential(drop(), nn.Conv2d(768, 1024, 3, padding=1), nn.ReLU(inplace=True),
                         drop(), nn.Conv2d(1024, 1024, 3, padding=1), nn.ReLU(inplace=True), drop())
    init_new_layers(head, "xavier")
    return WSOLBackbone(_children(tv, names)), head, 1024


def _mobilenetv1(pretrained: bool, adl: bool) -> _Built:
    m = _timm("mobilenetv1", "mobilenetv1_100", pretrained)
    for stage in reversed(m.blocks):  # the last stage that halves the map (blocks.4 in mobilenetv1_100)
        if _stride_one(stage):
            break
    names = ("conv_stem", "bn1", "blocks", "conv_head", "bn2")
    return WSOLBackbone(_children(m, names)), nn.Sequential(), m.num_features


def _googlenet(pretrained: bool, adl: bool) -> _Built:
    tv = _torchvision("googlenet", "googlenet", pretrained, aux_logits=False, init_weights=False,
                      transform_input=False)
    tv.maxpool4 = nn.Identity()
    names = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
             "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
             "inception5a", "inception5b")
    return WSOLBackbone(_children(tv, names)), nn.Sequential(), 1024


def _conv_block(cin: int, cout: int, stride: int, batch_norm: bool) -> nn.Sequential:
    """Conv 3x3 + batch norm + ReLU, or conv 3x3 (with bias) + ReLU without batch norm."""
    if batch_norm:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(inplace=True))


def _smallcnn(batch_norm: bool) -> Callable[[bool, bool], _Built]:
    """The builder of ``smallcnn`` (``batch_norm=True``) or ``smallcnn_nobn`` (the same layers without it).

    Both initialise every convolution as :func:`init_new_layers` ``"he"`` (Kaiming normal, fan-out,
    bias 0). Without batch norm, Kaiming fan-in, zero-mean filters and PyTorch's default init trained
    no faster on the synthetic benchmark, so the two share the init and differ only by batch norm.
    """

    def build(pretrained: bool, adl: bool) -> _Built:
        def block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return _conv_block(cin, cout, stride, batch_norm)

        blocks = OrderedDict(
            stem=block(3, 16, 2), pool1=nn.MaxPool2d(2),  # 56 x 56 at 224
            block1=block(16, 32), pool2=nn.MaxPool2d(2),  # 28
            block2=block(32, 64), pool3=nn.MaxPool2d(2),  # 14
            block3=block(64, 64), block4=block(64, 64))
        backbone = WSOLBackbone(blocks)
        init_new_layers(backbone, "he")
        head = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(inplace=True))
        init_new_layers(head, "he")
        return backbone, head, 128

    return build


_BUILDERS: dict[str, Callable[[bool, bool], _Built]] = {
    "vgg16": _vgg16,
    "resnet50": _resnet("resnet50.tv_in1k"),  # torchvision's ImageNet weights, as wsolevaluation loads
    "seresnet50": _resnet("seresnet50"),
    "inception_v3": _inception_v3,
    "mobilenetv1": _mobilenetv1,
    "googlenet": _googlenet,
    "smallcnn": _smallcnn(batch_norm=True),
    "smallcnn_nobn": _smallcnn(batch_norm=False),
}


# -- public API -----------------------------------------------------------------------------------


def _close(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)
    return f"; closest: {', '.join(close)}" if close else ""


def insert_after(model: nn.Module, names: Sequence[str], make: Callable[[], nn.Module]) -> None:
    """Replace each named submodule ``m`` by ``nn.Sequential(m, make())``, in place.

    All names are looked up before anything changes, so nested names (``layer4`` and ``layer4.0``)
    both get their layer. The wrapped module's parameters move under ``NAME.0.``.

    Args:
        model: the model to change.
        names: qualified submodule names (as ``model.named_modules()`` gives them); one string is one name.
        make: builds one new module per name (called once per name).

    Raises:
        ModelError: for an unknown (or empty) name, naming the closest names.

    Example:
        >>> from camloc.models.layers.adl import ADL
        >>> from camloc.models.wsol import build_wsol, insert_after
        >>> model = build_wsol("resnet50", num_classes=200)
        >>> insert_after(model, ["backbone.layer4.0"], lambda: ADL(0.75, 0.9))
        >>> model.backbone.layer4[0][1]      # the block is now model.backbone.layer4[0][0]
        ADL(drop_rate=0.75, gamma=0.9)
    """
    if isinstance(names, str):
        names = [names]
    known = dict(model.named_modules())
    targets = []
    for name in dict.fromkeys(names):
        if not name or name not in known:
            raise ModelError(f"no submodule {name!r} in {type(model).__name__} to insert after"
                             f"{_close(name, [n for n in known if n])}")
        parent_name, _, child = name.rpartition(".")
        targets.append((known[parent_name], child, known[name]))
    for parent, child, module in targets:
        setattr(parent, child, nn.Sequential(module, make()))


def build_wsol(
    arch: str,
    num_classes: int,
    pool: str = "gap",
    theta_tap: float = 0.0,
    pretrained: bool = False,
    adl: bool = False,
    adl_positions: Sequence[str] | None = None,
    adl_drop_rate: float = 0.75,
    adl_gamma: float = 0.9,
) -> CAMHeadModel:
    """A WSOL architecture by name, as a CAM-head model (in eval mode).

    Args:
        arch: a name in :data:`ARCHITECTURES`.
        num_classes: classes of the new classifier.
        pool: ``"gap"`` or ``"tap"``.
        theta_tap: TAP's threshold factor (ignored for GAP).
        pretrained: load the library's ImageNet weights (timm ``pretrained=True``, torchvision
            ``weights="DEFAULT"``); False builds a random init and never touches the network.
        adl: insert ADL layers (identity in eval mode).
        adl_positions: where ADL goes (qualified module names of the built model); default: the
            architecture's :attr:`ArchSpec.adl_positions`. Only with ``adl=True``.
        adl_drop_rate: ADL's drop-mask probability.
        adl_gamma: ADL's drop threshold factor.

    Returns:
        A :class:`~camloc.models.retrofitting.CAMHeadModel` with ``route="forward_features"`` whose
        ``camloc_cfg`` says ``source="wsol"``, ``arch=arch``, the rethinking protocol's preprocessing
        (resize 256 x 256, center crop 224, ImageNet mean and std), the pool and theta.

    Raises:
        ModelError: an unknown architecture, or pretrained weights that cannot be fetched (offline).
        UsageError: ``adl_positions`` without ``adl=True``.
        ValueError: an unknown pool, or ADL rates outside [0, 1].
    """
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown WSOL architecture {arch!r}{_close(arch, list(ARCHITECTURES))} "
                         f"(known: {', '.join(ARCHITECTURES)})")
    if adl_positions is not None and not adl:
        raise UsageError("adl_positions given without adl=True")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UsageError(f"num_classes must be a positive integer, not {num_classes!r}")
    pool_layer = make_pool(pool, theta_tap)  # checks the pool before the (slow) build
    if adl:
        ADL(adl_drop_rate, adl_gamma)  # checks the rates before the build
    spec = ARCHITECTURES[arch]
    if pretrained and not spec.pretrained:
        raise ModelError(f"{arch} has no ImageNet weights: it is trained from scratch; use pretrained=False "
                         "(pretrained=false in a recipe)")
    backbone, per_location, channels = _BUILDERS[arch](pretrained, adl)
    fc = nn.Linear(channels, num_classes)
    init_new_layers(fc, "he")
    cfg = ModelConfig(name=f"wsol/{arch}", arch=arch, source="wsol", preprocess=rethinking_crop(), pool=pool,
                      theta_tap=theta_tap if pool == "tap" else None)
    model = CAMHeadModel(backbone, "", per_location, pool_layer, fc, relu=False, route="forward_features", cfg=cfg)
    if adl:
        positions = spec.adl_positions if adl_positions is None else adl_positions
        insert_after(model, positions, lambda: ADL(adl_drop_rate, adl_gamma))
    return model.eval()
