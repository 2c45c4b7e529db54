"""The SRGAN iteration (Ledig et al. 2017, Sec. 2.2 and 3.2), in the loop's two-step shape, with its two phases.

Pre-training (the first `pretrain_nimg` images): G alone learns the pixel MSE to the targets (SRResNet), and D
waits, so the adversarial phase starts from a G that already upsamples. Then D learns to call targets real and
G's outputs fake (it judges high-resolution images alone), and G minimises `content_weight` times the content
loss plus `adv_weight` (1e-3 in the paper, Eq. 3) times the adversarial loss.
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
class SrCarry:
    outputs: torch.Tensor | None  # G(inputs) with its graph, when the step runs in one pass
    inputs: torch.Tensor
    targets: torch.Tensor
    rounds: int
    adversarial: bool  # past pre-training


def discriminator_step(nets: Trainee, objective: Objective, precision: Precision, stats: TickStats,
                       batch: StepBatch, *, cur_nimg: int, d_step: int, keep_fakes: bool) -> SrCarry:
    """Update D on the targets against G's outputs, once pre-training is over. Latents are unused."""
    assert batch.inputs is not None, "the super-resolution scheme trains on a two-sided store"
    adversarial = cur_nimg >= objective.pretrain_nimg
    one_pass = batch.rounds == 1
    with precision.autocast():
        if one_pass:
            with torch.set_grad_enabled(keep_fakes):
                outputs = nets.trained("G")(batch.inputs)
        elif adversarial:
            with torch.no_grad():
                outputs = torch.cat([nets.generator(part) for part in split(batch.inputs, batch.rounds)])
    if adversarial:
        with precision.autocast():
            real_in, fake_in = objective.d_input(batch.reals, cur_nimg), objective.d_input(outputs.detach(), cur_nimg)
        update_discriminator(nets, objective, precision, stats, None, real_in, fake_in, batch.rounds, d_step=d_step)
    kept = outputs if one_pass and keep_fakes else None
    return SrCarry(kept, batch.inputs, batch.reals, batch.rounds, adversarial)


def generator_step(nets: Trainee, objective: Objective, precision: Precision, stats: TickStats, carry: SrCarry, *,
                   cur_nimg: int) -> None:
    assert objective.content is not None
    nets.discriminator.requires_grad_(False)
    nets.opt_g.zero_grad(set_to_none=True)
    G = nets.trained("G")
    adversarial_sum = torch.zeros((), device=carry.inputs.device)
    content_sum = torch.zeros((), device=carry.inputs.device)
    for last, weight, (inputs, targets) in passes(carry.rounds, carry.inputs, carry.targets):
        assert inputs is not None and targets is not None
        with gradient_sync(last, G):
            with precision.autocast():
                outputs = carry.outputs if carry.outputs is not None else G(inputs)
                if carry.adversarial:
                    content = objective.content(outputs, targets)
                    adversarial = objective.loss.generator_loss(
                        nets.discriminator(objective.d_input(outputs, cur_nimg)))
                    total = objective.content_weight * content + objective.adv_weight * adversarial
                else:  # SRResNet pre-training: pixels only
                    content = F.mse_loss(outputs.float(), targets)
                    adversarial, total = torch.zeros((), device=inputs.device), content
            precision.backward(total * weight, "G")
        adversarial_sum = adversarial_sum + adversarial.detach().float() * weight
        content_sum = content_sum + content.detach().float() * weight
    precision.step(nets.opt_g, "G")
    nets.discriminator.requires_grad_(True)
    if carry.adversarial:
        stats.add_generator(adversarial_sum)
    stats.add("loss_recon", content_sum)
