"""The SRGAN iteration (Ledig et al. 2017, Sec. 2.2 and 3.2), in the loop's two-step shape, with its two phases.

Pre-training (the first `pretrain_nimg` images): G alone learns the pixel MSE to the targets (SRResNet), and D
waits, so the adversarial phase starts from a G that already upsamples. Then D learns to call targets real and
G's outputs fake (it judges high-resolution images alone), and G minimises `content_weight` times the content
loss plus `adv_weight` (1e-3 in the paper, Eq. 3) times the adversarial loss.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganforge.config import TrainConfig
from ganforge.training.objective.adversary import Adversary
from ganforge.training.objective.content_loss import ContentLoss, build_content_loss
from ganforge.training.precision import Precision
from ganforge.training.schemes.scheme import Parts, Scheme, no_parts, with_adversary_length
from ganforge.training.stats import TickStats
from ganforge.training.step_parts import StepBatch, Trainee, split, update_discriminator, update_generator


@dataclass(frozen=True)
class SrObjective:
    adversary: Adversary
    content: ContentLoss  # the content loss of G's adversarial phase (a frozen network: not state)
    adv_weight: float = 1.0
    content_weight: float = 1.0
    pretrain_nimg: int = 0  # images of G-alone pixel-MSE training before D joins


@dataclass(frozen=True)
class SrCarry:
    outputs: torch.Tensor | None  # G(inputs) with its graph, when the step runs in one pass
    inputs: torch.Tensor
    targets: torch.Tensor
    rounds: int
    adversarial: bool  # past pre-training


def discriminator_step(nets: Trainee, objective: SrObjective, precision: Precision, stats: TickStats,
                       batch: StepBatch, *, cur_nimg: int, d_step: int, keep_fakes: bool) -> SrCarry:
    """Update D on the targets against G's outputs, once pre-training is over. Latents are unused."""
    assert batch.inputs is not None, "the super-resolution scheme trains on a two-sided store"
    adversary = objective.adversary
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
            real_in, fake_in = adversary.d_input(batch.reals, cur_nimg), adversary.d_input(outputs.detach(), cur_nimg)
        update_discriminator(nets, adversary, precision, stats, None, real_in, fake_in, batch.rounds, d_step=d_step)
    kept = outputs if one_pass and keep_fakes else None
    return SrCarry(kept, batch.inputs, batch.reals, batch.rounds, adversarial)


def generator_step(nets: Trainee, objective: SrObjective, precision: Precision, stats: TickStats, carry: SrCarry, *,
                   cur_nimg: int) -> None:
    G = nets.trained("G")

    def pass_loss(last: bool, weight: float, parts: tuple[torch.Tensor | None, ...]
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs, targets = parts
        assert inputs is not None and targets is not None
        outputs = carry.outputs if carry.outputs is not None else G(inputs)
        if not carry.adversarial:  # SRResNet pre-training: pixels only
            content = F.mse_loss(outputs.float(), targets)
            return content * weight, {"loss_recon": content}
        content = objective.content(outputs, targets)
        adversarial = objective.adversary.generator_loss(nets.discriminator, outputs, targets, cur_nimg)
        total = objective.content_weight * content + objective.adv_weight * adversarial
        return total * weight, {"loss_g": adversarial, "loss_recon": content}

    update_generator(nets, precision, stats, carry.rounds, (carry.inputs, carry.targets), pass_loss)


def build_objective(config: TrainConfig, adversary: Adversary, parts: Parts, device: torch.device) -> SrObjective:
    return SrObjective(adversary, build_content_loss(config.loss.content_loss, device), config.loss.adv_weight,
                       config.loss.content_weight, pretrain_nimg(config))


def pretrain_nimg(config: TrainConfig) -> int:
    return int(round(config.loss.pretrain * config.kimg * 1000))


def with_run_length(objective: SrObjective, config: TrainConfig) -> SrObjective:
    """Pre-training lasts its share of the run's (planned) length, and instance noise fades over it."""
    objective = with_adversary_length(objective, config)
    nimg = pretrain_nimg(config)
    return objective if objective.pretrain_nimg == nimg else dataclasses.replace(objective, pretrain_nimg=nimg)


SCHEME = Scheme("super-resolution", discriminator_step, generator_step, no_parts, build_objective,
                with_run_length=with_run_length)
