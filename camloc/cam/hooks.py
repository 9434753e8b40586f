"""Hooks that leave no trace: eval mode for a block, forward hooks for a block, one traced forward pass.

Every hook camloc attaches goes through :func:`forward_hooks`, which removes it in ``finally``;
every temporary eval mode goes through :func:`eval_mode`, which restores each module's own flag.

Example:
    >>> import timm, torch
    >>> from camloc.cam.hooks import eval_mode, forward_hooks, trace
    >>> model, x, kept = timm.create_model("resnet18"), torch.randn(1, 3, 224, 224), []
    >>> keep = lambda module, inputs, output: kept.append(tuple(output.shape))
    >>> with eval_mode(model), forward_hooks([(model.layer4, keep)]):
    ...     logits = model(x)
    >>> kept, model.training             # the hook ran once and is gone; the training flag is back
    ([(1, 512, 7, 7)], True)
    >>> run = trace(model, x)            # every module's input and output, in completion order
    >>> [r.name for r in run.records][:2]
    ['conv1', 'bn1']
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every module in eval mode and restore each one's own training flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    if not any(flag for _, flag in flags):  # already in eval mode: nothing to change or restore
        yield
        return
    try:
        model.eval()
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def forward_hooks(pairs: Sequence[tuple[nn.Module, Callable]]) -> Iterator[None]:
    """Attach forward hooks for the duration of a block; they are removed even on error."""
    handles = []
    try:
        for module, fn in pairs:
            handles.append(module.register_forward_hook(fn))
        yield
    finally:
        for h in handles:
            h.remove()


class Record(NamedTuple):
    """One module call of a traced forward pass."""

    name: str
    module: nn.Module
    input: Any
    output: Any


@dataclass
class Trace:
    """The result of :func:`trace`.

    Attributes:
        records: one per module call, in completion order (a module called twice appears twice).
        output: what the model returned.
        snapshot_index: index in ``records`` of the latest output the ``snapshot`` predicate chose.
        snapshot: a copy of that output taken when it was produced (later in-place ops of the
            model cannot change it), or None.
    """

    records: list[Record]
    output: Any
    snapshot_index: int | None = None
    snapshot: torch.Tensor | None = None

    def last_index(self, name: str) -> int | None:
        """Position of the latest call of the module ``name``, or None."""
        found = [i for i, r in enumerate(self.records) if r.name == name]
        return found[-1] if found else None


def trace(
    model: nn.Module,
    x: torch.Tensor,
    snapshot: Callable[[str, nn.Module, Any], bool] | None = None,
) -> Trace:
    """One forward pass in eval mode without gradients, with a hook on every named submodule.

    Args:
        model: the network (its training flags and hooks are as before afterwards).
        x: its input.
        snapshot: ``(name, module, output) -> bool``; the latest output it accepts is copied as
            it is produced.
    """
    run = Trace([], None)

    def recorder(name: str) -> Callable:
        def hook(module, args, out):
            run.records.append(Record(name, module, args[0] if args else None, out))
            if snapshot is not None and snapshot(name, module, out):
                run.snapshot_index, run.snapshot = len(run.records) - 1, out.detach().clone()

        return hook

    pairs = [(m, recorder(n)) for n, m in model.named_modules() if n]
    with eval_mode(model), torch.no_grad(), forward_hooks(pairs):
        run.output = model(x)
    return run
