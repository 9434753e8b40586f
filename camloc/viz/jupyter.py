"""How a figure of :func:`camloc.show <camloc.viz.render.show>` shows in Jupyter: once, whichever way a cell uses it.

Jupyter's inline backend shows every pyplot figure made in a cell when the cell ends, and a figure
that is also the cell's value shows a second time; :func:`shown_figure_class` makes the Figure
class ``show`` draws on, which leaves pyplot once it has been shown. Nothing here imports
matplotlib or IPython until a figure is made or shown.
"""

from __future__ import annotations

import base64
import io
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: matplotlib backends that never show a figure by themselves.
_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}

_SHOWN: type | None = None


def shown_figure_class() -> type:
    """:class:`ShownFigure`, made on first use (so importing this module does not import matplotlib)."""
    global _SHOWN
    if _SHOWN is None:
        from matplotlib.figure import Figure

        class ShownFigure(Figure):
            """A pyplot figure from :func:`camloc.show <camloc.viz.render.show>` that Jupyter shows once.

            Jupyter's inline backend shows every pyplot figure made in a cell when the cell ends; a
            figure that is also the cell's value would show a second time. This one leaves pyplot
            once it has been shown (:func:`_display_once`).
            """

            def _ipython_display_(self) -> None:
                _display_once(self)

        ShownFigure.__module__, ShownFigure.__qualname__ = __name__, "ShownFigure"
        _SHOWN = ShownFigure
    return _SHOWN


def _display_once(fig: Figure) -> None:
    """IPython's display of a :func:`camloc.show <camloc.viz.render.show>` figure: its PNG, once.

    The inline backend shows every pyplot figure still open when a cell ends, through this same
    display; so a figure shown here (as the cell's value, or by ``display``) is closed in pyplot
    afterwards, and the end of the cell does not show it again. Where pyplot shows figures itself
    (a window or a widget, interactive), nothing is added.
    """
    import matplotlib

    plt = sys.modules.get("matplotlib.pyplot")
    manager = fig.canvas.manager
    in_pyplot = plt is not None and manager is not None and plt.fignum_exists(manager.num)
    backend = matplotlib.get_backend().lower() if in_pyplot else ""
    inline = "inline" in backend
    if in_pyplot and not inline and backend not in _NON_INTERACTIVE and matplotlib.is_interactive():
        return  # a window or a widget shows it
    from IPython.display import display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    display({"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": repr(fig)}, raw=True)
    if inline:
        plt.close(fig)


def __getattr__(name: str) -> Any:
    if name == "ShownFigure":  # made on first use; pickle finds it here
        return shown_figure_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
