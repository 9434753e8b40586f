"""Training: today the brief fine-tune of a retrofitted TAP/GAP head (:mod:`~camloc.train.finetune`).

Built on :mod:`camloc.models` (retrofit, checkpoints), :mod:`camloc.data` (the one Dataset, the
recipe's transforms) and :mod:`camloc.eval` (validation during training).
"""

from .finetune import FinetuneConfig, finetune, lr_steps

__all__ = ["FinetuneConfig", "finetune", "lr_steps"]
