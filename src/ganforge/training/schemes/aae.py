"""The adversarial autoencoder's iteration (Makhzani et al. 2016, Sec. 2), in the loop's two-step shape.

D step ("regularization phase", D part): D learns to tell prior samples z ~ N(0, I) ("real") from codes E(x)
("fake"). G step: the encoder and decoder minimise `recon_weight` times the reconstruction error plus the
adversarial loss of E(x) under D, so the code distribution is pulled to the prior while the autoencoder learns
(the paper's reconstruction and regularization phases, taken together in one update of E and the decoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganforge.config import TrainConfig
from ganforge.training.objective.adversary import Adversary
from ganforge.training.objective.losses import pairs_reals
from ganforge.training.precision import Precision
from ganforge.training.schemes.scheme import Parts, Scheme, no_parts
from ganforge.training.stats import TickStats
from ganforge.training.step_parts import StepBatch, Trainee, split, update_discriminator, update_generator


@dataclass(frozen=True)
class AaeObjective:
    adversary: Adversary
    recon_weight: float = 1.0  # weight of the reconstruction error in E and G's loss


@dataclass(frozen=True)
class AaeCarry:
    """The reals, and their codes with the encoder's graph when the step runs in one pass; the prior samples D
    saw as real (a relativistic loss judges each code beside one)."""

    codes: torch.Tensor | None
    reals: torch.Tensor
    rounds: int
    prior: torch.Tensor | None = None


def discriminator_step(nets: Trainee, objective: AaeObjective, precision: Precision, stats: TickStats,
                       batch: StepBatch, *, cur_nimg: int, d_step: int, keep_fakes: bool) -> AaeCarry:
    """Update D on prior samples (its "reals", `batch.latents`) against the codes of `batch.reals` (its
    "fakes"). Codes are not augmented or noised: `cur_nimg` is unused."""
    assert nets.encoder is not None
    one_pass = batch.rounds == 1
    with precision.autocast():
        if one_pass:
            with torch.set_grad_enabled(keep_fakes):
                codes = nets.trained("E")(batch.reals)
        else:
            with torch.no_grad():
                codes = torch.cat([nets.encoder(part) for part in split(batch.reals, batch.rounds)])
    update_discriminator(nets, objective.adversary, precision, stats, None, batch.latents, codes.detach(),
                         batch.rounds, d_step=d_step)
    return AaeCarry(codes if one_pass and keep_fakes else None, batch.reals, batch.rounds, batch.latents)


def generator_step(nets: Trainee, objective: AaeObjective, precision: Precision, stats: TickStats, carry: AaeCarry,
                   *, cur_nimg: int) -> None:
    encoder, decoder = nets.trained("E"), nets.trained("G")
    loss = objective.adversary.loss

    def pass_loss(last: bool, weight: float, parts: tuple[torch.Tensor | None, ...]
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        reals, prior = parts
        assert reals is not None
        codes = carry.codes if carry.codes is not None else encoder(reals)
        # Codes and prior samples reach D as they are: no augmentation or noise applies to them.
        if pairs_reals(loss):
            with torch.no_grad():
                prior_logits = nets.discriminator(prior)
            adversarial = loss.generator_loss(nets.discriminator(codes), prior_logits)
        else:
            adversarial = loss.generator_loss(nets.discriminator(codes))
        reconstruction = F.mse_loss(decoder(codes).float(), reals)
        return ((adversarial + objective.recon_weight * reconstruction) * weight,
                {"loss_g": adversarial, "loss_recon": reconstruction})

    update_generator(nets, precision, stats, carry.rounds, (carry.reals, carry.prior), pass_loss, roles=("E", "G"))


def build_objective(config: TrainConfig, adversary: Adversary, parts: Parts, device: torch.device) -> AaeObjective:
    return AaeObjective(adversary, config.loss.recon_weight)


SCHEME = Scheme("aae", discriminator_step, generator_step, no_parts, build_objective)
