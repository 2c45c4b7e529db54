"""Per-tick training statistics, summed on the device and read once per tick (no host sync per step)."""

from __future__ import annotations

from collections.abc import Callable

import torch

STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "acc_real", "acc_fake", "loss_recon")


class TickStats:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums = {name: torch.zeros((), dtype=torch.float64, device=device) for name in STAT_NAMES}
        self.counts = {name: 0 for name in STAT_NAMES}

    @torch.no_grad()
    def add_discriminator(self, loss: torch.Tensor, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
        self.add("loss_d", loss)
        self.add("d_real", torch.sigmoid(real_logits).mean())  # D(x): D's probability that a real is real
        self.add("d_fake", torch.sigmoid(fake_logits).mean())  # D(G(z))
        self.add("acc_real", (real_logits > 0).float().mean())  # fraction of reals D calls real
        self.add("acc_fake", (fake_logits < 0).float().mean())  # fraction of fakes D calls fake

    def add_generator(self, loss: torch.Tensor) -> None:
        self.add("loss_g", loss)

    def add(self, name: str, value: torch.Tensor) -> None:
        """Add one step's value (a 0-d tensor on the device) to the tick's sum of `name`."""
        self.sums[name] += value.detach().to(torch.float64)
        self.counts[name] += 1

    def means(self) -> dict[str, float]:
        """Reads the device once; stats with no samples this tick (another scheme's) are left out."""
        values = torch.stack([self.sums[n] for n in STAT_NAMES]).cpu().tolist()
        return {n: v / self.counts[n] for n, v in zip(STAT_NAMES, values, strict=True) if self.counts[n]}

    def all_reduce(self, sum_: Callable[[torch.Tensor], torch.Tensor], world_size: int) -> None:
        """Sum every rank's tick sums (one collective per stat per tick), so rank 0 logs the global means."""
        for name in STAT_NAMES:
            sum_(self.sums[name])
            self.counts[name] *= world_size

    def reset(self) -> None:
        for name in STAT_NAMES:
            self.sums[name].zero_()
            self.counts[name] = 0

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        return {f"stats.{n}": t for n, t in self.sums.items()}, dict(self.counts)

    def load_state_dict(self, tensors: dict[str, torch.Tensor], counts: dict[str, int]) -> None:
        for name in STAT_NAMES:
            self.sums[name] = tensors[f"stats.{name}"].to(self.device)
            self.counts[name] = int(counts[name])
