"""Per-tick training statistics, kept on the device and read once per tick (no host sync per step).

A step only files its values (references to tensors it has already computed); they are reduced in a few
batched kernels every FLUSH_STEPS steps and at the tick's end, rather than in a dozen tiny kernels per step,
which on a small network cost more than the loop's own Python (benchmarks/overhead.py). Flushes fall at the
same steps counted from the tick's start, so a resumed run sums in the same order as one never stopped.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# D's five first: its step adds them as one slice.
STAT_NAMES = ("loss_d", "d_real", "d_fake", "acc_real", "acc_fake", "loss_g", "loss_recon", "mode_seeking")
# Stats added after the checkpoint format was fixed: older checkpoints lack them, and their tick began at zero.
ADDED_LATER = frozenset({"mode_seeking"})
_INDEX = {name: index for index, name in enumerate(STAT_NAMES)}
_DISCRIMINATOR = 5
FLUSH_STEPS = 64  # D steps filed before a reduction; with FLUSH_ELEMENTS, bounds what is held meanwhile
FLUSH_ELEMENTS = 1 << 22  # logits held at most (patch discriminators give many per image)


class TickStats:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums = torch.zeros(len(STAT_NAMES), dtype=torch.float64, device=device)  # one vector: few kernels
        self.counts = {name: 0 for name in STAT_NAMES}
        self._discriminator: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._held_elements = 0
        self._values: list[tuple[int, torch.Tensor]] = []

    def add_discriminator(self, loss: torch.Tensor, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
        """File one D step's loss and logits: D(x), D(G(z)) and D's accuracy on each side come from them."""
        real, fake = real_logits.detach().flatten(), fake_logits.detach().flatten()
        self._discriminator.append((loss.detach(), real, fake))
        self._held_elements += real.numel() + fake.numel()
        for name in STAT_NAMES[:_DISCRIMINATOR]:
            self.counts[name] += 1
        if len(self._discriminator) >= FLUSH_STEPS or self._held_elements >= FLUSH_ELEMENTS:
            self._flush()

    def add_generator(self, loss: torch.Tensor) -> None:
        self.add("loss_g", loss)

    def add(self, name: str, value: torch.Tensor) -> None:
        """Add one step's value (a 0-d tensor on the device) to the tick's sum of `name`."""
        self._values.append((_INDEX[name], value.detach()))
        self.counts[name] += 1

    @torch.no_grad()
    def _flush(self) -> None:
        """Reduce what the steps filed into the sums: a few kernels for all of it."""
        if self._discriminator:
            losses, reals, fakes = zip(*self._discriminator, strict=True)
            self.sums[:_DISCRIMINATOR] += _discriminator_sums(losses, reals, fakes)
            self._discriminator, self._held_elements = [], 0
        by_index: dict[int, list[torch.Tensor]] = {}
        for index, value in self._values:  # two or three names at most: one sum and one add each
            by_index.setdefault(index, []).append(value.reshape(()).to(torch.float64))
        for index, values in by_index.items():
            self.sums[index: index + 1] += torch.stack(values).sum()
        self._values = []

    def means(self) -> dict[str, float]:
        """Reads the device once; stats with no samples this tick (another scheme's) are left out."""
        self._flush()
        values = self.sums.cpu().tolist()
        return {n: v / self.counts[n] for n, v in zip(STAT_NAMES, values, strict=True) if self.counts[n]}

    def all_reduce(self, sum_: Callable[[torch.Tensor], torch.Tensor], world_size: int) -> None:
        """Sum every rank's tick sums (one collective per tick), so rank 0 logs the global means."""
        self._flush()
        sum_(self.sums)
        for name in STAT_NAMES:
            self.counts[name] *= world_size

    def reset(self) -> None:
        self._discriminator, self._held_elements, self._values = [], 0, []
        self.sums.zero_()
        for name in STAT_NAMES:
            self.counts[name] = 0

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        self._flush()
        return {f"stats.{n}": self.sums[i].clone() for n, i in _INDEX.items()}, dict(self.counts)

    def load_state_dict(self, tensors: dict[str, torch.Tensor], counts: dict[str, int]) -> None:
        self._discriminator, self._held_elements, self._values = [], 0, []
        older = {name for name in ADDED_LATER if f"stats.{name}" not in tensors}  # its sum and count start at 0
        self.sums = torch.stack([torch.zeros((), dtype=torch.float64, device=self.device) if name in older
                                 else tensors[f"stats.{name}"].to(self.device, torch.float64) for name in STAT_NAMES])
        for name in STAT_NAMES:
            self.counts[name] = 0 if name in older else int(counts[name])


def _discriminator_sums(losses: tuple[torch.Tensor, ...], reals: tuple[torch.Tensor, ...],
                        fakes: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Over the filed D steps: the sums of their losses, mean D(x), mean D(G(z)) and accuracies, as float64 [5]."""
    loss_sum = torch.stack([loss.reshape(()).to(torch.float64) for loss in losses]).sum().view(1)
    if len({r.shape for r in reals + fakes}) == 1:  # the usual case: one stack, few kernels
        logits = torch.stack([torch.stack(reals), torch.stack(fakes)]).float()  # [2, steps, B]
        probability = torch.sigmoid(logits).mean(2).sum(1)  # D's probability of "real", per side
        correct = torch.stack([logits[0] > 0, logits[1] < 0]).float().mean(2).sum(1)
        return torch.cat([loss_sum, probability.double(), correct.double()])
    per_step = [torch.stack([torch.sigmoid(r.float()).mean(), torch.sigmoid(f.float()).mean(), (r > 0).float().mean(),
                             (f < 0).float().mean()]) for r, f in zip(reals, fakes, strict=True)]
    return torch.cat([loss_sum, torch.stack(per_step).sum(0).double()])
