"""Adversarial losses by name, all written on D's raw outputs ("logits"; a critic's scores for WGAN).

A loss turns D's outputs on reals and fakes into D's loss, and D's outputs on fakes (and, for a relativistic loss,
on the reals beside them) into G's loss. Penalties that need D itself (gradient penalty, R1, R2, weight clipping)
live in `regularizers.py`; the steps only call these two methods. Each formula cites its paper; the tests check
them on known logits.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from ganforge.config import LossConfig


class AdversarialLoss(Protocol):
    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor: ...

    def generator_loss(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        """G's loss; `real_logits` (D on reals, paired with the fakes row by row) only for a loss that
        `pairs_reals`, which the G step then computes."""
        ...


def pairs_reals(loss: AdversarialLoss) -> bool:
    """Whether G's loss judges each fake against a real (relativistic), so the G step must also run D on reals."""
    return bool(getattr(loss, "relativistic", False))


class _BinaryCrossEntropyD:
    """D as a real/fake classifier: -log D(x) - log(1 - D(G(z))) (Goodfellow et al. 2014, Eq. 1).

    `label_smoothing` lowers the real target to 1 - s (one-sided, Salimans et al. 2016); `label_flip` swaps a
    random fraction of both targets (label noise). The flips draw from torch's global RNG, which checkpoints save.
    """

    def __init__(self, config: LossConfig) -> None:
        self.label_smoothing = config.label_smoothing
        self.label_flip = config.label_flip

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.label_smoothing == 0 and self.label_flip == 0:  # targets 1 and 0: two kernels, no target tensors
            return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
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

    def generator_loss(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        return F.softplus(-fake_logits).mean()  # -log sigmoid(l)


class MinimaxLoss(_BinaryCrossEntropyD):
    """The original saturating game: G minimises log(1 - D(G(z))). Its gradient vanishes when D wins early,
    which is why the paper itself recommends the non-saturating form; kept for the textbook comparison."""

    def generator_loss(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(l)) = -softplus(l)


class WassersteinLoss:
    """WGAN (Arjovsky et al. 2017): the critic maximises E[D(x)] - E[D(G(z))], G maximises E[D(G(z))].

    Needs a Lipschitz critic: weight clipping (`--loss wgan`) or a gradient penalty (`--loss wgan-gp`, Gulrajani
    et al. 2017), both added by `regularizers.build_regularizers`, plus several critic steps per G step.
    """

    def __init__(self, config: LossConfig) -> None:
        pass

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return fake_logits.mean() - real_logits.mean()

    def generator_loss(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        return -fake_logits.mean()


class HingeLoss:
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): D minimises E[relu(1 - D(x))] + E[relu(1 + D(G(z)))],
    G minimises -E[D(G(z))]."""

    def __init__(self, config: LossConfig) -> None:
        pass

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def generator_loss(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        return -fake_logits.mean()


class LeastSquaresLoss:
    """LSGAN (Mao et al. 2017, Eq. 9 with a=0, b=c=1): D minimises 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2],
    G minimises 1/2 E[(D(G(z)) - 1)^2]. One-sided label smoothing lowers the real target b."""

    def __init__(self, config: LossConfig) -> None:
        self.real_target = 1.0 - config.label_smoothing

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real_logits - self.real_target).pow(2).mean() + fake_logits.pow(2).mean())

    def generator_loss(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * (fake_logits - 1.0).pow(2).mean()


class RelativisticPairingLoss:
    """RpGAN (Jolicoeur-Martineau 2019; the loss of R3GAN, Huang et al. 2024, Eq. 2): each fake is judged against
    the real beside it, D minimising E[softplus(D(G(z)) - D(x))] and G E[softplus(D(x) - D(G(z)))]. Coupling
    the two sides removes the flat regions of the non-saturating loss in which G drops modes; with R1 and R2 it
    converges locally (R3GAN Sec. 2). D's reals carry no gradient in G's loss: only G's fakes are trained."""

    relativistic = True

    def __init__(self, config: LossConfig) -> None:
        pass

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(fake_logits - real_logits).mean()

    def generator_loss(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        if real_logits is None:
            raise ValueError("the relativistic pairing loss judges each fake against a real: pass real_logits")
        return F.softplus(real_logits.detach() - fake_logits).mean()


LOSSES: dict[str, type] = {
    "nonsaturating": NonSaturatingLoss,
    "minimax": MinimaxLoss,
    "wgan": WassersteinLoss,
    "wgan-gp": WassersteinLoss,
    "hinge": HingeLoss,
    "lsgan": LeastSquaresLoss,
    "rpgan": RelativisticPairingLoss,
}


def build_loss(config: LossConfig) -> AdversarialLoss:
    """The loss `config.name` names (LossConfig accepts only the names in LOSSES)."""
    loss: AdversarialLoss = LOSSES[config.name](config)
    return loss
