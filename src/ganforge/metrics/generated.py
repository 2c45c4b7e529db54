"""Images a generator makes for the metrics: seed i's latent for image i, so every evaluation of a run sees the
same images, and under torchrun each rank makes every world_size-th of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from ganforge.data.store import to_uint8


def shard_seeds(n: int, rank: int = 0, world_size: int = 1) -> range:
    """A rank's share of the seeds 0..n-1: seed s goes to rank s % world_size (every rank's share is disjoint)."""
    return range(rank, n, world_size)


def seed_order(shards: Sequence[torch.Tensor]) -> torch.Tensor:
    """The rows of every rank's share ([len(shard_seeds(n, rank, W)), ...], in rank order) back in seed order."""
    world_size = len(shards)
    merged = shards[0].new_empty((sum(len(s) for s in shards), *shards[0].shape[1:]))
    for rank, shard in enumerate(shards):
        merged[rank::world_size] = shard  # rows of seeds rank, rank + W, ...; a wrong-sized share fails here
    return merged


def generator_batches(generator: nn.Module, z_dim: int, num_classes: int, size: tuple[int, int],
                      device: torch.device, *, rank: int = 0, world_size: int = 1
                      ) -> Callable[[int], Iterator[torch.Tensor]]:
    """Endless uint8 batches from G: latent i is seed i's, so every evaluation sees the same images; a
    conditional G (num_classes > 0) draws class i % num_classes. With world_size > 1, only `rank`'s seeds
    (rank, rank + world_size, ...; see `shard_seeds`)."""

    def batches(batch_size: int) -> Iterator[torch.Tensor]:
        start = rank
        while True:
            seeds = range(start, start + batch_size * world_size, world_size)
            z = torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(s))
                             for s in seeds]).to(device)
            labels = torch.tensor(seeds, device=device) % num_classes if num_classes else None
            with torch.no_grad():
                images = generator(z, labels) if labels is not None else generator(z)
                if tuple(images.shape[-2:]) != size:  # a growing G mid-way: compare at the data's size
                    images = nn.functional.interpolate(images, size=size, mode="nearest")
            yield to_uint8(images).cpu()
            start += batch_size * world_size

    return batches
