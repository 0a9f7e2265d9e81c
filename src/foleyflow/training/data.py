"""Data order the trainer can stop and resume at any batch, on any number of processes.

The order of epoch ``e`` is a permutation drawn from its own generator seeded with
(seed, e); process ``r`` of ``R`` takes every R-th index of it, so the position in the data is
just (epoch, batches consumed) and resuming never depends on the global RNG.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from foleyflow.errors import InputError


class ShardedEpochSampler(Sampler[int]):
    """This process's indices for one epoch, optionally skipping the first ``start`` of them."""

    def __init__(self, size: int, rank: int, world: int, seed: int, shuffle: bool, drop_last: bool, batch_size: int):
        self.size, self.rank, self.world = size, rank, world
        self.seed, self.shuffle, self.drop_last, self.batch_size = seed, shuffle, drop_last, batch_size
        self.epoch = 0
        self.start = 0

    def set_position(self, epoch: int, batches_done: int) -> None:
        self.epoch = epoch
        self.start = batches_done * self.batch_size

    def epoch_indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        per_process = self.size // self.world
        if self.drop_last:
            # Whole batches only, equal on every process, so no process waits on a missing step.
            per_process -= per_process % self.batch_size
        else:
            per_process = -(-self.size // self.world)
            order = (order * (1 + per_process * self.world // max(self.size, 1)))[: per_process * self.world]
        return order[self.rank : per_process * self.world : self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start :])

    def __len__(self) -> int:
        return max(len(self.epoch_indices()) - self.start, 0)


def make_loader(
    dataset: Dataset,
    collate: Callable[[list[Any]], Any],
    batch_size: int,
    rank: int,
    world: int,
    seed: int,
    train: bool,
    num_workers: int,
) -> tuple[DataLoader, ShardedEpochSampler]:
    size = len(dataset)  # type: ignore[arg-type]
    if train and size < batch_size * world:
        raise InputError(f"the training set has {size} items, fewer than one batch on each process ({batch_size} x {world})")
    sampler = ShardedEpochSampler(size, rank, world, seed, shuffle=train, drop_last=train, batch_size=batch_size)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        drop_last=train,
        # A private generator: otherwise every new iterator draws a seed from the global torch
        # RNG, and a resumed run (whose iterator starts mid-epoch) would drift from the original.
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
    return loader, sampler
