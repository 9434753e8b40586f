"""The map methods by name, and which of them NWC acts on; nothing here loads torch.

The command line builds its ``--method`` choices from :data:`METHODS` and the evaluation checks a
protocol's methods with :func:`check_method`, both without importing the methods themselves
(:mod:`camloc.cam.methods`).

Example:
    >>> METHODS[0] == DEFAULT_METHOD, nwc_applies("layercam"), effective_nwc("gradcam", True)
    (True, False, True)
"""

from __future__ import annotations

from ..utils.errors import UsageError

#: Every method by name, the default first.
METHODS: tuple[str, ...] = ("cam", "gradcam", "gradcam++", "xgradcam", "layercam", "scorecam", "pc1", "bagcams")
DEFAULT_METHOD = "cam"
#: Other names a method answers to: ``eigencam`` is pytorch-grad-cam's name for PC1.
ALIASES: dict[str, str] = {"eigencam": "pc1"}
#: What ``--method`` accepts: every method and every alias.
METHOD_NAMES: tuple[str, ...] = METHODS + tuple(ALIASES)
#: Methods computed from one forward and one backward pass (activations and gradients).
GRADIENT_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "xgradcam", "layercam", "bagcams")
#: Methods with signed channel weights, which NWC clamps at 0.
NWC_METHODS: tuple[str, ...] = ("cam", "gradcam", "gradcam++", "xgradcam")


def check_method(method: str) -> str:
    """The method's name (an alias's method: ``eigencam`` is ``pc1``), or a :class:`UsageError` listing the names.

    Example:
        >>> check_method("gradcam++"), check_method("eigencam")
        ('gradcam++', 'pc1')
    """
    method = ALIASES.get(method, method)
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}: choose from {', '.join(METHOD_NAMES)}")
    return method


def nwc_applies(method: str) -> bool:
    """Whether NWC changes anything for ``method`` (it has signed channel weights to clamp).

    Example:
        >>> nwc_applies("gradcam"), nwc_applies("layercam")
        (True, False)
    """
    return check_method(method) in NWC_METHODS


def effective_nwc(method: str, nwc: bool) -> bool:
    """NWC as it acts on ``method``: ``nwc`` where it applies, else False."""
    return bool(nwc) and nwc_applies(method)
