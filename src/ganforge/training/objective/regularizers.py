"""Penalties and constraints on D that need D itself, not only its outputs.

Each regularizer adds a term to D's loss (`penalty`) and/or constrains D after its optimizer step
(`after_step`). Which ones a run uses follows from its `LossConfig`; the D step calls them all the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from ganforge.config import LossConfig

Critic = Callable[[torch.Tensor], torch.Tensor]  # images -> D outputs [B] (labels already bound)


class Regularizer(Protocol):
    def penalty(self, critic: Critic, reals: torch.Tensor, fakes: torch.Tensor, real_logits: torch.Tensor,
                d_step: int) -> torch.Tensor | None: ...

    def after_step(self, discriminator: nn.Module) -> None: ...


class GradientPenalty:
    """WGAN-GP (Gulrajani et al. 2017, Eq. 3): lambda E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates
    x_hat = eps x + (1 - eps) G(z). The one-sided form penalises only norms above 1 (their Appendix)."""

    double_backward = True  # its loss holds D's input gradient

    def __init__(self, weight: float, one_sided: bool) -> None:
        self.weight = weight
        self.one_sided = one_sided

    def penalty(self, critic: Critic, reals: torch.Tensor, fakes: torch.Tensor, real_logits: torch.Tensor,
                d_step: int) -> torch.Tensor:
        eps = torch.rand(reals.shape[0], 1, 1, 1, device=reals.device, dtype=reals.dtype)
        mixed = (eps * reals.detach() + (1 - eps) * fakes.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
        excess = grad.flatten(1).norm(2, dim=1) - 1.0
        if self.one_sided:
            excess = excess.clamp(min=0.0)
        return self.weight * excess.pow(2).mean()

    def after_step(self, discriminator: nn.Module) -> None:
        pass


class DriftPenalty:
    """epsilon E[D(x)^2] keeps a critic's outputs from drifting far from zero (Karras et al. 2018, Sec. A.1)."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def penalty(self, critic: Critic, reals: torch.Tensor, fakes: torch.Tensor, real_logits: torch.Tensor,
                d_step: int) -> torch.Tensor:
        return self.weight * real_logits.pow(2).mean()

    def after_step(self, discriminator: nn.Module) -> None:
        pass


class R1Penalty:
    """R1 (Mescheder et al. 2018, Eq. 9): gamma/2 E[||grad D(x)||^2] on reals. Lazy (Karras et al. 2020,
    StyleGAN2 Sec. 3.1): computed every `every` D steps and multiplied by `every`, so the average pull is unchanged
    at a fraction of the cost."""

    on_fakes = False  # R2 (below) is the same penalty on the fakes
    double_backward = True

    def __init__(self, gamma: float, every: int) -> None:
        self.gamma = gamma
        self.every = every
        self.factor = 1.0  # a schedule's share of gamma now (--schedule cosine anneals it)

    def penalty(self, critic: Critic, reals: torch.Tensor, fakes: torch.Tensor, real_logits: torch.Tensor,
                d_step: int) -> torch.Tensor | None:
        if d_step % self.every:
            return None
        points = (fakes if self.on_fakes else reals).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
        return (self.gamma * self.factor / 2) * grad.flatten(1).pow(2).sum(1).mean() * self.every

    def after_step(self, discriminator: nn.Module) -> None:
        pass


class R2Penalty(R1Penalty):
    """R2 (Mescheder et al. 2018, Eq. 10): gamma/2 E[||grad D(G(z))||^2] on fakes. R3GAN (Huang et al. 2024,
    Sec. 2.2) pairs it with R1: R1 alone lets D's gradient on the fakes grow, which stalls training. Lazy on R1's
    schedule (`--r1-every`)."""

    on_fakes = True


class WeightClipping:
    """The original WGAN's Lipschitz constraint: clamp every trained critic weight to [-c, c] after each step
    (blocks frozen by --freeze-d keep the weights they were given)."""

    def __init__(self, bound: float) -> None:
        self.bound = bound

    def penalty(self, critic: Critic, reals: torch.Tensor, fakes: torch.Tensor, real_logits: torch.Tensor,
                d_step: int) -> None:
        return None

    @torch.no_grad()
    def after_step(self, discriminator: nn.Module) -> None:
        for parameter in discriminator.parameters():
            if parameter.requires_grad:
                parameter.clamp_(-self.bound, self.bound)


def build_regularizers(config: LossConfig) -> list[Regularizer]:
    regularizers: list[Regularizer] = []
    if config.name == "wgan":
        regularizers.append(WeightClipping(config.clip))
    if config.name == "wgan-gp" and config.gp_lambda > 0:
        regularizers.append(GradientPenalty(config.gp_lambda, one_sided=config.gp_mode == "one-sided"))
    if config.drift > 0:
        regularizers.append(DriftPenalty(config.drift))
    if config.r1_gamma > 0:
        regularizers.append(R1Penalty(config.r1_gamma, config.r1_every))
    if config.r2_gamma > 0:
        regularizers.append(R2Penalty(config.r2_gamma, config.r1_every))
    return regularizers
