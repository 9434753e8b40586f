"""Training WSOL models: one loop (:mod:`~camloc.train.loop`), recipes (:mod:`~camloc.train.config`,
``recipes/*.toml``), and the brief head fine-tune as a preset of it (:mod:`~camloc.train.finetuning`).
The loop's data (the seeded items, the sampler, the cached features) is :mod:`~camloc.train.data`.

Built on :mod:`camloc.models` (architectures, TAP, HaS, ADL, retrofit, checkpoints), :mod:`camloc.data`
(the one Dataset, the recipes' transforms) and :mod:`camloc.eval` (evaluation during training).
"""

from .config import TrainConfig, list_recipes, load_config
from .finetuning import FinetuneConfig, lr_steps
from .loop import train

# finetune() is not re-exported here: its name would hide the module camloc.train.finetuning
# (camloc.finetune_model is its public name).
__all__ = ["FinetuneConfig", "TrainConfig", "list_recipes", "load_config", "lr_steps", "train"]
