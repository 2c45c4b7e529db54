"""The GAN iteration: one D update and one G update, shared by every GAN model, loss and trick.

What varies between GAN recipes enters only through the run's `Objective`: the adversarial loss, D's
regularizers, the augmentation applied to everything D sees, instance noise, and (FastGAN) D's self-supervised
reconstruction of the reals. Each update may run in several passes over parts of the batch (gradient
accumulation, `--batch-gpu`) and still take one optimizer step; `step_parts` holds those mechanics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganforge.training.precision import Precision
from ganforge.training.stats import TickStats
from ganforge.training.step_parts import (
    Objective,
    StepBatch,
    Trainee,
    gradient_sync,
    passes,
    split,
    split_optional,
    uncompiled,
    update_discriminator,
)


@dataclass(frozen=True)
class GanCarry:
    """What the G step takes from the D step: the fakes with G's graph (one pass), or the latents to redo them."""

    fakes: torch.Tensor | None
    latents: torch.Tensor
    labels: torch.Tensor | None
    rounds: int


def discriminator_step(nets: Trainee, objective: Objective, precision: Precision, stats: TickStats,
                       batch: StepBatch, *, cur_nimg: int, d_step: int, keep_fakes: bool) -> GanCarry:
    """Update D on a real and a fake batch (separate batches, so BatchNorm never mixes them: Radford et al.).

    With `keep_fakes` and one pass, G's forward pass keeps its graph and the fakes go to the G step, so an
    iteration runs G forward once (as the PyTorch DCGAN example does). With several passes, keeping every
    pass's graph would defeat their purpose, so G runs again, pass by pass, in the G step.
    """
    one_pass = batch.rounds == 1
    with precision.autocast():
        if one_pass:
            with torch.set_grad_enabled(keep_fakes):
                fakes = nets.trained("G")(batch.latents, batch.labels)
        else:
            with torch.no_grad():
                fakes = torch.cat([nets.generator(z, y) for z, y in
                                   zip(split(batch.latents, batch.rounds), split_optional(batch.labels, batch.rounds),
                                       strict=True)])
        real_in, fake_in = objective.d_input(batch.reals, cur_nimg), objective.d_input(fakes.detach(), cur_nimg)
    update_discriminator(nets, objective, precision, stats, batch.labels, real_in, fake_in, batch.rounds,
                         d_step=d_step)
    return GanCarry(fakes if one_pass and keep_fakes else None, batch.latents, batch.labels, batch.rounds)


def generator_step(nets: Trainee, objective: Objective, precision: Precision, stats: TickStats, carry: GanCarry, *,
                   cur_nimg: int) -> None:
    """Update G so that D calls its fakes real; D sees them as it sees every input (augmented, noised). A lazy
    path-length penalty, when the objective has one and it is due, joins the last pass's loss."""
    # D's weights need no gradients here; skipping them saves ~10 % of the G step (benchmarked on CPU).
    nets.discriminator.requires_grad_(False)
    nets.opt_g.zero_grad(set_to_none=True)
    G = nets.trained("G")
    g_loss = torch.zeros((), device=carry.latents.device)
    path_length = objective.path_length if objective.path_length is not None and objective.path_length.due() else None
    for last, weight, (latents, labels) in passes(carry.rounds, carry.latents, carry.labels):
        assert latents is not None
        with gradient_sync(last, G):
            with precision.autocast():
                fakes = carry.fakes if carry.fakes is not None else G(latents, labels)
                fake_logits = nets.discriminator(objective.d_input(fakes, cur_nimg), labels)
                loss = objective.loss.generator_loss(fake_logits)
                total = loss * weight
                if last and path_length is not None:
                    with uncompiled(nets.generator):
                        total = total + path_length.penalty(G, latents, labels)
            precision.backward(total, "G")
        g_loss = g_loss + loss.detach().float() * weight
    precision.step(nets.opt_g, "G")
    if objective.path_length is not None:
        objective.path_length.step_done()
    nets.discriminator.requires_grad_(True)
    stats.add_generator(g_loss)
