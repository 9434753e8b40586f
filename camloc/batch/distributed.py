"""Batch runs past one process: the torchrun context, and rank 0's merge of the ranks' journals.

Under ``torchrun`` each rank localizes every WORLD_SIZE-th input and writes its own journal
(``results.rankN.jsonl``); :func:`finish` adds up the failures of all ranks and rank 0 merges the
journals in input order into ``results.jsonl`` (then removes the shards).

Example:
    >>> from camloc.batch.distributed import Context
    >>> ctx = Context.from_env()            # rank 0 of 1 outside torchrun
    >>> ctx.world
    1
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..utils.atomic import atomic_write_text
from .pipeline import JOURNAL, in_order, journals
from .torchrun import join_process_group, process_group_backend, torchrun_env


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank, the world size, and the backend to use (None alone)."""

    rank: int = 0
    world: int = 1
    backend: str | None = None

    @classmethod
    def from_env(cls) -> Context:
        """Read torchrun's environment; gloo on CPU, NCCL where CUDA is present."""
        rank, world, _ = torchrun_env()
        return cls() if world == 1 else cls(rank, world, process_group_backend())

    def journal(self, out: Path) -> Path:
        """This rank's journal in an output folder."""
        return out / (JOURNAL if self.world == 1 else f"results.rank{self.rank}.jsonl")

    def setup(self, device: str | None) -> str | None:
        """Join the process group (several ranks only); returns the device this rank should use."""
        return join_process_group(device)[0]

    def finish(self, failed: int, out: Path | None, paths: list[str], show: Callable[[dict], None] | None) -> int:
        """Sum the failures over ranks and, on rank 0, merge the journals (each record passed to ``show``).

        Returns the total number of failures; a no-op for one process.
        """
        if self.world == 1:
            return failed
        import torch.distributed as dist

        counts = torch.tensor([failed])
        dist.all_reduce(counts)
        dist.barrier()
        if self.rank == 0 and out is not None:
            shards = journals(out)
            merged = list(in_order(paths, shards))
            atomic_write_text(out / JOURNAL, "".join(json.dumps(d) + "\n" for d in merged))
            for shard in shards[1:]:
                shard.unlink(missing_ok=True)
            for d in merged:
                if show is not None:
                    show(d)
        dist.barrier()
        dist.destroy_process_group()
        return int(counts.item())
