"""Training WSOL models: one loop, recipes, and the brief head fine-tune as a preset of it.

The loop is :mod:`~camloc.train.loop`, the recipes :mod:`~camloc.train.config` (``recipes/*.toml``),
the fine-tune :mod:`~camloc.train.finetuning`. The loop's data (the seeded items, the sampler, the
cached features) is :mod:`~camloc.train.data`.

Built on :mod:`camloc.models` (architectures, TAP, HaS, ADL, retrofit, checkpoints), :mod:`camloc.data`
(the one Dataset, the recipes' transforms) and :mod:`camloc.eval` (evaluation during training).
"""

from .config import TrainConfig, list_recipes, load_config
from .finetuning import FinetuneConfig, finetune, lr_steps
from .loop import train

__all__ = ["FinetuneConfig", "TrainConfig", "finetune", "list_recipes", "load_config", "lr_steps", "train"]
