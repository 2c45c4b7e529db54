"""The history of generated images each D also learns from (Shrivastava et al. 2017, Sec. 2.3), as CycleGAN
uses it (Zhu et al. 2017, Sec. 4): D is shown, for about half of each batch, fakes an earlier G made, so it
does not forget them and G cannot oscillate back to what D stopped penalising.

The pool is part of the run's state: its images and fill counts go into every checkpoint, and its random
choices come from torch's global CPU stream, which checkpoints restore, so a resumed run queries it exactly
as an uninterrupted one does.
"""

from __future__ import annotations

from typing import Any

import torch

from ganforge.errors import CheckpointError

_DOMAINS = 2  # one pool per D: CycleGAN's D_A and D_B


class FakePool:
    what = "history pool"
    required_on_resume = True  # --pool-size is fixed on resume: every checkpoint of the run has the pool

    def __init__(self, size: int, image_shape: tuple[int, int, int], device: torch.device) -> None:
        self.size = size
        self.images = torch.zeros(_DOMAINS, size, *image_shape, device=device)
        self.filled = [0] * _DOMAINS  # slots in use per domain (host numbers: no device reads)

    def query(self, fakes: torch.Tensor, domain: int) -> torch.Tensor:
        """What D sees for this batch of `fakes` [B, C, H, W] (detached): while the pool fills, each fake goes in
        and through; then each is, with probability 1/2, swapped for a random stored one, which it replaces.

        As if the fakes were taken one by one, in order, but computed over the batch on the device: a fake that
        swaps a slot an earlier fake of the batch swapped into gets that earlier fake back."""
        if self.size == 0:
            return fakes
        fakes, count = fakes.float(), fakes.shape[0]  # the pool keeps float32 whatever --precision computes in
        coins, slots = torch.rand(count), torch.randint(self.size, (count,))  # CPU draws, restored on resume
        pool = self.images[domain]
        entering = min(self.size - self.filled[domain], count)  # known on the host: no device read
        if entering:
            pool[self.filled[domain]: self.filled[domain] + entering] = fakes[:entering]
            self.filled[domain] += entering
        if entering == count:
            return fakes
        rest, device = fakes[entering:], fakes.device
        swaps = (coins[entering:] > 0.5).to(device, non_blocking=True)
        slot = slots[entering:].to(device, non_blocking=True)
        order = torch.arange(1, len(rest) + 1, device=device)
        # writes[j, i]: fake i swaps into fake j's slot; earlier[j, i]: and does so before fake j.
        writes = swaps[None, :] & (slot[:, None] == slot[None, :])
        earlier = writes & (order[None, :] < order[:, None])
        stored = pool.index_select(0, slot)
        before = _where(earlier.any(1), rest[(earlier * order).argmax(1)], stored)  # the slot when j comes
        after = _where(writes.any(1), rest[(writes * order).argmax(1)], stored)  # the slot after the batch
        pool.index_copy_(0, slot, after)  # every write to one slot carries the same value: order cannot matter
        return torch.cat([fakes[:entering], _where(swaps, before, rest)])

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {"pool.images": self.images}, {"filled": list(self.filled), "size": self.size}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.images = tensors["pool.images"].to(self.images.device)
        self.filled = [int(n) for n in meta["filled"]]

    def check(self, meta: Any) -> None:
        """Refuse a checkpoint's pool JSON that this pool cannot take (its tensors are checked by shape)."""
        if not isinstance(meta, dict) or set(meta) != {"filled", "size"}:
            raise CheckpointError(f"pool is {str(meta)[:40]}, not an object with 'filled' and 'size'")
        if meta["size"] != self.size:
            raise CheckpointError(f"the pool was saved with {meta['size']!r} images per D, the run keeps {self.size}")
        filled = meta["filled"]
        if not (isinstance(filled, list) and len(filled) == len(self.filled)
                and all(type(n) is int and 0 <= n <= self.size for n in filled)):
            raise CheckpointError(f"pool filled {str(filled)[:40]} is not a count of at most {self.size} per D")


def _where(condition: torch.Tensor, chosen: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Per image: `chosen` where `condition` [B] holds, `other` elsewhere."""
    return torch.where(condition.view(-1, *[1] * (chosen.ndim - 1)), chosen, other)
