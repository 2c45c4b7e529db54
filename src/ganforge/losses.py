"""Adversarial losses by name, all written on D's raw logits.

A loss turns D's logits on reals and fakes into D's loss, and D's logits on fakes into G's loss. New losses
(WGAN, hinge, least squares, ...) join the `LOSSES` table; the training loop only calls the two methods.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from ganforge.config import LossConfig
from ganforge.errors import ConfigError


class AdversarialLoss(Protocol):
    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor: ...

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor: ...


class _BinaryCrossEntropyD:
    """D as a real/fake classifier: -log D(x) - log(1 - D(G(z))) (Goodfellow et al. 2014, Eq. 1).

    `label_smoothing` lowers the real target to 1 - s (one-sided, Salimans et al. 2016); `label_flip` swaps a
    random fraction of both targets (label noise). The flips draw from torch's global RNG, which checkpoints save.
    """

    def __init__(self, config: LossConfig) -> None:
        self.label_smoothing = config.label_smoothing
        self.label_flip = config.label_flip

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        real_targets = torch.full_like(real_logits, 1.0 - self.label_smoothing)
        fake_targets = torch.zeros_like(fake_logits)
        if self.label_flip > 0:
            real_targets = self._flip(real_targets, to=0.0)
            fake_targets = self._flip(fake_targets, to=1.0 - self.label_smoothing)
        return (F.binary_cross_entropy_with_logits(real_logits, real_targets)
                + F.binary_cross_entropy_with_logits(fake_logits, fake_targets))

    def _flip(self, targets: torch.Tensor, to: float) -> torch.Tensor:
        flip = torch.rand(targets.shape, device=targets.device) < self.label_flip
        return torch.where(flip, torch.full_like(targets, to), targets)


class NonSaturatingLoss(_BinaryCrossEntropyD):
    """G maximises log D(G(z)) instead of minimising log(1 - D(G(z))): same fixed point, strong early gradients
    (Goodfellow et al. 2014, Section 3). The default of DCGAN and nearly every GAN since."""

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits).mean()  # -log sigmoid(l)


class MinimaxLoss(_BinaryCrossEntropyD):
    """The original saturating game: G minimises log(1 - D(G(z))). Its gradient vanishes when D wins early,
    which is why the paper itself recommends the non-saturating form; kept for the textbook comparison."""

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(l)) = -softplus(l)


LOSSES: dict[str, type] = {
    "nonsaturating": NonSaturatingLoss,
    "minimax": MinimaxLoss,
}


def build_loss(config: LossConfig) -> AdversarialLoss:
    if config.name not in LOSSES:
        raise ConfigError(f"--loss {config.name!r} is not a loss; choose one of: {', '.join(sorted(LOSSES))}")
    loss: AdversarialLoss = LOSSES[config.name](config)
    return loss
