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

from ganforge.training.precision import Precision
from ganforge.training.stats import TickStats
from ganforge.training.step_parts import (
    Objective,
    StepBatch,
    Trainee,
    gradient_sync,
    passes,
    split,
    update_discriminator,
)


@dataclass(frozen=True)
class AaeCarry:
    """The reals, and their codes with the encoder's graph when the step runs in one pass."""

    codes: torch.Tensor | None
    reals: torch.Tensor
    rounds: int


def discriminator_step(nets: Trainee, objective: Objective, precision: Precision, stats: TickStats,
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
    update_discriminator(nets, objective, precision, stats, None, batch.latents, codes.detach(), batch.rounds,
                         d_step=d_step)
    return AaeCarry(codes if one_pass and keep_fakes else None, batch.reals, batch.rounds)


def generator_step(nets: Trainee, objective: Objective, precision: Precision, stats: TickStats, carry: AaeCarry, *,
                   cur_nimg: int) -> None:
    nets.discriminator.requires_grad_(False)
    nets.opt_g.zero_grad(set_to_none=True)
    encoder, decoder = nets.trained("E"), nets.trained("G")
    adversarial_sum = torch.zeros((), device=carry.reals.device)
    reconstruction_sum = torch.zeros((), device=carry.reals.device)
    for last, weight, (reals,) in passes(carry.rounds, carry.reals):
        assert reals is not None
        with gradient_sync(last, encoder, decoder):
            with precision.autocast():
                codes = carry.codes if carry.codes is not None else encoder(reals)
                adversarial = objective.loss.generator_loss(nets.discriminator(codes))
                reconstruction = F.mse_loss(decoder(codes).float(), reals)
            precision.backward((adversarial + objective.recon_weight * reconstruction) * weight, "G")
        adversarial_sum = adversarial_sum + adversarial.detach().float() * weight
        reconstruction_sum = reconstruction_sum + reconstruction.detach() * weight
    precision.step(nets.opt_g, "G")
    nets.discriminator.requires_grad_(True)
    stats.add_generator(adversarial_sum)
    stats.add("loss_recon", reconstruction_sum)
