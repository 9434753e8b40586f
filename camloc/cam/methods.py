"""CAM and its baselines by name, on the feature layer the CAM uses, with camloc's own hooks.

The names are those of pytorch-grad-cam's command line (``cam`` is camloc's own, the default):

============  ===========================================================================  =====================
method        map ``M_k`` of class ``k`` (``A`` = feature map, ``G = d logit_k / d A``)     passes per batch
============  ===========================================================================  =====================
``cam``       the exact CAM ``sum_c W[k,c] A_c`` of :class:`CAMExtractor` (the gradient     1 forward (+ 1 head
              map for heads that are not affine), no ReLU                                    backward if not exact)
``gradcam``   ``ReLU(sum_c w_c A_c)``, ``w_c = mean_xy G_c``                                  1 forward, 1 backward
``gradcam++`` ``ReLU(sum_c w_c A_c)``, ``w_c = sum_xy ReLU(G_c) a_c``,                        1 forward, 1 backward
              ``a_c = G_c^2 / (2 G_c^2 + sum_xy(A_c) G_c^3 + 1e-6)`` (0 where ``G_c = 0``)
``xgradcam``  ``ReLU(sum_c w_c A_c)``, ``w_c = sum_xy(G_c A_c) / (sum_xy(A_c) + 1e-7)``       1 forward, 1 backward
``layercam``  ``ReLU(sum_c ReLU(G_c) A_c)`` (a weight per location)                          1 forward, 1 backward
``scorecam``  ``ReLU(sum_c w_c A_c)``, ``w = softmax_c(logit_k(x * m_c))`` with ``m_c`` the   1 + (live channels /
              channel upsampled to the input (bilinear, corners aligned) and min-max          ``score_batch``)
              normalised, ``(U - min) / (max - min + 1e-8)``                                  forwards per image
``pc1``       ``ReLU(+-P)``, ``P`` the locations' coordinate on the first principal           1 forward (+ 1 head
              component of the centred feature map (EigenCAM; alias ``eigencam``), signed     backward if not
              to correlate positively with the class's CAM (:mod:`camloc.cam.pc1`)            exact)
``bagcams``   ``sum_c ReLU(a_c P_c)``, ``P_c = A_c G_c / z_k`` (the gradient of ``log z_k``),   1 forward, 1 backward
              ``a_c = 1 + mean_xy P_c`` (BagCAMs, the authors' code: :mod:`camloc.cam.bagcams`)
============  ===========================================================================  =====================

The five baselines follow pytorch-grad-cam's definitions (``pytorch_grad_cam/grad_cam.py``,
``grad_cam_plusplus.py``, ``xgrad_cam.py``, ``layer_cam.py``, ``score_cam.py`` and the final ReLU of
``base_cam.py``), checked against that package by ``tests/cam/test_methods.py``. Two differences in
what comes back: camloc's maps stay at feature resolution and are not min-max normalised (the box
rule and the evaluator normalise), and Score-CAM's weights are the softmax over channels of the
target's *logit* (pytorch-grad-cam's ``ClassifierOutputTarget``), not the class probability of the
Score-CAM paper, without torch-cam's baseline subtraction.

The backward pass runs through the head only: the feature layer's output is replaced by a leaf
tensor (as :class:`CAMExtractor` does for gradient maps) and ``torch.autograd.grad`` differentiates
the logits with respect to it, for every image and every requested class at once; no ``.grad`` is
written, no ``requires_grad`` flag changes, hooks are removed in ``finally`` and training flags are
restored. Activations and gradients go through one function, :func:`as_grid`, which turns a
layer's output into B x C x H x W (``camloc.cam.heads.as_grid``: token grids of vision transformers,
NHWC layouts), so every method works wherever the CAM finds its feature layer.

NWC (negative weight clamping) clamps the channel weights at 0 where a method has signed channel
weights: ``cam`` (the classifier's ``W[k,c]``), ``gradcam``, ``xgradcam`` and ``gradcam++`` (whose
weights are negative only where ``sum_xy A_c < 0``: NWC changes nothing on a non-negative feature
map). ``layercam`` (``ReLU(G)``, never negative) and ``scorecam`` (softmax weights, positive) have
nothing to clamp: NWC does not apply to them (:func:`nwc_applies`) and is ignored. PaS, the
threshold standard, applies to every map.

Score-CAM's cost: one forward pass of the whole network per (image, channel) whose activation is not
constant (a constant channel's mask is 0 everywhere, so all of them share one pass on a black input),
``score_batch`` masked images at a time (memory: ``score_batch`` input images). On
efficientnet_lite0 (1280 channels) that is hundreds of full forward passes per image.

Example:
    >>> import timm, torch
    >>> from camloc.cam.methods import MethodExtractor
    >>> ex = MethodExtractor(timm.create_model("resnet18"), "gradcam")
    >>> out = ex(torch.randn(2, 3, 224, 224))
    >>> out.maps.shape, out.exact
    (torch.Size([2, 1, 7, 7]), False)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..utils.errors import ModelError, UsageError
from . import heads
from .analysis import as_logits
from .bagcams import bagcams_map
from .cache import HeadCache
from .exact import capture
from .extractor import CAMExtractor, CAMOutput, ClassSpec, model_dtype, resolve_classes
from .gradients import HeadGradients, feature_grid, head_gradients
from .heads import HeadSpec
from .hooks import eval_mode, forward_hooks
from .names import DEFAULT_METHOD, GRADIENT_METHODS, check_method, effective_nwc
from .pc1 import pc1_maps

#: Masked images per forward pass in Score-CAM.
SCORE_BATCH = 64


def gradcam_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM's channel weights ``w[b,k,c] = mean_xy G[b,k,c]`` (pytorch-grad-cam ``grad_cam.py``).

    Example:
        >>> gradcam_weights(torch.ones(1, 2, 2, 2), torch.full((1, 1, 2, 2, 2), 0.5))
        tensor([[[0.5000, 0.5000]]])
    """
    return grads.mean(dim=(3, 4))


def gradcampp_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++'s weights (pytorch-grad-cam ``grad_cam_plusplus.py``, eq. 19 of arXiv:1710.11063).

    ``a = G^2 / (2 G^2 + sum_xy(A) G^3 + 1e-6)`` (the exponential-score form, in which the second and
    third derivatives are powers of the first), set to 0 where ``G = 0``; ``w = sum_xy ReLU(G) a``.

    Example:
        >>> gradcampp_weights(torch.ones(1, 1, 1, 2), torch.full((1, 1, 1, 1, 2), 0.5))  # 2 * .5 * .25 / (.5 + .25)
        tensor([[[0.3333]]])
    """
    g2 = grads * grads
    g3 = g2 * grads
    total = acts.sum(dim=(2, 3))[:, None, :, None, None]
    alpha = g2 / (2 * g2 + total * g3 + 1e-6)
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    return (grads.clamp_min(0) * alpha).sum(dim=(3, 4))


def xgradcam_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM's weights ``w = sum_xy(G A) / (sum_xy(A) + 1e-7)`` (pytorch-grad-cam ``xgrad_cam.py``).

    Example:
        >>> xgradcam_weights(torch.tensor([[[[1.0, 3.0]]]]), torch.tensor([[[[[1.0, 0.0]]]]]))  # 1 / 4
        tensor([[[0.2500]]])
    """
    total = acts.sum(dim=(2, 3))[:, None, :, None, None]
    return (grads * acts[:, None] / (total + 1e-7)).sum(dim=(3, 4))


def weighted_map(weights: torch.Tensor, acts: torch.Tensor, nwc: bool) -> torch.Tensor:
    """``ReLU(sum_c w[b,k,c] A[b,c])`` with, for NWC, ``w`` clamped at 0 first (B x k x h x w).

    Example:
        >>> weighted_map(torch.tensor([[[1.0, -1.0]]]), torch.tensor([[[[2.0]], [[3.0]]]]), nwc=False)
        tensor([[[[0.]]]])
    """
    if nwc:
        weights = weights.clamp_min(0)
    return torch.einsum("bkc,bchw->bkhw", weights, acts).clamp_min(0)


def layercam_map(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """LayerCAM's map ``ReLU(sum_c ReLU(G_c) A_c)`` (pytorch-grad-cam ``layer_cam.py``), B x k x h x w.

    Example:
        >>> layercam_map(torch.ones(1, 2, 1, 1), torch.tensor([[[[[2.0]], [[-1.0]]]]]))
        tensor([[[[2.]]]])
    """
    return (grads.clamp_min(0) * acts[:, None]).sum(dim=2).clamp_min(0)


_WEIGHTS = {"gradcam": gradcam_weights, "gradcam++": gradcampp_weights, "xgradcam": xgradcam_weights}


def gradient_method_maps(method: str, acts: torch.Tensor, grads: torch.Tensor, nwc: bool) -> torch.Tensor:
    """The map of a gradient method from activations (B x C x h x w) and gradients (B x k x C x h x w).

    Example:
        >>> gradient_method_maps("gradcam", torch.ones(1, 2, 3, 3), torch.ones(1, 1, 2, 3, 3), nwc=True).shape
        torch.Size([1, 1, 3, 3])
    """
    if method == "layercam":
        return layercam_map(acts, grads)
    if method not in _WEIGHTS:
        raise UsageError(f"{method!r} is not a gradient method: choose from {', '.join(GRADIENT_METHODS)}")
    return weighted_map(_WEIGHTS[method](acts, grads), acts, effective_nwc(method, nwc))


def scorecam_masks(acts: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Score-CAM's masks: each channel (N x 1 x h x w) upsampled to ``size`` and min-max normalised.

    The upsampling is bilinear with corners aligned, as ``torch.nn.UpsamplingBilinear2d``; the
    normalisation ``(U - min) / (max - min + 1e-8)`` (pytorch-grad-cam ``score_cam.py``).

    Example:
        >>> scorecam_masks(torch.tensor([[[[0.0, 2.0]]]]), (1, 3))
        tensor([[[[0.0000, 0.5000, 1.0000]]]])
    """
    up = F.interpolate(acts, size=tuple(size), mode="bilinear", align_corners=True)
    low = up.amin(dim=(2, 3), keepdim=True)
    high = up.amax(dim=(2, 3), keepdim=True)
    return (up - low) / (high - low + 1e-8)


def scorecam_scores(model: nn.Module, x: torch.Tensor, acts: torch.Tensor, classes: torch.Tensor,
                    batch_size: int = SCORE_BATCH, progress: bool = False) -> torch.Tensor:
    """The logit of each class for the input masked by each channel: B x k x C.

    A channel whose activation is constant has the all-zero mask (up to float round-off), so every
    such channel of every image shares one forward pass on a black input. The others go through the
    model ``batch_size`` masked images at a time. Runs under ``no_grad``; the model must already
    be in eval mode.

    Args:
        model: the classifier.
        x: the network input, B x 3 x H x W.
        acts: the feature map, B x C x h x w (float32).
        classes: B x k class indices.
        batch_size: masked images per forward pass.
        progress: a progress bar (tqdm) over the forward passes.
    """
    from tqdm import tqdm

    batch, channels = acts.shape[:2]
    flat = acts.flatten(2)
    live = (flat.amax(dim=2) != flat.amin(dim=2)).nonzero()  # n x 2: (image, channel)
    scores = torch.empty(batch, classes.shape[1], channels, device=acts.device)
    with torch.no_grad():
        black = as_logits(model(torch.zeros_like(x[:1]))).float()[0]
        scores[:] = black[classes].unsqueeze(2)
        steps = range(0, live.shape[0], batch_size)
        for start in tqdm(steps, disable=not progress, leave=False, unit="pass", desc="scorecam"):
            b, c = live[start:start + batch_size].unbind(1)
            masks = scorecam_masks(acts[b, c].unsqueeze(1), x.shape[2:])
            logits = as_logits(model(x[b] * masks.to(x.dtype))).float()
            scores[b, :, c] = logits.gather(1, classes[b])
    return scores


# -- the extractor ----------------------------------------------------------------------------------------


class MethodExtractor:
    """CAM and its baselines (:data:`~camloc.cam.names.METHODS`) for any classifier, on the CAM's feature layer.

    Args:
        model: a classifier whose forward returns B x K logits.
        method: the method :meth:`__call__` and :meth:`variants` use (default ``cam``).
        feature_layer: the feature layer's module name, when automatic discovery should be overridden.
        classifier: the classifier's module name, when automatic discovery should be overridden.
        input_size: ``(h, w)`` the model is meant to run at (see :class:`CAMExtractor`).
        score_batch: masked images per forward pass in Score-CAM.
        progress: show a progress bar over Score-CAM's forward passes.
        cache: where the head analyses are kept (see :class:`CAMExtractor`); by default the extractor's own.

    Example:
        >>> import timm, torch
        >>> model, x = timm.create_model("resnet18"), torch.randn(2, 3, 224, 224)
        >>> ex = MethodExtractor(model, "layercam")
        >>> ex.maps(x, [("gradcam", True), ("layercam", False)])[("gradcam", True)].maps.shape
        torch.Size([2, 1, 7, 7])
    """

    def __init__(self, model: nn.Module, method: str = DEFAULT_METHOD, feature_layer: str | None = None,
                 classifier: str | None = None, input_size: tuple[int, int] | None = None,
                 score_batch: int = SCORE_BATCH, progress: bool = False, cache: HeadCache | None = None) -> None:
        self.method = check_method(method)
        self.cam = CAMExtractor(model, feature_layer, classifier, input_size=input_size, cache=cache)
        self.model = model
        if int(score_batch) < 1:
            raise UsageError(f"score_batch must be at least 1, not {score_batch}")
        self.score_batch = int(score_batch)
        self.progress = progress
        self._specs: dict[tuple[int, int], HeadSpec] = {}

    @property
    def head(self) -> HeadSpec | None:
        """The head analysis, once a batch has been seen."""
        return self.cam.head

    def analyze(self, x: torch.Tensor) -> HeadSpec:
        """Analyse the head on ``x`` (:meth:`CAMExtractor.analyze`): the feature layer every method uses."""
        return self.cam.analyze(x)

    def __call__(self, x: torch.Tensor, classes: ClassSpec = None, topk: int | None = None, nwc: bool = True,
                 require_exact: bool = False) -> CAMOutput:
        """Maps of :attr:`method` for a preprocessed batch (see :meth:`CAMExtractor.__call__`)."""
        return self.maps(x, [(self.method, nwc)], classes, topk, require_exact)[(self.method, nwc)]

    def variants(self, x: torch.Tensor, classes: ClassSpec = None, topk: int | None = None,
                 nwcs: Sequence[bool] = (False, True), require_exact: bool = False) -> dict[bool, CAMOutput]:
        """Maps of :attr:`method` with and without NWC from one pass: ``{nwc: CAMOutput}``."""
        out = self.maps(x, [(self.method, n) for n in nwcs], classes, topk, require_exact)
        return {n: out[(self.method, n)] for n in nwcs}

    def maps(self, x: torch.Tensor, requests: Iterable[tuple[str, bool]], classes: ClassSpec = None,
             topk: int | None = None, require_exact: bool = False) -> dict[tuple[str, bool], CAMOutput]:
        """Maps for several ``(method, nwc)`` pairs: ``{(method, nwc): CAMOutput}``.

        ``cam`` comes from one forward pass, every gradient method from one shared forward and
        backward pass, Score-CAM from its own passes.

        Returns:
            ``{(method, nwc): CAMOutput}`` with float32 maps at feature resolution, ``exact`` True
            only for exact CAMs. Where NWC does not apply, ``(method, True)`` is the same output as
            ``(method, False)``.

        Raises:
            UsageError: an unknown method, ``require_exact`` with a method other than ``cam``, or a
                bad batch or class request.
            ModelError: the model has no spatial feature map, or its head needs a backward pass
                under ``torch.inference_mode()``.
        """
        requests = list(dict.fromkeys((check_method(m), bool(n)) for m, n in requests))
        if require_exact and any(m != "cam" for m, _ in requests):
            raise UsageError("require_exact applies to method 'cam' only: the other methods' maps are never exact CAMs")
        out: dict[tuple[str, bool], CAMOutput] = {}
        cam_nwcs = tuple(n for m, n in requests if m == "cam")
        if cam_nwcs:
            found = self.cam.variants(x, classes, topk, cam_nwcs, require_exact)
            out.update({("cam", n): found[n] for n in cam_nwcs})
        others = [(m, n) for m, n in requests if m != "cam"]
        if not others:
            return out
        x = self._checked(x)
        with eval_mode(self.model):
            spec = self._spec(x, others[0][0])
            if any(m in GRADIENT_METHODS for m, _ in others):
                logits, idx, acts, grads = self._gradients(x, spec, classes, topk)
                for m, n in others:
                    if m in GRADIENT_METHODS:
                        maps = (bagcams_map(acts, grads, logits.gather(1, idx)) if m == "bagcams"
                                else gradient_method_maps(m, acts, grads, n))
                        out[(m, n)] = CAMOutput(logits, idx, maps, None, False, spec)
            for own, compute in (("scorecam", self._scorecam), ("pc1", self._pc1)):
                if any(m == own for m, _ in others):
                    computed = compute(x, spec, classes, topk)
                    out.update({(m, n): computed for m, n in others if m == own})
        return out

    # -- internals ----------------------------------------------------------------------------------------
    def _checked(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise UsageError(f"expected a B x C x H x W batch, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise UsageError(f"the batch is {x.dtype}, not float: give preprocessed network input")
        dtype = model_dtype(self.model)
        return x.to(dtype) if dtype is not None and x.dtype != dtype else x

    def _spec(self, x: torch.Tensor, method: str) -> HeadSpec:
        """The head analysis for inputs of ``x``'s size (made once per size, by :meth:`CAMExtractor.analyze`)."""
        size = (int(x.shape[2]), int(x.shape[3]))
        if size not in self._specs:
            wanted = self.cam.input_size
            if wanted is not None and min(size) < min(wanted):  # analyse what real pictures give, as the CAM does
                generator = torch.Generator().manual_seed(0)
                probe = torch.randn((1, x.shape[1], *wanted), generator=generator).to(device=x.device, dtype=x.dtype)
            else:
                probe = x[:2]
            try:
                self._specs[size] = self.cam.analyze(probe)
            except ModelError as exc:
                raise ModelError(f"method {method!r} needs the spatial feature map the CAM uses: {exc}") from exc
        return self._specs[size]

    def _layer(self, spec: HeadSpec) -> nn.Module:
        for name, module in self.model.named_modules():
            if name == spec.feature_layer:
                return module
        raise ModelError(f"the model no longer has the feature layer {spec.feature_layer!r}")

    def _gradients(self, x: torch.Tensor, spec: HeadSpec, classes: ClassSpec, topk: int | None) -> HeadGradients:
        """The activations and each class's gradient (:func:`~camloc.cam.gradients.head_gradients`)."""
        return head_gradients(
            self.model, self._layer(spec), spec, x, lambda logits: resolve_classes(logits, classes, topk), refusal=(
                "gradient methods need a backward pass through the head, which torch.inference_mode() forbids: call "
                "camloc outside inference_mode (no_grad is fine), or use method 'cam' or 'scorecam'"))

    def _pc1(self, x: torch.Tensor, spec: HeadSpec, classes: ClassSpec, topk: int | None) -> CAMOutput:
        """PC1 (:mod:`camloc.cam.pc1`) signed by each class's map.

        The class map comes from the exact head's one forward pass, else from the head's gradient pass (its summed
        weights, as the CAM of such a head).
        """
        got = capture(self.model, x, spec) if spec.exact else None
        if got is not None:
            idx = resolve_classes(got.logits.detach(), classes, topk)
            norm = got.modules[spec.norm] if spec.norm else None
            reference, _ = heads.exact_maps(spec, got.feats, got.modules[spec.classifier], norm, idx, False,
                                            tuple(x.shape[-2:]))
            logits, acts = got.logits.detach().float(), feature_grid(spec, got.feats, x.shape[2:], "output")
        else:
            logits, idx, acts, grads = self._gradients(x, spec, classes, topk)
            reference = heads.gradient_maps(grads.sum(dim=(3, 4)), acts, nwc=False)
        return CAMOutput(logits, idx, pc1_maps(acts, reference), None, False, spec)

    def _scorecam(self, x: torch.Tensor, spec: HeadSpec, classes: ClassSpec, topk: int | None) -> CAMOutput:
        captured: dict[str, torch.Tensor] = {}

        def keep(_m, _args, out):
            captured["feats"] = out

        no_grad = contextlib.nullcontext() if torch.is_inference_mode_enabled() else torch.no_grad()
        with no_grad, forward_hooks([(self._layer(spec), keep)]):
            logits = as_logits(self.model(x))
        if "feats" not in captured:
            raise ModelError(f"the feature layer {spec.feature_layer!r} did not run in the forward pass")
        acts = feature_grid(spec, captured["feats"], x.shape[2:], "output")
        if acts.shape[2] * acts.shape[3] < 2:
            raise ModelError(
                f"scorecam masks the input with each channel of the feature map, and {spec.feature_layer!r} has a "
                f"single location ({acts.shape[2]}x{acts.shape[3]}) here: give larger input or another method"
            )
        idx = resolve_classes(logits.detach(), classes, topk)
        with no_grad:
            scores = scorecam_scores(self.model, x, acts, idx, self.score_batch, self.progress)
        maps = weighted_map(scores.softmax(dim=2), acts, nwc=False)
        return CAMOutput(logits.detach().float(), idx, maps, None, False, spec)
