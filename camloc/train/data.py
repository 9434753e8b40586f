"""What a training run's epochs iterate: the training split, items seeded per (epoch, sample), the sampler.

A run reads its training split as image paths, labels and class names (:func:`train_items`), through
camloc's one Dataset and the recipe's augmentation (:func:`training_data`). Each item is drawn under
its own seed (:class:`SeededItems`, fetched as ``(epoch, index)`` from :class:`EpochSampler`, both
made by :func:`training_loader`), so that a run sharded over ranks or resumed after a kill sees
exactly the same crops and flips. A frozen backbone trains its head on cached feature maps instead
(:func:`cache_features`, :class:`FrozenBackboneHead`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.metadata import Sample, read_dataset
from ..data.transforms import train_transform
from ..models.config import model_config
from ..models.retrofitting import CAMHeadModel
from .config import TrainConfig


def train_items(cfg: TrainConfig) -> tuple[list[str], list[int], list[str]]:
    """Training image paths, labels and class names (folder names where they are consistent)."""
    if cfg.image_folder:
        from torchvision.datasets import ImageFolder

        folder = ImageFolder(cfg.image_folder)
        return [p for p, _ in folder.samples], [c for _, c in folder.samples], list(folder.classes)
    samples = read_dataset(cfg.train_metadata)
    root = Path(cfg.train_images or cfg.train_metadata)
    return [str(root / s.image_id) for s in samples], [s.label for s in samples], class_names_of(samples)


def class_names_of(samples: list[Sample]) -> list[str]:
    """``class N``, or the folder name where every image of a class, and no other class, sits in one folder.

    A multi-label image counts for each of its classes (``Sample.classes``).
    """
    folders: dict[int, set] = {}
    for s in samples:
        for c in s.classes:
            folders.setdefault(c, set()).add(Path(s.image_id).parent.name)
    names = []
    for c in range(max(c for s in samples for c in s.classes) + 1):
        f = folders.get(c, set())
        names.append(next(iter(f)) if len(f) == 1 and next(iter(f)) else f"class {c}")
    shared = {n for n in names if names.count(n) > 1}  # one folder for several classes names none of them
    return [f"class {c}" if n in shared else n for c, n in enumerate(names)]


class SeededItems(torch.utils.data.Dataset):
    """Items fetched as ``(epoch, index)``, each drawn under its own seed.

    The same crop and flip for an image in an epoch, whatever the rank, worker or resume.

    Args:
        data: the dataset whose items are drawn.
        seed: the run's seed.
    """

    def __init__(self, data: torch.utils.data.Dataset, seed: int) -> None:
        self.data, self.seed = data, seed

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch) * 1_000_033 + index)
            return self.data[index]


class EpochSampler(torch.utils.data.Sampler):
    """A DistributedSampler (one replica outside torchrun) that yields ``(epoch, index)``.

    Args:
        size: the dataset's length.
        rank: this process's rank.
        world: the number of processes.
        seed: the shuffle's seed.
        drop_last: drop the tail that does not divide evenly among the ranks.
    """

    def __init__(self, size: int, rank: int, world: int, seed: int, drop_last: bool) -> None:
        self.inner = torch.utils.data.DistributedSampler(range(size), num_replicas=world, rank=rank, shuffle=True,
                                                         seed=seed, drop_last=drop_last)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for this epoch (0-based), and tag the indices with it."""
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def collate_cached(items: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of cached ``(feature map, label)`` items: stacked features, a label tensor."""
    feats, labels = zip(*items, strict=True)
    return torch.stack(feats), torch.tensor(labels)


@torch.no_grad()
def cache_features(model: CAMHeadModel, paths: list[str], labels: list[int], device: torch.device,
                   batch_size: int, progress: bool) -> torch.utils.data.TensorDataset:
    """Backbone feature maps of the model's evaluation crop and its mirror image, for every image.

    The crop is the model's recorded preprocessing: for a run, the center crop of its resize (the rethinking
    protocol's at the run's size, :func:`camloc.models.config.trained_preprocess`).
    """
    from tqdm import tqdm

    data = ImageDataset(paths, model_config(model).preprocess, labels)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, collate_fn=ImageDataset.collate)
    feats, targets = [], []
    model.eval()
    for batch in tqdm(loader, disable=not progress, desc="features", unit="batch", leave=False):
        x = batch.images.to(device)
        for view in (x, x.flip(3)):
            feats.append(model.backbone_features(view).cpu())
            targets.append(batch.labels)
    return torch.utils.data.TensorDataset(torch.cat(feats), torch.cat(targets))


class FrozenBackboneHead(nn.Module):
    """The trainable head of a frozen-backbone run, as one module (what DDP wraps).

    Args:
        model: the network whose ``per_location``, ``pool`` and ``fc`` it holds (shared, not copied).
    """

    def __init__(self, model: CAMHeadModel) -> None:
        super().__init__()
        self.per_location, self.pool, self.fc = model.per_location, model.pool, model.fc

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """The logits of cached backbone feature maps."""
        return self.fc(self.pool(self.per_location(feats)))


def training_data(cfg: TrainConfig, model: CAMHeadModel, paths: list[str], labels: list[int], device: torch.device,
                  progress: bool) -> tuple[torch.utils.data.Dataset, nn.Module, Callable, set[str] | None]:
    """``(data, module, collate, trainable)``: what the epochs iterate and the module they train.

    Images through the recipe's augmentation and the whole model; with a frozen backbone, its cached
    feature maps (``progress``: their progress bar) and the head alone, whose parameters are then
    the only ones trained (``trainable``, by name; None: all). SyncBN and channels-last where asked.
    """
    if cfg.freeze_backbone:
        data = cache_features(model, paths, labels, device, cfg.batch_size, progress)
        module, collate = FrozenBackboneHead(model), collate_cached
        trainable = {f"{n}.{p}" for n in ("per_location", "fc") for p, _ in getattr(model, n).named_parameters()}
    else:
        pre = model_config(model).preprocess
        data = ImageDataset(paths, train_transform(pre.mean, pre.std, cfg.resize, cfg.crop), labels, errors="return")
        module, collate, trainable = model, ImageDataset.collate, None
    if cfg.sync_bn:
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if cfg.channels_last:
        module = module.to(memory_format=torch.channels_last)
    return data, module, collate, trainable


def training_loader(cfg: TrainConfig, data: torch.utils.data.Dataset, collate: Callable, rank: int, world: int,
                    pin_memory: bool) -> tuple[EpochSampler, torch.utils.data.DataLoader]:
    """This rank's :class:`EpochSampler` and the loader of ``data``'s :class:`SeededItems` in batches."""
    sampler = EpochSampler(len(data), rank, world, cfg.seed, drop_last=len(data) >= cfg.batch_size * world)
    loader = torch.utils.data.DataLoader(
        SeededItems(data, cfg.seed), batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
        collate_fn=collate, pin_memory=pin_memory, persistent_workers=cfg.workers > 0)
    return sampler, loader
