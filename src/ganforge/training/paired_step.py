"""The paired image-to-image iteration (pix2pix: Isola et al. 2017, Eq. 4), in the loop's two-step shape.

D step: D learns to call (input, target) real and (input, G(input)) fake. The input reaches D where class labels
reach a conditional D, so the shared D update (its loss, regularizers, passes) runs unchanged; a D that ignores
its condition judges outputs alone. G step: G minimises `adv_weight` times the adversarial loss plus
`l1_weight` times the mean absolute distance to the target, which pins the low frequencies the PatchGAN does
not judge.
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
    update_discriminator,
)


@dataclass(frozen=True)
class PairedCarry:
    """The step's pairs, and G's outputs with their graph when the step runs in one pass."""

    outputs: torch.Tensor | None
    inputs: torch.Tensor
    targets: torch.Tensor
    rounds: int


def discriminator_step(nets: Trainee, objective: Objective, precision: Precision, stats: TickStats,
                       batch: StepBatch, *, cur_nimg: int, d_step: int, keep_fakes: bool) -> PairedCarry:
    """Update D on the targets against G's outputs, each beside its input. Latents are unused: G's noise is its
    dropout (Isola et al., Sec. 3.1)."""
    assert batch.inputs is not None, "the paired scheme trains on a two-sided store"
    one_pass = batch.rounds == 1
    with precision.autocast():
        if one_pass:
            with torch.set_grad_enabled(keep_fakes):
                outputs = nets.trained("G")(batch.inputs)
        else:
            with torch.no_grad():
                outputs = torch.cat([nets.generator(part) for part in split(batch.inputs, batch.rounds)])
        real_in, fake_in = objective.d_input(batch.reals, cur_nimg), objective.d_input(outputs.detach(), cur_nimg)
    update_discriminator(nets, objective, precision, stats, batch.inputs, real_in, fake_in, batch.rounds,
                         d_step=d_step)
    return PairedCarry(outputs if one_pass and keep_fakes else None, batch.inputs, batch.reals, batch.rounds)


def generator_step(nets: Trainee, objective: Objective, precision: Precision, stats: TickStats,
                   carry: PairedCarry, *, cur_nimg: int) -> None:
    nets.discriminator.requires_grad_(False)
    nets.opt_g.zero_grad(set_to_none=True)
    G = nets.trained("G")
    adversarial_sum = torch.zeros((), device=carry.inputs.device)
    l1_sum = torch.zeros((), device=carry.inputs.device)
    for last, weight, (inputs, targets) in passes(carry.rounds, carry.inputs, carry.targets):
        assert inputs is not None and targets is not None
        with gradient_sync(last, G):
            with precision.autocast():
                outputs = carry.outputs if carry.outputs is not None else G(inputs)
                logits = nets.discriminator(objective.d_input(outputs, cur_nimg), inputs)
                adversarial = objective.loss.generator_loss(logits)
                l1 = (outputs.float() - targets).abs().mean()
            precision.backward((objective.adv_weight * adversarial + objective.l1_weight * l1) * weight, "G")
        adversarial_sum = adversarial_sum + adversarial.detach().float() * weight
        l1_sum = l1_sum + l1.detach() * weight
    precision.step(nets.opt_g, "G")
    nets.discriminator.requires_grad_(True)
    stats.add_generator(adversarial_sum)
    stats.add("loss_recon", l1_sum)
