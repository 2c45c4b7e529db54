"""The part of every scheme's objective that is about D: the adversarial loss, D's regularizers, and what D sees
(augmented, then blurred by instance noise). Each scheme's own objective holds one `Adversary` beside its own
terms, so a new loss or penalty reaches every scheme without touching them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ganforge.augment import Augment
from ganforge.config import LossConfig
from ganforge.training.objective.losses import AdversarialLoss, build_loss, pairs_reals
from ganforge.training.objective.regularizers import R1Penalty, Regularizer, build_regularizers


@dataclass(frozen=True)
class Adversary:
    loss: AdversarialLoss
    regularizers: list[Regularizer]
    augment: Augment
    instance_noise: float = 0.0  # std at the start of training
    instance_noise_nimg: int = 0  # images over which the std falls linearly to zero

    def d_input(self, images: torch.Tensor, cur_nimg: int) -> torch.Tensor:
        """What D sees: augmented (ADA / DiffAugment), then blurred by instance noise (Sonderby et al. 2017)."""
        images = self.augment(images)
        if self.instance_noise <= 0:
            return images
        std = self.instance_noise * max(0.0, 1.0 - cur_nimg / max(1, self.instance_noise_nimg))
        return images + std * torch.randn_like(images) if std > 0 else images

    @property
    def differentiates_d_twice(self) -> bool:
        """Whether a penalty backpropagates through D's input gradient (R1, R2, WGAN-GP): memory a pass needs."""
        return any(getattr(regularizer, "double_backward", False) for regularizer in self.regularizers)

    def scale_penalties(self, factor: float) -> None:
        """Scale R1 and R2's gamma by `factor` (of the gamma given) from the next D step on: a schedule's."""
        for regularizer in self.regularizers:
            if isinstance(regularizer, R1Penalty):
                regularizer.factor = factor

    def generator_loss(self, critic: Callable[[torch.Tensor], torch.Tensor], fakes: torch.Tensor,
                       reals: torch.Tensor | None, cur_nimg: int) -> torch.Tensor:
        """G's adversarial loss on `fakes` as D judges them (through `critic`, labels bound). A relativistic loss
        also judges `reals`, row by row beside the fakes; D's verdict on them needs no graph."""
        fake_logits = critic(self.d_input(fakes, cur_nimg))
        if not pairs_reals(self.loss):
            return self.loss.generator_loss(fake_logits)
        if reals is None:
            raise ValueError("a relativistic loss needs the reals beside G's fakes")
        with torch.no_grad():
            real_logits = critic(self.d_input(reals, cur_nimg))
        return self.loss.generator_loss(fake_logits, real_logits)


def build_adversary(config: LossConfig, augment: Augment, run_kimg: float) -> Adversary:
    """Instance noise falls to zero over the whole run unless `instance_noise_kimg` is set."""
    return Adversary(build_loss(config), build_regularizers(config), augment, config.instance_noise,
                     instance_noise_nimg(config, run_kimg))


def instance_noise_nimg(config: LossConfig, run_kimg: float) -> int:
    """Images over which instance noise fades: `instance_noise_kimg`, else the run's length."""
    return int((config.instance_noise_kimg or run_kimg) * 1000)
