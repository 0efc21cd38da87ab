"""The order in which a training run visits its pairs: seeded per epoch, sharded per rank.

The order is a pure function of (number of pairs, batch size, world size, rank, seed,
epoch), so a checkpoint needs only the epoch and the index of the next batch to resume
exactly where the run stopped, with any number of DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DataPosition:
    """Where the next batch comes from: ``epoch`` and the index of the batch in it."""

    epoch: int = 0
    batch: int = 0


def epoch_batches(
    num_pairs: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1
) -> list[list[int]]:
    """This rank's batches of pair indices for ``epoch``.

    A seeded permutation of the pairs, repeated from its start until its length is a
    multiple of ``world`` (every rank then has as many batches, so no rank waits in a
    gradient all-reduce that the others never reach), dealt to the ranks in turn and cut
    into batches of ``batch_size`` (the last one may be shorter, on every rank alike).
    """
    if num_pairs < 1 or batch_size < 1 or world < 1 or not 0 <= rank < world:
        raise ValueError(
            f"need num_pairs, batch_size, world >= 1 and 0 <= rank < world; got "
            f"{num_pairs}, {batch_size}, {world}, {rank}"
        )
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_pairs, generator=generator).tolist()
    padded = -(-max(num_pairs, world) // world) * world
    order = [order[i % num_pairs] for i in range(padded)]
    mine = order[rank::world]
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]


def batches_from(
    position: DataPosition, num_pairs: int, batch_size: int, seed: int, rank: int, world: int
) -> Iterator[tuple[DataPosition, list[tuple[int, int]]]]:
    """Endless ``(position after this batch, [(epoch, pair index), ...])`` from ``position``.

    Each index carries its epoch, which decides the pair's augmentation (see
    :class:`EpochIndexed`).
    """
    epoch, start = position.epoch, position.batch
    while True:
        batches = epoch_batches(num_pairs, batch_size, seed, epoch, rank, world)
        for index in range(start, len(batches)):
            after = DataPosition(epoch, index + 1)
            if index + 1 == len(batches):
                after = DataPosition(epoch + 1, 0)
            yield after, [(epoch, i) for i in batches[index]]
        epoch, start = epoch + 1, 0


class EpochIndexed(torch.utils.data.Dataset):
    """A :class:`~dpst.data.dataset.PairDataset` indexed by ``(epoch, index)``.

    DataLoader workers hold copies of the dataset made when iteration starts, so calling
    ``set_epoch`` on the original would not reach them; the epoch travels with the index.
    """

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]
