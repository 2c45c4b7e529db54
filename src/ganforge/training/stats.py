"""Per-tick training statistics, summed on the device and read once per tick (no host sync per step)."""

from __future__ import annotations

from collections.abc import Callable

import torch

# D's five first: its step adds them as one slice.
STAT_NAMES = ("loss_d", "d_real", "d_fake", "acc_real", "acc_fake", "loss_g", "loss_recon")
_INDEX = {name: index for index, name in enumerate(STAT_NAMES)}
_DISCRIMINATOR = 5


class TickStats:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums = torch.zeros(len(STAT_NAMES), dtype=torch.float64, device=device)  # one vector: few kernels
        self.counts = {name: 0 for name in STAT_NAMES}

    @torch.no_grad()
    def add_discriminator(self, loss: torch.Tensor, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
        real, fake = real_logits.detach().float().flatten(), fake_logits.detach().float().flatten()
        if real.shape == fake.shape:  # the usual case: both sides in one stack, few kernels
            logits = torch.stack([real, fake])
            values = torch.cat([loss.detach().float().view(1),
                                torch.sigmoid(logits).mean(1),  # D(x), D(G(z)): D's probability of "real"
                                torch.stack([real > 0, fake < 0]).float().mean(1)])  # D's accuracy on each
        else:
            values = torch.stack([loss.detach().float(), torch.sigmoid(real).mean(), torch.sigmoid(fake).mean(),
                                  (real > 0).float().mean(), (fake < 0).float().mean()])
        self.sums[:_DISCRIMINATOR] += values
        for name in STAT_NAMES[:_DISCRIMINATOR]:
            self.counts[name] += 1

    def add_generator(self, loss: torch.Tensor) -> None:
        self.add("loss_g", loss)

    def add(self, name: str, value: torch.Tensor) -> None:
        """Add one step's value (a 0-d tensor on the device) to the tick's sum of `name`."""
        index = _INDEX[name]
        self.sums[index: index + 1] += value.detach().reshape(1)
        self.counts[name] += 1

    def means(self) -> dict[str, float]:
        """Reads the device once; stats with no samples this tick (another scheme's) are left out."""
        values = self.sums.cpu().tolist()
        return {n: v / self.counts[n] for n, v in zip(STAT_NAMES, values, strict=True) if self.counts[n]}

    def all_reduce(self, sum_: Callable[[torch.Tensor], torch.Tensor], world_size: int) -> None:
        """Sum every rank's tick sums (one collective per tick), so rank 0 logs the global means."""
        sum_(self.sums)
        for name in STAT_NAMES:
            self.counts[name] *= world_size

    def reset(self) -> None:
        self.sums.zero_()
        for name in STAT_NAMES:
            self.counts[name] = 0

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        return {f"stats.{n}": self.sums[i].clone() for n, i in _INDEX.items()}, dict(self.counts)

    def load_state_dict(self, tensors: dict[str, torch.Tensor], counts: dict[str, int]) -> None:
        self.sums = torch.stack([tensors[f"stats.{name}"].to(self.device, torch.float64) for name in STAT_NAMES])
        for name in STAT_NAMES:
            self.counts[name] = int(counts[name])
