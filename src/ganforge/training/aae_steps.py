"""The adversarial autoencoder's iteration (Makhzani et al. 2016, Sec. 2), in the loop's two-step shape.

D step ("regularization phase", D part): D learns to tell prior samples z ~ N(0, I) ("real") from codes E(x)
("fake"). G step: the encoder and decoder minimise the reconstruction error plus the adversarial loss of E(x)
under D, so the code distribution is pulled to the prior while the autoencoder learns (the paper's
reconstruction and regularization phases, taken together in one update of E and the decoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganforge.training.accumulation import StepBatch, gradient_sync, passes, split
from ganforge.training.objective import Objective
from ganforge.training.state import TrainingState
from ganforge.training.steps import update_discriminator


@dataclass(frozen=True)
class AaeCarry:
    """The reals, and their codes with the encoder's graph when the step runs in one pass."""

    codes: torch.Tensor | None
    reals: torch.Tensor
    rounds: int


def aae_discriminator_step(state: TrainingState, objective: Objective, batch: StepBatch, *,
                           keep_fakes: bool) -> AaeCarry:
    assert state.encoder is not None
    one_pass = batch.rounds == 1
    with state.precision.autocast():
        if one_pass:
            with torch.set_grad_enabled(keep_fakes):
                codes = state.trained("E")(batch.reals)
        else:
            with torch.no_grad():
                codes = torch.cat([state.encoder(part) for part in split(batch.reals, batch.rounds)])
    # Prior samples are D's "reals", the encoder's codes its "fakes".
    update_discriminator(state, objective, state.trained("D"), None, batch.latents, codes.detach(), batch.rounds)
    return AaeCarry(codes if one_pass and keep_fakes else None, batch.reals, batch.rounds)


def aae_generator_step(state: TrainingState, objective: Objective, carry: AaeCarry) -> None:
    state.discriminator.requires_grad_(False)
    state.opt_g.zero_grad(set_to_none=True)
    encoder, decoder = state.trained("E"), state.trained("G")
    adversarial_sum = torch.zeros((), device=carry.reals.device)
    reconstruction_sum = torch.zeros((), device=carry.reals.device)
    for last, weight, (reals,) in passes(carry.rounds, carry.reals):
        assert reals is not None
        with gradient_sync(last, encoder, decoder):
            with state.precision.autocast():
                codes = carry.codes if carry.codes is not None else encoder(reals)
                adversarial = objective.loss.generator_loss(state.discriminator(codes))
                reconstruction = F.mse_loss(decoder(codes).float(), reals)
            state.precision.backward((adversarial + state.config.loss.recon_weight * reconstruction) * weight, "G")
        adversarial_sum = adversarial_sum + adversarial.detach().float() * weight
        reconstruction_sum = reconstruction_sum + reconstruction.detach() * weight
    state.precision.step(state.opt_g, "G")
    state.discriminator.requires_grad_(True)
    state.stats.add_generator(adversarial_sum)
    state.stats.add("loss_recon", reconstruction_sum)
