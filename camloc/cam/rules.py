"""The threshold rule and the contour rule of the box pipeline, without torch (docs/protocols.md, "The box rule").

:class:`ThresholdRule` says how the localization threshold ``t`` of ``U > t`` is chosen for a
min-max scaled uint8 map ``U``: ``t = int(theta * percentile_i(U))`` (the percentile rule; ``i = 100``
is vanilla CAM's max, ``theta = 0.35, i = 90`` is PaS) or one of scikit-image's automatic rules.
:func:`contour_boxes` turns the foreground ``U > t`` into boxes: OpenCV contours (``RETR_TREE``,
``CHAIN_APPROX_SIMPLE``), the bounding rectangle ``[x, y, x + w, y + h]`` of the largest by
``contourArea``, the whole input ``[0, 0, W, H]`` when there is none. The batched steps on tensors
(upsampling, scaling, the thresholds themselves) are :mod:`camloc.cam.boxes`; scoring saved maps
needs only this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..utils.defaults import ADAPTIVE_RULES, STANDARDS
from ..utils.errors import UsageError

Box = tuple[int, int, int, int]


#: The rules a :class:`ThresholdRule` can follow: ``theta x percentile`` or one of scikit-image's
#: (:data:`ADAPTIVE_RULES`). :func:`make_standard` accepts :data:`STANDARDS` (``max`` is the
#: percentile rule at ``i = 100``); both lists live in :mod:`camloc.utils.defaults`, which the command line reads
#: without torch.
RULES: tuple[str, ...] = ("percentile",) + ADAPTIVE_RULES


def quoted_names(names: tuple[str, ...]) -> str:
    """The names as a message lists them: ``'a', 'b'``."""
    return ", ".join(repr(n) for n in names)


@dataclass(frozen=True)
class ThresholdRule:
    """The localization threshold ``t`` of ``U > t``: ``theta * percentile_i(U)`` or an automatic rule.

    ``rule="percentile"`` (the default) is the paper's family: ``t = int(theta * percentile_i(U))``;
    ``otsu``, ``li``, ``triangle`` and ``yen`` take ``t`` from each map's histogram alone, exactly as
    ``skimage.filters.threshold_<rule>(U)`` does (see :func:`adaptive_thresholds` for the formulas).
    ``theta`` and ``percentile`` belong to the percentile rule only: they default to 0.35 and 90
    there and stay ``None`` for the automatic rules, so ``repr`` and ``dataclasses.asdict`` record
    exactly what was used.

    Attributes:
        theta: the multiplier (theta_loc) of the percentile rule.
        percentile: ``i`` of the percentile rule; 100 is the max (vanilla CAM), 90 is the paper's PaS.
        rule: ``percentile``, ``otsu``, ``li``, ``triangle`` or ``yen``.

    Example:
        >>> ThresholdRule.pas()            # the paper's default: 0.35 x 90th percentile
        ThresholdRule(theta=0.35, percentile=90.0, rule='percentile')
        >>> ThresholdRule.max(0.2)         # vanilla CAM
        ThresholdRule(theta=0.2, percentile=100.0, rule='percentile')
        >>> ThresholdRule.adaptive("otsu")  # Otsu's threshold of each map
        ThresholdRule(theta=None, percentile=None, rule='otsu')
    """

    theta: float | None = None
    percentile: float | None = None
    rule: str = "percentile"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {quoted_names(RULES)}, not {self.rule!r}")
        if self.rule != "percentile":
            if self.theta is not None or self.percentile is not None:
                raise ValueError(f"theta and percentile apply only to the 'percentile' rule, not to {self.rule!r}")
            return
        if self.theta is None:
            object.__setattr__(self, "theta", 0.35)
        if self.percentile is None:
            object.__setattr__(self, "percentile", 90.0)
        if not 0.0 <= self.theta <= 1.0:
            raise ValueError(f"theta must be in [0, 1], not {self.theta}")
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], not {self.percentile}")

    @classmethod
    def pas(cls, theta: float = 0.35, percentile: float = 90.0) -> ThresholdRule:
        """PaS: ``theta`` x the ``percentile``-th percentile (0.35 x p90 in the paper)."""
        return cls(theta, percentile)

    @classmethod
    def max(cls, theta: float = 0.2) -> ThresholdRule:
        """Vanilla CAM's ``theta`` x max."""
        return cls(theta, 100.0)

    @classmethod
    def adaptive(cls, rule: str) -> ThresholdRule:
        """An automatic rule by name: ``otsu``, ``li``, ``triangle`` or ``yen``.

        Example:
            >>> ThresholdRule.adaptive("li").rule
            'li'
        """
        if rule not in ADAPTIVE_RULES:
            raise ValueError(f"an adaptive rule must be one of {quoted_names(ADAPTIVE_RULES)}, not {rule!r}")
        return cls(rule=rule)

    @property
    def label(self) -> str:
        """The rule in a few words, as results record it: ``0.35 x p90``, ``0.2 x max`` or ``otsu``.

        Example:
            >>> ThresholdRule.pas().label, ThresholdRule.max().label, ThresholdRule.adaptive("yen").label
            ('0.35 x p90', '0.2 x max', 'yen')
        """
        if self.rule != "percentile":
            return self.rule
        return f"{self.theta:g} x " + ("max" if self.percentile >= 100.0 else f"p{self.percentile:g}")

    @property
    def name(self) -> str:
        """The :func:`make_standard` name that gives this rule: ``percentile``, ``max``, ``otsu``, ..."""
        if self.rule == "percentile":
            return "max" if self.percentile >= 100.0 else "percentile"
        return self.rule


def make_standard(standard: str = "percentile", theta: float | None = None, percentile: float = 90.0) -> ThresholdRule:
    """The threshold rule by name.

    * ``percentile``: PaS, ``int(theta * percentile_i(U))`` (theta 0.35, ``i = 90`` by default);
    * ``max``: vanilla CAM, ``int(theta * max(U))`` (theta 0.2 by default);
    * ``otsu``: Otsu (1979), the level that maximises the between-class variance
      ``w0(t) w1(t) (mu0(t) - mu1(t))^2``;
    * ``li``: Li & Lee (1993) minimum cross entropy, by Li & Tam's (1998) iteration
      ``t <- (mu_b - mu_f) / (ln mu_b - ln mu_f)`` from the mean;
    * ``triangle``: Zack et al. (1977), the level farthest from the line joining the histogram's
      peak to the end of its longer tail;
    * ``yen``: Yen et al. (1995) maximum correlation,
      ``ln[(P(t) (1 - P(t)))^2 / (sum_{<=t} p^2 * sum_{>t} p^2)]``.

    The automatic rules are scikit-image's ``threshold_<name>`` on the uint8 map (see
    :func:`adaptive_thresholds`); they ignore ``percentile`` and refuse ``theta``.

    Raises:
        UsageError: an unknown name, or ``theta`` with an automatic rule (one line each).

    Example:
        >>> make_standard("max")
        ThresholdRule(theta=0.2, percentile=100.0, rule='percentile')
        >>> make_standard("otsu")
        ThresholdRule(theta=None, percentile=None, rule='otsu')
    """
    if standard == "percentile":
        return ThresholdRule(0.35 if theta is None else theta, percentile)
    if standard == "max":
        return ThresholdRule(0.2 if theta is None else theta, 100.0)
    if standard in ADAPTIVE_RULES:
        if theta is not None:
            raise UsageError(
                f"theta applies only to the 'percentile' and 'max' standards; {standard!r} sets its own threshold")
        return ThresholdRule.adaptive(standard)
    raise UsageError(f"standard must be one of {quoted_names(STANDARDS)}, not {standard!r}")


def unit_range(maps: np.ndarray) -> np.ndarray:
    """Min-max scale each map of ``... x H x W`` to [0, 1] in float64, as step 2 does; a constant map becomes zeros.

    The NumPy form of :func:`camloc.cam.boxes.minmax`, for maps outside torch (a tensor is read as an array).

    Example:
        >>> unit_range(np.array([[2.0, 4.0], [6.0, 10.0]])).tolist(), unit_range(np.ones((2, 2))).tolist()
        ([[0.0, 0.25], [0.5, 1.0]], [[0.0, 0.0], [0.0, 0.0]])
    """
    maps = np.asarray(maps, dtype=np.float64)
    lo = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - lo
    return np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1.0), 0.0)


def contour_boxes(mask: np.ndarray, all_regions: bool = False) -> tuple[Box, list[Box]]:
    """Boxes of a binary H x W mask: the largest contour's, and (optionally) every region's.

    The main box follows the authors' code (``RETR_TREE``, largest ``contourArea``, whole image when
    there is no contour). With ``all_regions`` the second value lists the bounding box of every
    outer contour (``RETR_EXTERNAL``: one per connected region), largest area first; otherwise it
    holds the main box alone.
    """
    h, w = mask.shape
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        whole: Box = (0, 0, w, h)
        return whole, [whole]
    areas = [cv2.contourArea(c) for c in contours]
    main = _rect(contours[int(np.argmax(areas))])
    if not all_regions:
        return main, [main]
    outer, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    order = sorted(range(len(outer)), key=lambda i: -cv2.contourArea(outer[i]))
    return main, [_rect(outer[i]) for i in order]


def _rect(contour: np.ndarray) -> Box:
    x, y, w, h = cv2.boundingRect(contour)
    return (int(x), int(y), int(x + w), int(y + h))
