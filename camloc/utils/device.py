"""Where tensors and models live: the one place camloc decides on a device.

Example:
    >>> import torch
    >>> from camloc.utils.device import default_device, device_of
    >>> default_device()            # 'cuda' where a GPU is present, else 'cpu'
    device(type='...')
    >>> device_of(torch.nn.Linear(2, 2))
    device(type='cpu')
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import UsageError


def default_device(device: str | torch.device | None = None) -> torch.device:
    """The device asked for, checked to exist here; else ``cuda`` where a GPU is present, else ``cpu``.

    Raises:
        UsageError: one line for a device name torch does not know, or a device this machine lacks
            (``cuda`` without a visible GPU, ``cuda:3`` on a two-GPU machine, ``mps`` off Apple silicon).

    Example:
        >>> default_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"unknown device {str(device)!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"device {str(device)!r}: no CUDA GPU is visible on this machine; use cpu "
                             "(or leave the device out: camloc picks cuda where there is one)")
        if dev.index is not None and dev.index >= count:
            raise UsageError(f"device {str(device)!r}: this machine has {count} CUDA GPU(s), cuda:0 to "
                             f"cuda:{count - 1}")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UsageError(f"device {str(device)!r}: Apple's MPS is not available here; use cpu")
    elif dev.type not in ("cpu", "cuda", "mps", "meta"):
        raise UsageError(f"device {str(device)!r}: camloc runs on cpu, cuda or mps")
    return dev


def device_of(model: nn.Module, default: torch.device | None = None) -> torch.device:
    """The device of a model's first parameter (or buffer); ``default`` (the CPU) for a stateless model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return default or torch.device("cpu")
