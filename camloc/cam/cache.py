"""Head analyses kept for later batches: :class:`HeadCache`, read and filled by the extractor.

An analysis (:func:`camloc.cam.analysis.analyze`), which
:class:`~camloc.cam.extractor.CAMExtractor` makes on a model's first batch, costs a forward pass
with a hook on every module; a cache keeps it, per model and requested layers, so that later
batches of that model need only the two hooks of the extraction. It is keyed by weak references to
the models: a cache never keeps a model alive, and a model's analyses go with it.

An analysis remembers the shorter side of the input it was made on, ``s`` pixels, and serves inputs
up to ``s`` on their shorter side; a larger input is analysed again, because on a small input the
real feature map may be a single location and the search then settles on an earlier layer.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from torch import nn

from .heads import HeadSpec

#: What an analysis was asked for: ``(feature_layer, classifier)``, each a module name or None (found).
Layers = tuple[str | None, str | None]


@dataclass(frozen=True)
class _Analysis:
    """A head analysis and the shorter side, in pixels, of the input it was made on."""

    spec: HeadSpec
    side: int


class HeadCache:
    """Head analyses by model and requested layers, each made once and kept while its model lives.

    Lifetime: an entry lasts as long as both this cache and its model. The models are held by weak
    references, so the cache never keeps one alive: when a model is garbage collected, its analyses
    are dropped with it. A :class:`~camloc.cam.extractor.CAMExtractor` owns a cache of its own unless
    it is given one; extractors given the same cache analyse each model once between them.

    Example:
        >>> cache = HeadCache()
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> cache.store(model, (None, None), HeadSpec("0", "3", "avg"), side=32)
        >>> cache.serving(model, (None, None), side=24).pool, cache.serving(model, (None, None), side=64)
        ('avg', None)
        >>> del model
        >>> len(cache)
        0
    """

    def __init__(self) -> None:
        self._models: weakref.WeakKeyDictionary[nn.Module, dict[Layers, _Analysis]] = weakref.WeakKeyDictionary()

    def __len__(self) -> int:
        """How many models (still alive) have an analysis here."""
        return len(self._models)

    def lookup(self, model: nn.Module, layers: Layers) -> HeadSpec | None:
        """The latest analysis of ``model`` for ``layers``, None if there is none."""
        found = self._models.get(model, {}).get(layers)
        return found.spec if found is not None else None

    def serving(self, model: nn.Module, layers: Layers, side: int) -> HeadSpec | None:
        """The analysis of ``model`` for ``layers`` if it serves an input of shorter side ``side`` px, else None.

        It serves when ``side <= s``, ``s`` the shorter side of the input it was made on.
        """
        found = self._models.get(model, {}).get(layers)
        if found is not None and side <= found.side:
            return found.spec
        return None

    def store(self, model: nn.Module, layers: Layers, spec: HeadSpec, side: int) -> None:
        """Keep ``spec``, made on an input of shorter side ``side`` px, as ``model``'s analysis for ``layers``."""
        self._models.setdefault(model, {})[layers] = _Analysis(spec, side)


#: The process-wide cache of :class:`camloc.Localizer` (``Localizer.heads``) and :func:`camloc.faithfulness`, so
#: that a model's head is analysed once however many of them use it; a model's analyses live until the model is
#: garbage collected.
PROCESS_HEADS = HeadCache()
