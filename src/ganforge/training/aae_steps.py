"""The adversarial autoencoder's iteration (Makhzani et al. 2016, Sec. 2), in the loop's two-step shape.

D step ("regularization phase", D part): D learns to tell prior samples z ~ N(0, I) ("real") from codes E(x)
("fake"). G step: the encoder and decoder minimise the reconstruction error plus the adversarial loss of E(x)
under D, so the code distribution is pulled to the prior while the autoencoder learns (the paper's
reconstruction and regularization phases, taken together in one update of E and the decoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganforge.training.objective import Objective
from ganforge.training.state import TrainingState
from ganforge.training.steps import update_discriminator


def aae_discriminator_step(state: TrainingState, objective: Objective, reals: torch.Tensor,
                           labels: torch.Tensor | None, latents: torch.Tensor, *,
                           keep_fakes: bool) -> tuple[torch.Tensor, torch.Tensor]:
    assert state.encoder is not None
    with state.precision.autocast(), torch.set_grad_enabled(keep_fakes):
        codes = state.trained("E")(reals)
    # Prior samples are D's "reals", the encoder's codes its "fakes".
    update_discriminator(state, objective, state.trained("D"), None, latents, codes.detach())
    return codes, reals


def aae_generator_step(state: TrainingState, objective: Objective, carry: tuple[torch.Tensor, torch.Tensor],
                       labels: torch.Tensor | None) -> None:
    codes, reals = carry
    state.discriminator.requires_grad_(False)
    with state.precision.autocast():
        adversarial = objective.loss.generator_loss(state.discriminator(codes))
        reconstruction = F.mse_loss(state.trained("G")(codes).float(), reals)
    state.opt_g.zero_grad(set_to_none=True)
    state.precision.backward_and_step(adversarial + state.config.loss.recon_weight * reconstruction, state.opt_g, "G")
    state.discriminator.requires_grad_(True)
    state.stats.add_generator(adversarial)
    state.stats.add("loss_recon", reconstruction)
