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

from ganforge.config import TrainConfig
from ganforge.training.objective.adversary import Adversary
from ganforge.training.precision import Precision
from ganforge.training.schemes.scheme import Parts, Scheme, no_parts
from ganforge.training.stats import TickStats
from ganforge.training.step_parts import StepBatch, Trainee, split, update_discriminator, update_generator


@dataclass(frozen=True)
class PairedObjective:
    adversary: Adversary
    adv_weight: float = 1.0  # weight of the adversarial term in G's loss
    l1_weight: float = 0.0  # weight of G's L1 distance to the target (pix2pix's lambda)


@dataclass(frozen=True)
class PairedCarry:
    """The step's pairs, and G's outputs with their graph when the step runs in one pass."""

    outputs: torch.Tensor | None
    inputs: torch.Tensor
    targets: torch.Tensor
    rounds: int


def discriminator_step(nets: Trainee, objective: PairedObjective, precision: Precision, stats: TickStats,
                       batch: StepBatch, *, cur_nimg: int, d_step: int, keep_fakes: bool) -> PairedCarry:
    """Update D on the targets against G's outputs, each beside its input. Latents are unused: G's noise is its
    dropout (Isola et al., Sec. 3.1)."""
    assert batch.inputs is not None, "the paired scheme trains on a two-sided store"
    adversary, one_pass = objective.adversary, batch.rounds == 1
    with precision.autocast():
        if one_pass:
            with torch.set_grad_enabled(keep_fakes):
                outputs = nets.trained("G")(batch.inputs)
        else:
            with torch.no_grad():
                outputs = torch.cat([nets.generator(part) for part in split(batch.inputs, batch.rounds)])
        real_in, fake_in = adversary.d_input(batch.reals, cur_nimg), adversary.d_input(outputs.detach(), cur_nimg)
    update_discriminator(nets, adversary, precision, stats, batch.inputs, real_in, fake_in, batch.rounds,
                         d_step=d_step)
    return PairedCarry(outputs if one_pass and keep_fakes else None, batch.inputs, batch.reals, batch.rounds)


def generator_step(nets: Trainee, objective: PairedObjective, precision: Precision, stats: TickStats,
                   carry: PairedCarry, *, cur_nimg: int) -> None:
    G = nets.trained("G")

    def pass_loss(last: bool, weight: float, parts: tuple[torch.Tensor | None, ...]
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs, targets = parts
        assert inputs is not None and targets is not None
        outputs = carry.outputs if carry.outputs is not None else G(inputs)
        adversarial = objective.adversary.generator_loss(lambda x: nets.discriminator(x, inputs), outputs, targets,
                                                         cur_nimg)
        l1 = (outputs.float() - targets).abs().mean()
        return ((objective.adv_weight * adversarial + objective.l1_weight * l1) * weight,
                {"loss_g": adversarial, "loss_recon": l1})

    update_generator(nets, precision, stats, carry.rounds, (carry.inputs, carry.targets), pass_loss)


def build_objective(config: TrainConfig, adversary: Adversary, parts: Parts, device: torch.device) -> PairedObjective:
    return PairedObjective(adversary, config.loss.adv_weight, config.loss.l1_weight)


SCHEME = Scheme("paired", discriminator_step, generator_step, no_parts, build_objective)
