"""torchrun's environment: this process's rank, joining the process group, the collective backend.

Shared by the batch runs (``camloc localize`` under torchrun) and by training (DDP); it imports
nothing of camloc, so the training loop can use it without loading the batch machinery.

Example:
    >>> from camloc.batch.torchrun import torchrun_env
    >>> torchrun_env()              # (rank, world_size, local_rank); (0, 1, 0) in a plain process
    (0, 1, 0)
"""

from __future__ import annotations

import torch


def torchrun_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as torchrun sets them; ``(0, 1, 0)`` in a plain process."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    rank = int(os.environ.get("RANK", "0"))
    return rank, world, int(os.environ.get("LOCAL_RANK", rank))


def join_process_group(device: str | torch.device | None = None
                       ) -> tuple[str | torch.device | None, bool]:
    """Under torchrun, join the default process group (unless joined already) and pick this rank's device.

    The device is the one asked for, else ``cuda:LOCAL_RANK`` where CUDA is present. Alone: nothing.

    Returns:
        ``(device, started)``: the device to use (None: the default) and whether this call started
        the group (its caller then destroys it).
    """
    _, world, local = torchrun_env()
    if world == 1:
        return device, False
    import torch.distributed as dist

    started = not dist.is_initialized()
    if started:
        dist.init_process_group(process_group_backend())
    if device is None and torch.cuda.is_available():
        device = f"cuda:{local}"
    return device, started


def process_group_backend() -> str:
    """The collective backend for this machine: NCCL where CUDA is present, gloo otherwise."""
    return "nccl" if torch.cuda.is_available() else "gloo"
