"""The two evaluation protocols of docs/protocols.md, by name, and the settings that make a number.

* ``rethinking`` (the paper's tables): resize 256 x 256, center crop 224; ground-truth boxes mapped
  into the crop by ``max(int(v * 256 / W - 16), 0)`` and ``min(int(v * 256 / W - 16), 223)``; one
  fixed threshold (theta 0.2 x max for ``cam`` / ``nwc``, 0.35 x 90th percentile for the PaS
  variants); box as in :mod:`camloc.cam.boxes`; inclusive IoU. Reports Top-1 / Top-5 Cls,
  GT-known Loc and Top-1 Loc.
* ``wsolevaluation`` (Choe et al.): resize to 224 x 224; score map = min-max normalised bicubic
  CAM (float64); boxes at ``t = int(tau * max(U))`` for ``tau`` in ``arange(0, 1, interval)``
  (PaS variants: ``tau * percentile_90(U)``, camloc's extension); ground truth ``int(v * 224 / W)``.
  Reports MaxBoxAcc (delta 50, largest contour), MaxBoxAccV2 (mean over 30/50/70, all contours)
  and, with masks, PxAP.

Variants (:data:`VARIANTS`): ``cam`` (neither fix), ``nwc``, ``pas``, ``nwc+pas``, the automatic
threshold rules of :func:`camloc.cam.boxes.make_standard` with and without NWC (``otsu``,
``nwc+otsu``, ``li``, ``nwc+li``, ``triangle``, ``nwc+triangle``, ``yen``, ``nwc+yen``), and
``calibrated`` (from a calibration file). An automatic rule sets each map's threshold itself, with
no theta: under the rethinking protocol its box is drawn at that threshold; under wsolevaluation
its threshold does not move with tau, so its MaxBoxAcc and MaxBoxAccV2 are the box accuracies at
the rule's own threshold of each map (one operating point, no search over tau; the curves are
flat), while PxAP, which never thresholds, is that of the row's maps. The two protocols are never
mixed: a result names its protocol and settings.

Methods (``Settings.methods``, :data:`camloc.cam.methods.METHODS`): each variant is scored for each
method's maps. A result's rows (:meth:`Settings.rows`) are named by the variant alone for ``cam``
(the paper's CAM: ``cam``, ``nwc``, ``pas``, ``nwc+pas``) and ``METHOD/VARIANT`` for the others
(``gradcam/cam`` is Grad-CAM with neither fix, ``gradcam/nwc+pas`` with both). Variants with NWC are
left out for methods NWC does not apply to (``layercam``, ``scorecam``: nothing to clamp). The
``calibrated`` row uses the method the calibration was made with.

Metrics of the wsolevaluation protocol (:data:`METRICS`, ``Settings.metrics``), each computed only
when asked for and where the split has what it needs: ``maxboxacc_v2`` (boxes) and ``pxap`` (masks)
are what wsolevaluation reports and what the command line computes by default
(:data:`camloc.utils.defaults.REPORTED_METRICS`); ``maxboxacc`` (V1) is slower, as OpenCV's contour areas decide its
largest contour wherever a map has several regions. ``Settings()`` asks for all three.

Box conventions (:data:`BOX_CONVENTIONS`, ``Settings.box_convention``; docs/protocols.md, "Box conventions on CUB"): a
number on CUB depends on where a ground-truth box ends. ``wsolevaluation`` (the default) uses the
boxes as the metadata stores them, ``x1 = x + w`` and ``y1 = y + h`` from CUB's
``bounding_boxes.txt`` (x, y, w, h); ``authors-cub`` uses ``x1 = x + w - 1`` and ``y1 = y + h - 1``
(the stored ``x1``, ``y1`` less one pixel) before the protocol's scaling, as the paper's authors'
CUB loader reads ``bounding_boxes.txt`` (won-bae/rethinkingCAM, ``src/core/datasets.py``,
``CUB200._load_data``; their ImageNet loader uses its boxes as stored). Every result records the
convention its numbers use: reproducing the paper's CUB numbers (Tables 2 and 3, made with the
authors' code) takes ``authors-cub``; wsolevaluation's published numbers and camloc's defaults use
``wsolevaluation``. The choice moves CUB GT-known Loc under the rethinking protocol by 0.4 to 1.6
points (docs/protocols.md, "Box conventions on CUB").

Example:
    >>> Settings("wsolevaluation", ("cam", "nwc+pas")).sweep_percentile("nwc+pas")
    90.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..cam.names import DEFAULT_METHOD, check_method, effective_nwc, nwc_applies
from ..cam.rules import ThresholdRule
from ..data.metadata import Sample
from ..utils.defaults import ADAPTIVE_RULES, BOX_METRICS, SIZE
from ..utils.errors import ImageError, UsageError

#: The paper's four variants: NWC off / on, threshold against the max (vanilla CAM) or the 90th percentile (PaS).
PAPER_VARIANTS = ("cam", "nwc", "pas", "nwc+pas")
#: Every variant by name: ``(NWC, standard)``, the standard a :func:`camloc.cam.boxes.make_standard` name.
VARIANTS: dict[str, tuple[bool, str]] = {
    "cam": (False, "max"), "nwc": (True, "max"), "pas": (False, "percentile"), "nwc+pas": (True, "percentile"),
    **{name: flags for rule in ADAPTIVE_RULES
       for name, flags in ((rule, (False, rule)), (f"nwc+{rule}", (True, rule)))},
}
PROTOCOLS = ("rethinking", "wsolevaluation")
CAM_CLASSES = ("gt", "top1")
#: The wsolevaluation protocol's metrics by name: MaxBoxAcc (V1), MaxBoxAccV2, PxAP.
METRICS = BOX_METRICS
#: Where a ground-truth box ends: as stored (``x1 = x + w``), or one pixel in (``x1 = x + w - 1``, the authors' CUB).
BOX_CONVENTIONS = ("wsolevaluation", "authors-cub")


@dataclass(frozen=True)
class MethodVariant:
    """One row of a result: a variant (thresholds, NWC) of one method's maps.

    Attributes:
        name: the row's key in ``EvaluationResult.metrics`` (see :meth:`Settings.rows`).
        method: the method whose maps it scores.
        variant: one of :data:`VARIANTS` or ``calibrated``.
        nwc: NWC as it acts on the method's maps (False where it does not apply).
    """

    name: str
    method: str
    variant: str
    nwc: bool


def row_name(method: str, variant: str) -> str:
    """``variant`` for the paper's CAM, ``method/variant`` for the other methods (``calibrated`` stays itself).

    Example:
        >>> row_name("cam", "nwc+pas"), row_name("gradcam", "pas")
        ('nwc+pas', 'gradcam/pas')
    """
    return variant if method == DEFAULT_METHOD or variant == "calibrated" else f"{method}/{variant}"


@dataclass(frozen=True)
class Settings:
    """Everything that makes a number: recorded in every result."""

    protocol: str = "rethinking"
    variants: tuple[str, ...] = PAPER_VARIANTS
    cam_class: str = "gt"
    theta_max: float = 0.2
    theta_pas: float = 0.35
    percentile: float = 90.0
    interval: float = 0.001
    deltas_v2: tuple[int, ...] = (30, 50, 70)
    calibration: dict | None = None
    metrics: tuple[str, ...] = METRICS
    box_convention: str = "wsolevaluation"
    methods: tuple[str, ...] = (DEFAULT_METHOD,)

    def __post_init__(self) -> None:
        if "calibrated" in self.variants and self.calibration is None:
            raise UsageError("the calibrated variant needs a calibration file (--calibration)")
        if self.protocol not in PROTOCOLS:
            raise UsageError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}")
        unknown = [v for v in self.variants if v not in VARIANTS and v != "calibrated"]
        if unknown or not self.variants:
            raise UsageError(f"unknown variant {unknown[0] if unknown else '(none)'}: "
                             f"choose from {', '.join(VARIANTS)}")
        check_cam_class(self.cam_class)
        if not 0 < self.interval < 1:
            raise UsageError("interval must be in (0, 1)")
        check_metrics(self.metrics)
        check_box_convention(self.box_convention)
        methods = (self.methods,) if isinstance(self.methods, str) else tuple(self.methods)
        # each by its method's name (an alias, eigencam, is pc1), once
        object.__setattr__(self, "methods", tuple(dict.fromkeys(check_method(m) for m in methods)))
        if not self.methods:
            raise UsageError("give at least one method")
        if not self.rows():
            raise UsageError(f"NWC does not apply to {', '.join(self.methods)} (their channel weights are never "
                             f"negative), so the variants {', '.join(self.variants)} leave nothing to score: "
                             "add cam or pas to the variants")

    def calibration_method(self) -> str:
        """The method the calibration was made with (``cam`` for files that name none)."""
        return check_method((self.calibration or {}).get("method") or DEFAULT_METHOD)

    def rows(self) -> list[MethodVariant]:
        """The result's rows: every variant of every method, then ``calibrated``.

        NWC variants come only where NWC applies; ``calibrated`` comes with the calibration's method.

        Example:
            >>> [r.name for r in Settings(variants=("cam", "nwc"), methods=("cam", "layercam")).rows()]
            ['cam', 'nwc', 'layercam/cam']
        """
        out = []
        for method in dict.fromkeys(self.methods):
            for variant in self.variants:
                if variant == "calibrated" or (VARIANTS[variant][0] and not nwc_applies(method)):
                    continue
                out.append(MethodVariant(row_name(method, variant), method, variant, VARIANTS[variant][0]))
        if "calibrated" in self.variants:
            method = self.calibration_method()
            out.append(MethodVariant("calibrated", method, "calibrated", effective_nwc(method, self.nwc("calibrated"))))
        return out

    def skipped(self) -> list[str]:
        """``method/variant`` of each NWC variant left out because NWC does not apply to the method."""
        return [row_name(m, v) if m != DEFAULT_METHOD else v for m in dict.fromkeys(self.methods)
                for v in self.variants if v != "calibrated" and VARIANTS[v][0] and not nwc_applies(m)]

    def nwc(self, variant: str) -> bool:
        """Whether the variant clamps negative weights (the calibration's choice for ``calibrated``)."""
        return bool(self.calibration["nwc"]) if variant == "calibrated" else VARIANTS[variant][0]

    def standard(self, variant: str) -> ThresholdRule:
        """The fixed threshold of a variant under the rethinking protocol.

        Example:
            >>> Settings().standard("nwc+pas"), Settings().standard("otsu")
            (ThresholdRule(theta=0.35, percentile=90.0, rule='percentile'),
             ThresholdRule(theta=None, percentile=None, rule='otsu'))
        """
        if variant == "calibrated":
            rule = self.calibration.get("rule") or "percentile"
            if rule != "percentile":
                return ThresholdRule.adaptive(rule)
            return ThresholdRule(self.calibration["theta"], self.calibration["percentile"])
        name = VARIANTS[variant][1]
        if name == "percentile":
            return ThresholdRule(self.theta_pas, self.percentile)
        return ThresholdRule(self.theta_max, 100.0) if name == "max" else ThresholdRule.adaptive(name)

    def sweep_percentile(self, variant: str) -> float:
        """The standard the wsolevaluation sweep multiplies tau by: the max (100) or a percentile.

        It is 100 for an automatic rule, whose threshold :meth:`rule` sets instead.
        """
        standard = self.standard(variant)
        return 100.0 if standard.rule != "percentile" else float(standard.percentile)

    def rule(self, variant: str) -> str:
        """``percentile`` where the sweep moves the threshold with tau, else the automatic rule's name.

        An automatic rule sets its threshold of each map, the same at every tau.
        """
        return self.standard(variant).rule


def check_cam_class(cam_class: str) -> None:
    """``gt`` (map the ground-truth class) or ``top1`` (the prediction)."""
    if cam_class not in CAM_CLASSES:
        raise UsageError(f"cam_class must be 'gt' or 'top1', not {cam_class!r}")


def check_metrics(metrics: tuple[str, ...]) -> None:
    """Names from :data:`METRICS`, at least one."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise UsageError(f"unknown metric {unknown[0] if unknown else '(none)'}: choose from {', '.join(METRICS)}")


def check_box_convention(convention: str) -> None:
    """``wsolevaluation`` or ``authors-cub`` (see the module docs)."""
    if convention not in BOX_CONVENTIONS:
        raise UsageError(f"unknown box convention {convention!r}: choose from {', '.join(BOX_CONVENTIONS)}")


def gt_boxes(sample: Sample, protocol: str, convention: str = "wsolevaluation") -> np.ndarray:
    """Ground-truth boxes on the 224 x 224 input, by the protocol's own integer rules.

    ``convention="authors-cub"`` moves ``x1`` and ``y1`` one pixel in first (``x + w - 1``, the
    authors' CUB loader); see the module docs.

    Raises:
        UsageError: the sample's size is unknown (an empty ``image_sizes.txt`` and no image read).
    """
    check_box_convention(convention)
    w, h = sample.width, sample.height
    if w is None or h is None:
        raise UsageError(f"{sample.image_id}: image size unknown (image_sizes.txt is empty); "
                         "read it from the image first")
    inset = 1 if convention == "authors-cub" else 0
    out = []
    for x0, y0, x1, y1 in sample.boxes:
        x1, y1 = x1 - inset, y1 - inset
        if protocol == "rethinking":
            out.append((max(int(x0 * 256 / w - 16), 0), max(int(y0 * 256 / h - 16), 0),
                        min(int(x1 * 256 / w - 16), SIZE - 1), min(int(y1 * 256 / h - 16), SIZE - 1)))
        else:
            out.append((int(x0 * SIZE / w), int(y0 * SIZE / h), int(x1 * SIZE / w), int(y1 * SIZE / h)))
    return np.asarray(out, np.int64).reshape(-1, 4)


def load_masks(sample: Sample, root: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Union of the instance masks and the ignore mask, nearest-resized to 224 x 224, value > 0.5.

    Raises:
        ImageError: a mask file is missing or cannot be read.
    """

    def read(rel: str) -> np.ndarray:
        path = root / rel
        try:
            found = path.is_file()
        except OSError:  # a name too long for the file system, a loop of links: no such file either
            found = False
        if not found:
            raise ImageError(path, "mask file not found; check --masks ROOT")
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("L"), dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - PIL raises many types on broken data
            raise ImageError(path, f"mask cannot be read ({type(exc).__name__}: {exc}); "
                                   "re-encode or replace it") from exc
        return cv2.resize(arr, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST) > 0.5

    fg = np.zeros((SIZE, SIZE), bool)
    for rel in sample.masks:
        fg |= read(rel)
    ignore = None
    for rel in sample.ignore:
        ignore = read(rel) if ignore is None else ignore | read(rel)
    return fg, ignore
