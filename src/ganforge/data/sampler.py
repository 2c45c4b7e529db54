"""Shuffled epochs over a store, reproducible from (seed, epoch, position) alone.

Each epoch's order is a permutation drawn from a generator seeded by (seed, epoch), so a checkpoint needs only
two integers to resume the data stream exactly, whatever the dataset size.
"""

from __future__ import annotations

import torch


class EpochSampler:
    def __init__(self, dataset_size: int, seed: int) -> None:
        self.dataset_size = dataset_size
        self.seed = seed
        self.epoch = 0
        self.position = 0  # index of the next image within this epoch's permutation
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.dataset_size, generator=generator)

    def next_indices(self, batch: int) -> torch.Tensor:
        """The next `batch` indices; a batch that crosses an epoch boundary continues into the next epoch."""
        parts = []
        while batch > 0:
            take = min(batch, self.dataset_size - self.position)
            parts.append(self._order[self.position : self.position + take])
            self.position += take
            batch -= take
            if self.position == self.dataset_size:
                self.epoch += 1
                self.position = 0
                self._order = self._permutation(self.epoch)
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "dataset_size": self.dataset_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation(self.epoch)
