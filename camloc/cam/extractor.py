"""Hook-based CAM extraction from any image classifier: CNNs, channels-last models, vision transformers.

:class:`CAMExtractor` finds, by itself, the last spatial feature map of a model (the last module
whose output lies on a grid, pooling layers excluded: B x C x H x W, B x H x W x C as in Swin, or
B x N x C patch tokens after the class / distillation / register tokens, as in a ViT) and the
classifier that turns it into logits, then works out what happens between them
(:mod:`camloc.cam.analysis`); :func:`camloc.cam.heads.as_grid` turns the layer's output into
B x C x H x W. It does this once,
on the first batch, with forward hooks on every module that are removed before it returns, and
keeps the analysis in its :class:`~camloc.cam.cache.HeadCache`; each later batch needs only two
hooks and is checked against the analysis, so a model changed in the meantime is analysed again
rather than mapped wrongly.

Heads that are not affine after pooling (MobileNetV3's conv head, VGG's MLP) get maps from the
head's gradient at the sample's features: a backward pass through the head only, never through
the backbone, with ``exact=False`` in the output. A transformer that reads its class token gets the
same from the last token sequence whose patch tokens the logit depends on (a ViT's last ``norm1``),
with ``head.reason == "class token"``.

A batch smaller (on its shorter side) than the one analysed can only reuse the analysis; a larger
one is analysed again, because on a small input the real feature map may be a single location and
the search then settles on an earlier layer. Given the model's ``input_size``, a batch smaller than
that is never analysed itself: a random batch of that size is, so the analysis is the one real
pictures get.

Input is cast to the model's floating dtype (a double or half model takes float32 batches); the
model is left as it was: modules are put in eval mode for the call and their training flags
restored afterwards, hooks are removed in ``finally``, no ``.grad`` is written, no ``requires_grad``
flag and no dtype changes.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..utils.errors import ModelError, UsageError
from . import heads
from .analysis import analyze
from .cache import HeadCache
from .exact import Capture, capture, head_modules
from .gradients import head_gradients
from .heads import HeadSpec
from .hooks import eval_mode


@dataclass(frozen=True)
class AboveScore:
    """A class request for multi-label heads: each image's classes whose sigmoid score exceeds ``threshold``.

    :func:`resolve_classes` turns it into the top ``k`` classes of every image, ``k`` the most any image of the
    batch has above the threshold (at least 1, at most ``max_classes``), best first; an image with fewer also
    gets its next best classes, which whoever asked drops by their score (:class:`camloc.api.Localizer` does).
    ``max_classes`` bounds the maps a batch holds (B x k full-size maps) where a head scores many classes high
    (the sigmoid of a softmax-trained head's logits often exceeds 0.5 for hundreds of classes).
    """

    threshold: float = 0.5
    max_classes: int = 100


ClassSpec = None | int | str | Sequence[int | str] | Sequence[Sequence[int | str]] | torch.Tensor | AboveScore


@dataclass(frozen=True)
class CAMOutput:
    """One batch of class activation maps.

    Attributes:
        logits: B x K logits, detached.
        classes: B x k class indices the maps are for.
        maps: B x k x h x w raw maps at feature resolution (float32, on the model's device).
        bias: B x k effective bias of exact heads (``maps.mean((2,3)) + bias == logits`` without NWC),
            None for gradient maps.
        exact: whether the maps are exact CAMs (False: gradient-weighted maps of a non-affine head).
        head: the head analysis used.
    """

    logits: torch.Tensor
    classes: torch.Tensor
    maps: torch.Tensor
    bias: torch.Tensor | None
    exact: bool
    head: HeadSpec


@dataclass(frozen=True)
class ChannelOutput:
    """The feature channels of a GAP or TAP head and the selected classes' weights on them.

    Attributes:
        logits: B x K logits, detached.
        classes: B x k class indices.
        features: B x C x h x w feature map the head pools (after the head's ReLU where it has one), detached.
        weights: B x k x C effective weight of each class on each channel (a folded norm makes it per image).
        bias: B x k effective bias: for GAP, ``(weights @ features).mean + bias == logits``.
        head: the head analysis used.
    """

    logits: torch.Tensor
    classes: torch.Tensor
    features: torch.Tensor
    weights: torch.Tensor
    bias: torch.Tensor
    head: HeadSpec


def _named(model: nn.Module, name: str, what: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        close = difflib.get_close_matches(name, [n for n in modules if n], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelError(f"the model has no module named {name!r} for the {what}{hint}")
    return modules[name]


def resolve_classes(logits: torch.Tensor, classes: ClassSpec, topk: int | None) -> torch.Tensor:
    """Turn a class request into a B x k index tensor, validated against the batch.

    ``None`` takes the top-``topk`` (default 1) predictions; an int applies to every image; a
    sequence or 1-D tensor gives one class per image; a B x k nested sequence or tensor gives several;
    :class:`AboveScore` the classes above a sigmoid score.
    Class names are refused here (the extractor knows no labels): :class:`camloc.api.Localizer`
    turns them into indices first.

    Example:
        >>> import torch
        >>> from camloc.cam.extractor import resolve_classes
        >>> logits = torch.tensor([[0.1, 2.0, 0.3], [1.5, 0.2, 0.9]])   # 2 images, 3 classes
        >>> resolve_classes(logits, [2, 0], None).tolist(), resolve_classes(logits, None, 2).tolist()
        ([[2], [0]], [[1, 2], [0, 2]])
        >>> resolve_classes(logits, AboveScore(0.6), None).tolist()   # sigmoid: [.52, .88, .57], [.82, .55, .71]
        [[1, 2], [0, 2]]
    """
    batch, num_classes = logits.shape
    if isinstance(classes, AboveScore):
        if topk is not None:
            raise UsageError("give either a score threshold or topk, not both")
        k = int((logits.float().sigmoid() > classes.threshold).sum(dim=1).max().clamp(1, classes.max_classes))
        return logits.topk(k, dim=1).indices
    if classes is None:
        k = 1 if topk is None else int(topk)
        if not 1 <= k <= num_classes:
            raise UsageError(f"topk must be between 1 and {num_classes}, not {topk}")
        return logits.topk(k, dim=1).indices
    if topk is not None:
        raise UsageError("give either classes or topk, not both")
    if isinstance(classes, bool):
        raise UsageError("classes must be an int, a sequence of ints or a tensor, not a bool")
    name = first_name(classes)
    if name is not None:
        raise UsageError(
            f"class {name!r} is a name: CAMExtractor takes class indices (ints); camloc.boxes, camloc.cams and "
            "camloc.Localizer look names up in the model's labels"
        )
    idx = _index_tensor(classes, batch)
    if idx.numel() and (idx.min() < 0 or idx.max() >= num_classes):
        bad = idx[(idx < 0) | (idx >= num_classes)][0].item()
        raise UsageError(f"class {bad} is out of range: the model has {num_classes} classes (0..{num_classes - 1})")
    return idx.to(logits.device)


def _index_tensor(classes: ClassSpec, batch: int) -> torch.Tensor:
    """An explicit class request (an int, one per image, or B x k) as a B x k long tensor, shapes checked."""
    if isinstance(classes, int):
        idx = torch.full((batch, 1), classes, dtype=torch.long)
    else:
        try:
            idx = torch.as_tensor(classes)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"classes must be ints or a tensor of ints ({exc})") from exc
        if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
            raise UsageError(f"classes must be integers, not {idx.dtype}")
        idx = idx.long()
        if idx.ndim == 0:
            idx = idx.expand(batch).reshape(batch, 1)
        elif idx.ndim == 1:
            if idx.shape[0] != batch:
                raise UsageError(f"got {idx.shape[0]} classes for a batch of {batch} images: give one per image")
            idx = idx.view(batch, 1)
        elif idx.ndim == 2:
            if idx.shape[0] != batch:
                raise UsageError(f"got classes for {idx.shape[0]} images in a batch of {batch}: give one row per image")
        else:
            raise UsageError(f"classes must be at most 2-D, got shape {tuple(idx.shape)}")
    return idx


def first_name(classes: object) -> str | None:
    """The first class name (a string) in a class request, at most two levels deep; None if it has none.

    Example:
        >>> from camloc.cam.extractor import first_name
        >>> first_name([281, "tabby"]), first_name([[1, 2]])
        ('tabby', None)
    """
    if isinstance(classes, str):
        return classes
    if isinstance(classes, (list, tuple)):
        for item in classes:
            found = first_name(item) if isinstance(item, (str, list, tuple)) else None
            if found is not None:
                return found
    return None


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype of a model's first floating parameter (or buffer), None if it has none.

    Example:
        >>> from torch import nn
        >>> from camloc.cam.extractor import model_dtype
        >>> model_dtype(nn.Linear(2, 2).double())
        torch.float64
    """
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def input_channels(model: nn.Module) -> tuple[str, int] | None:
    """``(name, in_channels)`` of the model's first Conv2d in module order (its stem), None without one.

    Example:
        >>> import timm
        >>> from camloc.cam.extractor import input_channels
        >>> input_channels(timm.create_model("resnet18"))
        ('conv1', 3)
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module.in_channels
    return None


class CAMExtractor:
    """Class activation maps of any image classifier (CNN, Swin, ViT), found by hooks.

    Args:
        model: a classifier whose forward returns B x K logits (timm, torchvision or your own).
        feature_layer: qualified module name of the feature map, found automatically if None.
        classifier: qualified module name of the final Linear / 1x1 Conv, found automatically if None.
        method: ``"auto"`` (exact CAM where the head allows, gradient maps otherwise) or
            ``"gradient"`` (always the head's gradient; equals the exact CAM on GAP-linear heads).
        input_size: ``(h, w)`` the model is meant to run at (its preprocessing's input size); a
            batch smaller than that is not analysed itself, a random batch of this size is.
        cache: where the head analyses are kept, the attribute ``cache``: by default a
            :class:`~camloc.cam.cache.HeadCache` of the extractor's own, so that they last as long as the extractor;
            extractors given one cache (or whose ``cache`` is set to it before their first batch) share its analyses,
            and analyse a model once for all of them. A cache never keeps a model alive.

    Example:
        >>> import timm, torch
        >>> extractor = CAMExtractor(timm.create_model("resnet18"))
        >>> out = extractor(torch.randn(1, 3, 224, 224))
        >>> out.maps.shape, out.exact
        (torch.Size([1, 1, 7, 7]), True)
    """

    def __init__(
        self,
        model: nn.Module,
        feature_layer: str | None = None,
        classifier: str | None = None,
        method: str = "auto",
        input_size: tuple[int, int] | None = None,
        *,
        cache: HeadCache | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise ModelError(f"expected a torch.nn.Module, got {type(model).__name__}")
        if method not in ("auto", "gradient"):
            raise UsageError(f"method must be 'auto' or 'gradient', not {method!r}")
        self.method = method
        self.model = model
        self.feature_layer = feature_layer
        self.classifier = classifier
        self.input_size = (int(input_size[0]), int(input_size[1])) if input_size is not None else None
        self.cache = cache if cache is not None else HeadCache()
        if feature_layer is not None:
            _named(model, feature_layer, "feature map")
        if classifier is not None:
            _named(model, classifier, "classifier")

    # -- analysis -----------------------------------------------------------------------------
    @property
    def _key(self) -> tuple:
        return (self.feature_layer, self.classifier)

    @property
    def head(self) -> HeadSpec | None:
        """The head analysis, once a batch has been seen."""
        return self.cache.lookup(self.model, self._key)

    def analyze(self, x: torch.Tensor) -> HeadSpec:
        """Run one traced forward pass on ``x`` and work out the feature layer and head (kept in :attr:`cache`)."""
        spec = analyze(self.model, x, self.feature_layer, self.classifier)
        self.cache.store(self.model, self._key, spec, min(x.shape[2], x.shape[3]))
        return spec

    def _analysis_input(self, x: torch.Tensor) -> torch.Tensor:
        """What to analyse for batch ``x``: its first two images, or a random batch of ``input_size``.

        The random batch, seeded and leaving the global random state alone, stands in for a batch
        smaller than ``input_size``.
        """
        if self.input_size is None or min(x.shape[2], x.shape[3]) >= min(self.input_size):
            return x[:2]
        generator = torch.Generator().manual_seed(0)
        blank = torch.randn((1, x.shape[1], *self.input_size), generator=generator)
        return blank.to(device=x.device, dtype=x.dtype)

    def _spec_for(self, x: torch.Tensor) -> HeadSpec:
        """The cached analysis, unless ``x`` is larger than the input it was made on."""
        found = self.cache.serving(self.model, self._key, min(x.shape[2], x.shape[3]))
        if found is not None:
            return found
        return self.analyze(self._analysis_input(x))

    # -- extraction ---------------------------------------------------------------------------
    def __call__(
        self,
        x: torch.Tensor,
        classes: ClassSpec = None,
        topk: int | None = None,
        nwc: bool = True,
        require_exact: bool = False,
    ) -> CAMOutput:
        """Maps for a preprocessed batch ``x`` (B x 3 x H x W on the model's device).

        Args:
            x: the network input.
            classes: which classes to map (see :func:`resolve_classes`); default top-1.
            topk: map the top-k predictions instead.
            nwc: negative weight clamping in the map (docs/protocols.md, "NWC").
            require_exact: raise :class:`ModelError` instead of returning gradient maps.
        """
        return self.variants(x, classes, topk, (nwc,), require_exact)[nwc]

    def variants(
        self,
        x: torch.Tensor,
        classes: ClassSpec = None,
        topk: int | None = None,
        nwcs: Sequence[bool] = (False, True),
        require_exact: bool = False,
    ) -> dict[bool, CAMOutput]:
        """Maps with and without NWC from one forward pass: ``{nwc: CAMOutput}``.

        ``x`` is cast to the model's dtype (a double or half model takes a float32 batch); the maps
        and logits come back as float32.
        """
        if require_exact and self.method == "gradient":
            raise UsageError("require_exact contradicts method='gradient'")
        x = _network_input(self.model, x)
        with _channels_explained(self.model, x):
            return self._variants(x, classes, topk, nwcs, require_exact)

    def channels(self, x: torch.Tensor, classes: ClassSpec = None, topk: int | None = None) -> ChannelOutput:
        """The feature channels a GAP or TAP head pools and each class's weight on them, from one forward pass.

        The class map is ``M_k = sum_c weights[b,k,c] features[b,c]`` (the CAM without NWC); with NWC only the channels
        of positive weight count. This is what the mechanism statistics of :mod:`camloc.eval.diagnosis` read.

        Raises:
            ModelError: the head is not exact, or pools in a way that gives no single weight per
                channel (max, avgmax, catavgmax).

        Example:
            >>> import timm, torch
            >>> out = CAMExtractor(timm.create_model("resnet18")).channels(torch.randn(1, 3, 224, 224), classes=[281])
            >>> out.features.shape, out.weights.shape
            (torch.Size([1, 512, 7, 7]), torch.Size([1, 1, 512]))
        """
        x = _network_input(self.model, x)
        with _channels_explained(self.model, x), eval_mode(self.model):
            spec, got = self._capture(x, self._spec_for(x))
            if got is None:
                raise ModelError(_not_exact_message(self.model))
            logits, feats, modules = got
            idx = resolve_classes(logits, classes, topk)
            fmap = heads.features_for(spec, feats, tuple(x.shape[-2:]))
            norm = modules[spec.norm] if spec.norm else None
            weights, bias = heads.class_weights(spec, fmap, modules[spec.classifier], norm, idx)
        return ChannelOutput(logits.detach().float(), idx, fmap.detach(), weights, bias, spec)

    def _variants(self, x, classes, topk, nwcs, require_exact) -> dict[bool, CAMOutput]:
        with eval_mode(self.model):
            spec = self._spec_for(x)
            if require_exact and not spec.exact:
                raise ModelError(_not_exact_message(self.model))
            if spec.exact and self.method == "auto":
                spec, got = self._capture(x, spec, require_exact)
                if got is not None:
                    return self._exact(x, spec, got, classes, topk, nwcs)
            return self._gradient(x, spec, classes, topk, nwcs)

    def _capture(self, x: torch.Tensor, spec: HeadSpec, require_exact: bool = False,
                 ) -> tuple[HeadSpec, Capture | None]:
        """The exact head's forward pass (:func:`~camloc.cam.exact.capture`), with the analysis it held to.

        A model that no longer matches its analysis is analysed again, once; the capture is None
        when the head is not (or no longer) exact.
        """
        if not spec.exact:
            return spec, None
        got = capture(self.model, x, spec)
        if got is None:  # the model no longer matches its analysis: analyse again
            spec = self.analyze(self._analysis_input(x))
            if require_exact and not spec.exact:
                raise ModelError(_not_exact_message(self.model))
            got = capture(self.model, x, spec) if spec.exact else None
        return spec, got

    def _exact(self, x, spec: HeadSpec, got: Capture, classes, topk, nwcs) -> dict[bool, CAMOutput]:
        """Exact CAMs from a captured forward pass, one output per NWC setting."""
        logits, feats, modules = got
        norm = modules[spec.norm] if spec.norm else None
        idx = resolve_classes(logits, classes, topk)
        logits = logits.detach().float()
        out = {}
        for nwc in nwcs:
            maps, bias = heads.exact_maps(spec, feats, modules[spec.classifier], norm, idx, nwc, tuple(x.shape[-2:]))
            out[nwc] = CAMOutput(logits, idx, maps, bias, True, spec)
        return out

    def _gradient(self, x, spec: HeadSpec, classes, topk, nwcs) -> dict[bool, CAMOutput]:
        """The map of a non-affine head: each channel weighed by ``w[b,k,c] = sum_x d logit_k / d F_c(x)``."""
        out = head_gradients(self.model, head_modules(self.model, spec)[spec.feature_layer], spec, x,
                             lambda logits: resolve_classes(logits, classes, topk), refusal=(
            "this model's head is not affine, so its map needs a backward pass through the head, which "
            "torch.inference_mode() forbids: call camloc outside inference_mode (no_grad is fine)"))
        weights = out.grads.sum(dim=(3, 4))  # B x k x C
        return {nwc: CAMOutput(out.logits, out.classes, heads.gradient_maps(weights, out.acts, nwc), None, False, spec)
                for nwc in nwcs}


def _network_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A batch checked (4-D, floating) and cast to the model's dtype."""
    if x.ndim != 4:
        raise UsageError(f"expected a B x C x H x W batch, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise UsageError(
            f"the batch is {x.dtype}, not float: CAMExtractor takes preprocessed network input; "
            "normalise it (camloc.preprocess_for(model)) or give the pixels to camloc.boxes / camloc.cams"
        )
    dtype = model_dtype(model)
    return x.to(dtype) if dtype is not None and x.dtype != dtype else x


@contextlib.contextmanager
def _channels_explained(model: nn.Module, x: torch.Tensor) -> Iterator[None]:
    """A forward pass that fails on input of the wrong channel count says so in one line."""
    try:
        yield
    except RuntimeError as exc:
        stem = input_channels(model)
        if stem is not None and stem[1] != x.shape[1]:
            raise UsageError(_channels_message(x.shape[1], *stem)) from exc
        raise


def _channels_message(got: int, stem: str, expected: int) -> str:
    plural = "channel" if got == 1 else "channels"
    fix = (
        f"repeat a grayscale tensor's channel {expected} times before normalising (x.expand(-1, {expected}, -1, -1) "
        "on a B x 1 x H x W batch), "
        if got == 1 and expected == 3 else f"give {expected}-channel input, "
    )
    return (
        f"the input has {got} {plural}, but the model's first convolution ({stem}) takes {expected}: "
        f"{fix}or give camloc.boxes / camloc.cams the image itself (a path, PIL image, array or uint8 tensor)"
    )


def _not_exact_message(model: nn.Module) -> str:
    return (
        f"{type(model).__name__}'s head is not affine after global pooling (e.g. an MLP or a conv head "
        "after pooling), so no exact CAM exists; drop require_exact to get a gradient map (exact=False), "
        "or retrofit a CAM-compatible TAP head (camloc finetune --pool tap) to make it exact"
    )
