"""A Griffe extension for the camloc site (``extensions:`` of mkdocstrings in mkdocs.yml).

camloc's docstrings are Google style with two habits Griffe reads differently from Sphinx's
napoleon, so this extension rewrites them as each docstring is loaded, changing nothing else:

* ``Example:`` heads the doctest; napoleon reads it as the examples section, Griffe only
  ``Examples:`` (``Example:`` becomes an admonition whose ``>>>`` lines render as nested quotes and
  whose output as Markdown). The heading is renamed ``Examples:``.
* Sphinx roles (``:class:`Localization```, ``:func:`~camloc.api.boxes```) are not Markdown, and the
  colon in a ``Returns:`` line such as ``One :class:`Localization` per image`` makes Griffe read
  ``One`` as the returned value's name. A role becomes a plain code span (``~`` keeps the last
  component, as in Sphinx).

Example:
    >>> camloc_docstring("Sum.\\n\\nReturns:\\n    One :class:`~a.B`.\\n\\nExample:\\n    >>> 1 + 1\\n    2")
    'Sum.\\n\\nReturns:\\n    One `B`.\\n\\nExamples:\\n    >>> 1 + 1\\n    2'
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^Example:[ \t]*$", re.M)
_ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _role(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def camloc_docstring(text: str) -> str:
    """``text`` with ``Example:`` headings written ``Examples:`` and Sphinx roles as code spans."""
    return _ROLE.sub(_role, _EXAMPLE.sub("Examples:", text))


class CamlocDocstrings(griffe.Extension):
    """Read camloc's docstrings as napoleon does: ``Example:`` sections, Sphinx roles."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each object as it is created (before it is parsed)."""
        if obj.docstring is not None:
            obj.docstring.value = camloc_docstring(obj.docstring.value)
