"""Settings that move over a run, each a function of the image count alone, so a resumed run sets the same values
at the same step: --lr-decay's linear fall at the end of the run, or --schedule cosine, R3GAN's shape (Huang et
al. 2024, its training configurations) scaled to --kimg: along a half cosine the learning rates fall to a quarter,
R1 and R2's gamma to a tenth, and Adam's beta2 rises to 0.99 (the paper anneals them over 20 Mimg)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganforge.config import TrainConfig
from ganforge.training.objective.adversary import Adversary

LR_FINAL = 0.25  # the learning rates' last value, as a fraction of --lr-g / --lr-d (R3GAN: 2e-4 -> 5e-5)
GAMMA_FINAL = 0.1  # R1 and R2's last gamma as a fraction of the given one (R3GAN: 2 -> 0.2 at 64 px)
BETA2_FINAL = 0.99  # Adam's last beta2 (R3GAN: 0.9 -> 0.99)


@dataclass(frozen=True)
class Scheduled:
    lr_factor: float  # times --lr-g and --lr-d
    gamma_factor: float  # times R1 and R2's gamma
    beta2: float


def scheduled(config: TrainConfig, cur_nimg: int) -> Scheduled | None:
    """The values at `cur_nimg`, or None when nothing moves (constant schedule, no --lr-decay)."""
    if config.schedule == "cosine":
        remaining = 0.5 * (1 + math.cos(math.pi * min(1.0, cur_nimg / config.total_nimg)))  # 1 -> 0
        beta2_final = max(config.beta2, BETA2_FINAL)
        return Scheduled(LR_FINAL + (1 - LR_FINAL) * remaining, GAMMA_FINAL + (1 - GAMMA_FINAL) * remaining,
                         beta2_final + (config.beta2 - beta2_final) * remaining)
    if config.lr_decay > 0:  # constant, then falling linearly to 0 over the last fraction (CycleGAN)
        factor = min(1.0, (config.total_nimg - cur_nimg) / (config.lr_decay * config.total_nimg))
        return Scheduled(factor, 1.0, config.beta2)
    return None


def apply_schedule(config: TrainConfig, cur_nimg: int, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                   adversary: Adversary) -> None:
    """Set this step's learning rates, beta2 and penalty strength (a no-op for a constant run)."""
    values = scheduled(config, cur_nimg)
    if values is None:
        return
    for optimizer, rate in ((opt_g, config.lr_g), (opt_d, config.lr_d)):
        for group in optimizer.param_groups:
            group["lr"] = rate * values.lr_factor
            group["betas"] = (group["betas"][0], values.beta2)
    adversary.scale_penalties(values.gamma_factor)
