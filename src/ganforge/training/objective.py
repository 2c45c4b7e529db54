"""What a run optimises, selected by its config: loss, D regularizers, augmentation and instance noise."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganforge.augment import Augment
from ganforge.losses import AdversarialLoss
from ganforge.regularizers import Regularizer


@dataclass
class Objective:
    loss: AdversarialLoss
    regularizers: list[Regularizer]
    augment: Augment
    instance_noise: float = 0.0  # std at the start of training
    instance_noise_nimg: int = 0  # images over which the std falls linearly to zero

    def noise_std(self, cur_nimg: int) -> float:
        if self.instance_noise <= 0:
            return 0.0
        return self.instance_noise * max(0.0, 1.0 - cur_nimg / max(1, self.instance_noise_nimg))

    def d_input(self, images: torch.Tensor, cur_nimg: int) -> torch.Tensor:
        """What D sees: augmented (ADA / DiffAugment), then blurred by instance noise (Sonderby et al. 2017)."""
        images = self.augment(images)
        std = self.noise_std(cur_nimg)
        return images + std * torch.randn_like(images) if std > 0 else images
