"""The GAN iteration: one D update and one G update, shared by every GAN model, loss and trick.

What varies between GAN recipes enters only through the run's `Objective`: the adversarial loss, D's
regularizers, the augmentation applied to everything D sees, and instance noise.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.training.objective import Objective
from ganforge.training.state import TrainingState


def gan_discriminator_step(state: TrainingState, objective: Objective, reals: torch.Tensor, labels: torch.Tensor | None,
                       latents: torch.Tensor, *, keep_fakes: bool) -> torch.Tensor:
    """Update D on a real and a fake batch (separate batches, so BatchNorm never mixes them: Radford et al.).

    With `keep_fakes`, G's forward pass keeps its graph and the fakes are returned for the G step, so an
    iteration runs G forward once (as the PyTorch DCGAN example does).
    """
    nimg = state.counters.cur_nimg
    with state.precision.autocast():
        with torch.set_grad_enabled(keep_fakes):
            fakes = state.trained("G")(latents, labels)
        real_in, fake_in = objective.d_input(reals, nimg), objective.d_input(fakes.detach(), nimg)
    update_discriminator(state, objective, state.trained("D"), labels, real_in, fake_in)
    return fakes


def update_discriminator(state: TrainingState, objective: Objective, D: nn.Module, labels: torch.Tensor | None,
                         real_in: torch.Tensor, fake_in: torch.Tensor) -> None:
    """D's adversarial loss plus its regularizers' penalties, one optimizer step, its constraints, the stats.
    Shared by every scheme: what D sees as "real" and "fake" (images, or codes for the AAE) is the caller's."""
    def critic(x: torch.Tensor) -> torch.Tensor:
        return D(x, labels)

    with state.precision.autocast():
        real_logits, fake_logits = critic(real_in), critic(fake_in)
        objective.augment.observe_real_logits(real_logits.detach())
        d_loss = objective.loss.discriminator_loss(real_logits, fake_logits)
        total = d_loss
        for regularizer in objective.regularizers:
            term = regularizer.penalty(critic, real_in, fake_in, real_logits, state.counters.d_steps)
            if term is not None:
                total = total + term
    state.opt_d.zero_grad(set_to_none=True)
    state.precision.backward_and_step(total, state.opt_d, "D")
    for regularizer in objective.regularizers:
        regularizer.after_step(D)
    state.counters.d_steps += 1
    state.stats.add_discriminator(d_loss, real_logits, fake_logits)


def gan_generator_step(state: TrainingState, objective: Objective, fakes: torch.Tensor,
                   labels: torch.Tensor | None) -> None:
    # D's weights need no gradients here; skipping them saves ~10 % of the G step (benchmarked on CPU).
    state.discriminator.requires_grad_(False)
    with state.precision.autocast():
        fake_logits = state.discriminator(objective.d_input(fakes, state.counters.cur_nimg), labels)
        g_loss = objective.loss.generator_loss(fake_logits)
    state.opt_g.zero_grad(set_to_none=True)
    state.precision.backward_and_step(g_loss, state.opt_g, "G")
    state.discriminator.requires_grad_(True)
    state.stats.add_generator(g_loss)

