"""Hook-based CAM extraction from any CNN classifier.

:class:`CAMExtractor` finds, by itself, the last spatial feature map of a model (the last module
whose output is B x C x H x W with H W > 1, pooling layers excluded) and the classifier that turns
it into logits, then works out what happens between them (:mod:`camloc.cam.analysis`). It does this once,
on the first batch, with forward hooks on every module that are removed before it returns; each
later batch needs only two hooks and is checked against the analysis, so a model changed in the
meantime is analysed again rather than mapped wrongly.

Heads that are not affine after pooling (MobileNetV3's conv head, VGG's MLP) get maps from the
head's gradient at the sample's features: a backward pass through the head only, never through
the backbone, with ``exact=False`` in the output.

The model is left as it was: modules are put in eval mode for the call and their training flags
restored afterwards, hooks are removed in ``finally``, no ``.grad`` is written and no
``requires_grad`` flag changes.
"""

from __future__ import annotations

import contextlib
import difflib
import weakref
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..errors import ModelError, UsageError
from . import heads
from .analysis import analyze, as_logits
from .heads import HeadSpec
from .hooks import eval_mode, forward_hooks

ClassSpec = Union[None, int, Sequence[int], Sequence[Sequence[int]], torch.Tensor]

_SPECS: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, HeadSpec]]" = weakref.WeakKeyDictionary()


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
    bias: Optional[torch.Tensor]
    exact: bool
    head: HeadSpec


def _named(model: nn.Module, name: str, what: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        close = difflib.get_close_matches(name, [n for n in modules if n], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelError(f"the model has no module named {name!r} for the {what}{hint}")
    return modules[name]


def resolve_classes(logits: torch.Tensor, classes: ClassSpec, topk: Optional[int]) -> torch.Tensor:
    """Turn a class request into a B x k index tensor, validated against the batch.

    ``None`` takes the top-``topk`` (default 1) predictions; an int applies to every image; a
    sequence or 1-D tensor gives one class per image; a B x k nested sequence or tensor gives several.
    """
    batch, num_classes = logits.shape
    if classes is None:
        k = 1 if topk is None else int(topk)
        if not 1 <= k <= num_classes:
            raise UsageError(f"topk must be between 1 and {num_classes}, not {topk}")
        return logits.topk(k, dim=1).indices
    if topk is not None:
        raise UsageError("give either classes or topk, not both")
    if isinstance(classes, bool):
        raise UsageError("classes must be an int, a sequence of ints or a tensor, not a bool")
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
    if idx.numel() and (idx.min() < 0 or idx.max() >= num_classes):
        bad = idx[(idx < 0) | (idx >= num_classes)][0].item()
        raise UsageError(f"class {bad} is out of range: the model has {num_classes} classes (0..{num_classes - 1})")
    return idx.to(logits.device)


class CAMExtractor:
    """Class activation maps of any CNN classifier, found by hooks.

    Args:
        model: a classifier whose forward returns B x K logits (timm, torchvision or your own).
        feature_layer: qualified module name of the feature map, found automatically if None.
        classifier: qualified module name of the final Linear / 1x1 Conv, found automatically if None.
        method: ``"auto"`` (exact CAM where the head allows, gradient maps otherwise) or
            ``"gradient"`` (always the head's gradient; equals the exact CAM on GAP-linear heads).

    Example:
        >>> extractor = CAMExtractor(timm.create_model("resnet18"))
        >>> out = extractor(torch.randn(2, 3, 224, 224))
        >>> out.maps.shape, out.exact
        (torch.Size([2, 1, 7, 7]), True)
    """

    def __init__(
        self,
        model: nn.Module,
        feature_layer: Optional[str] = None,
        classifier: Optional[str] = None,
        method: str = "auto",
    ):
        if not isinstance(model, nn.Module):
            raise ModelError(f"expected a torch.nn.Module, got {type(model).__name__}")
        if method not in ("auto", "gradient"):
            raise UsageError(f"method must be 'auto' or 'gradient', not {method!r}")
        self.method = method
        self.model = model
        self.feature_layer = feature_layer
        self.classifier = classifier
        if feature_layer is not None:
            _named(model, feature_layer, "feature map")
        if classifier is not None:
            _named(model, classifier, "classifier")

    # -- analysis -----------------------------------------------------------------------------
    @property
    def _key(self) -> tuple:
        return (self.feature_layer, self.classifier)

    @property
    def head(self) -> Optional[HeadSpec]:
        """The head analysis, once a batch has been seen."""
        return _SPECS.get(self.model, {}).get(self._key)

    def analyze(self, x: torch.Tensor) -> HeadSpec:
        """Run one traced forward pass on ``x`` and work out the feature layer and head."""
        spec = analyze(self.model, x, self.feature_layer, self.classifier)
        _SPECS.setdefault(self.model, {})[self._key] = spec
        return spec

    # -- extraction ---------------------------------------------------------------------------
    def __call__(
        self,
        x: torch.Tensor,
        classes: ClassSpec = None,
        topk: Optional[int] = None,
        nwc: bool = True,
        require_exact: bool = False,
    ) -> CAMOutput:
        """Maps for a preprocessed batch ``x`` (B x 3 x H x W on the model's device).

        Args:
            x: the network input.
            classes: which classes to map (see :func:`resolve_classes`); default top-1.
            topk: map the top-k predictions instead.
            nwc: negative weight clamping in the map (PROTOCOLS.md section 1).
            require_exact: raise :class:`ModelError` instead of returning gradient maps.
        """
        return self.variants(x, classes, topk, (nwc,), require_exact)[nwc]

    def variants(
        self,
        x: torch.Tensor,
        classes: ClassSpec = None,
        topk: Optional[int] = None,
        nwcs: Sequence[bool] = (False, True),
        require_exact: bool = False,
    ) -> dict[bool, CAMOutput]:
        """Maps with and without NWC from one forward pass: ``{nwc: CAMOutput}``."""
        if x.ndim != 4:
            raise UsageError(f"expected a B x C x H x W batch, got shape {tuple(x.shape)}")
        if require_exact and self.method == "gradient":
            raise UsageError("require_exact contradicts method='gradient'")
        with eval_mode(self.model):
            spec = self.head or self.analyze(x[:2])
            if require_exact and not spec.exact:
                raise ModelError(_not_exact_message(self.model))
            if spec.exact and self.method == "auto":
                out = self._exact(x, spec, classes, topk, nwcs)
                if out is None:  # the model no longer matches its analysis: analyse again
                    spec = self.analyze(x[:2])
                    if require_exact and not spec.exact:
                        raise ModelError(_not_exact_message(self.model))
                    out = self._exact(x, spec, classes, topk, nwcs) if spec.exact else None
                if out is not None:
                    return out
            return self._gradient(x, spec, classes, topk, nwcs)

    def _modules(self, spec: HeadSpec) -> dict[str, nn.Module]:
        """The modules a head analysis names, looked up by name (each call: the model may have changed)."""
        wanted = {spec.feature_layer, spec.classifier, spec.norm} - {None}
        found = {n: m for n, m in self.model.named_modules() if n in wanted}
        if len(found) != len(wanted):
            raise ModelError(f"the model no longer has the modules {sorted(wanted - set(found))}")
        return found

    def _exact(self, x, spec: HeadSpec, classes, topk, nwcs) -> Optional[dict[bool, CAMOutput]]:
        modules = self._modules(spec)
        captured: dict[str, torch.Tensor] = {}

        def keep_output(_m, _args, out):
            captured["feats"] = out

        def keep_input(_m, args, _out):
            captured["cls_in"] = args[0]

        no_grad = contextlib.nullcontext() if torch.is_inference_mode_enabled() else torch.no_grad()
        with no_grad, forward_hooks([(modules[spec.feature_layer], keep_output), (modules[spec.classifier], keep_input)]):
            logits = as_logits(self.model(x))
        if "feats" not in captured or "cls_in" not in captured:
            return None
        feats, cls_in = captured["feats"], captured["cls_in"].flatten(1)
        norm = modules[spec.norm] if spec.norm else None
        fmap = heads.features_for(spec, feats)
        expected = heads.pooled(spec.pool, fmap, spec.theta_tap)
        if norm is not None:
            expected = heads.apply_norm(norm, expected)
        if not heads.close(cls_in.float(), expected):
            return None
        idx = resolve_classes(logits, classes, topk)
        logits = logits.detach().float()
        out = {}
        for nwc in nwcs:
            maps, bias = heads.exact_maps(spec, feats, modules[spec.classifier], norm, idx, nwc)
            out[nwc] = CAMOutput(logits, idx, maps, bias, True, spec)
        return out

    def _gradient(self, x, spec: HeadSpec, classes, topk, nwcs) -> dict[bool, CAMOutput]:
        if torch.is_inference_mode_enabled():
            raise ModelError(
                "this model's head is not affine, so its map needs a backward pass through the head, "
                "which torch.inference_mode() forbids: call camloc outside inference_mode (no_grad is fine)"
            )
        layer = self._modules(spec)[spec.feature_layer]
        captured: dict[str, torch.Tensor] = {}

        def substitute(_m, _args, out):
            # Backbone ran without a graph; from here on the head records one, from this leaf.
            torch.set_grad_enabled(True)
            leaf = out.detach().requires_grad_(True)
            captured["leaf"] = leaf
            return leaf.clone()  # a non-leaf, so in-place ops of the head are allowed

        grad_mode = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(False)
            with forward_hooks([(layer, substitute)]):
                logits = as_logits(self.model(x))
            if "leaf" not in captured:
                raise ModelError(f"the feature layer {spec.feature_layer!r} did not run in the forward pass")
            leaf = captured["leaf"]
            idx = resolve_classes(logits.detach(), classes, topk)
            grads = []
            for j in range(idx.shape[1]):
                target = logits.gather(1, idx[:, j : j + 1]).sum()
                (g,) = torch.autograd.grad(target, leaf, retain_graph=j < idx.shape[1] - 1)
                grads.append(g.sum(dim=(2, 3)))
        finally:
            torch.set_grad_enabled(grad_mode)
        weights = torch.stack(grads, dim=1)  # B x k x C
        logits = logits.detach().float()
        return {
            nwc: CAMOutput(logits, idx, heads.gradient_maps(weights, leaf.detach(), nwc), None, False, spec)
            for nwc in nwcs
        }


def _not_exact_message(model: nn.Module) -> str:
    return (
        f"{type(model).__name__}'s head is not affine after global pooling (e.g. an MLP or a conv head "
        "after pooling), so no exact CAM exists; drop require_exact to get a gradient map (exact=False), "
        "or retrofit a CAM-compatible TAP head (camloc finetune --pool tap) to make it exact"
    )
