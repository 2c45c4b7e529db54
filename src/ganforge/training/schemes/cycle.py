"""The CycleGAN iteration (Zhu et al. 2017, Eq. 3 and Sec. 5.2), in the loop's two-step shape.

D step: D_A learns to call real A images real and F(b) fakes, D_B real B images and G(a); both updates are one
call of the shared D update, each image carrying its domain (0 = A, 1 = B) where a conditional D takes its class,
and the fakes first pass through the history pool (state: checkpoints carry it). G step: G and F minimise the
adversarial losses of both directions, lambda times the L1 cycle losses |F(G(a)) - a| + |G(F(b)) - b|, and
identity_weight * lambda times the identity losses |G(b) - b| + |F(a) - a|, which keep colours where no change
is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganforge.config import TrainConfig
from ganforge.training.objective.adversary import Adversary
from ganforge.training.objective.fake_pool import FakePool
from ganforge.training.objective.losses import pairs_reals
from ganforge.training.precision import Precision
from ganforge.training.schemes.scheme import ImageShape, Parts, Scheme
from ganforge.training.stats import TickStats
from ganforge.training.step_parts import StepBatch, Trainee, update_discriminator, update_generator

POOL = "pool"  # its checkpoint key


@dataclass(frozen=True)
class CycleObjective:
    adversary: Adversary
    pool: FakePool  # the history of fakes each D sees again, with its state
    adv_weight: float = 1.0  # weight of the adversarial terms in G's loss
    cycle_weight: float = 0.0  # lambda of the cycle losses
    identity_weight: float = 0.0  # the identity losses' weight as a fraction of cycle_weight


@dataclass(frozen=True)
class CycleCarry:
    """Both domains' batches, and G's outputs with their graph when the step runs in one pass."""

    outputs: tuple[torch.Tensor, ...] | None  # models.cyclegan.CycleOutputs
    real_a: torch.Tensor
    real_b: torch.Tensor
    rounds: int


def domains_of(count_a: int, count_b: int, device: torch.device) -> torch.Tensor:
    """[count_a + count_b] domain numbers: 0 for the A images first, then 1 for the B images."""
    return torch.cat([torch.zeros(count_a, dtype=torch.long, device=device),
                      torch.ones(count_b, dtype=torch.long, device=device)])


def cycle_terms(outputs: tuple[torch.Tensor, ...], real_a: torch.Tensor, real_b: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(cycle, identity) L1 sums over both directions, unweighted, from `CycleOutputs`."""
    _, _, cycled_a, cycled_b, same_b, same_a = outputs
    cycle = (cycled_a.float() - real_a).abs().mean() + (cycled_b.float() - real_b).abs().mean()
    identity = (same_b.float() - real_b).abs().mean() + (same_a.float() - real_a).abs().mean()
    return cycle, identity


def discriminator_step(nets: Trainee, objective: CycleObjective, precision: Precision, stats: TickStats,
                       batch: StepBatch, *, cur_nimg: int, d_step: int, keep_fakes: bool) -> CycleCarry:
    """Update D_A and D_B on real images against (pooled) fakes. Latents are unused. Passes split each domain's
    batch apart, so with several passes G runs again in the G step."""
    assert batch.inputs is not None, "the cycle scheme trains on a two-sided store"
    adversary, pool = objective.adversary, objective.pool
    real_a, real_b = batch.inputs, batch.reals
    one_pass = batch.rounds == 1
    with precision.autocast(), torch.set_grad_enabled(one_pass and keep_fakes):
        outputs = nets.trained("G")(real_a, real_b)
    fake_b, fake_a = outputs[0].detach(), outputs[1].detach()
    with precision.autocast():
        real_in = adversary.d_input(torch.cat([real_a, real_b]), cur_nimg)
        fake_in = adversary.d_input(torch.cat([pool.query(fake_a, 0), pool.query(fake_b, 1)]), cur_nimg)
    update_discriminator(nets, adversary, precision, stats, domains_of(len(real_a), len(real_b), real_a.device),
                         real_in, fake_in, batch.rounds, d_step=d_step)
    return CycleCarry(tuple(outputs) if one_pass and keep_fakes else None, real_a, real_b, batch.rounds)


def generator_step(nets: Trainee, objective: CycleObjective, precision: Precision, stats: TickStats,
                   carry: CycleCarry, *, cur_nimg: int) -> None:
    G, adversary = nets.trained("G"), objective.adversary

    def pass_loss(last: bool, weight: float, parts: tuple[torch.Tensor | None, ...]
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real_a, real_b = parts
        assert real_a is not None and real_b is not None
        outputs = carry.outputs if carry.outputs is not None else G(real_a, real_b)
        fake_b, fake_a = outputs[0], outputs[1]
        domains = domains_of(len(fake_a), len(fake_b), fake_a.device)
        logits = nets.discriminator(adversary.d_input(torch.cat([fake_a, fake_b]), cur_nimg), domains)
        real_logits: list[torch.Tensor | None] = [None, None]
        if pairs_reals(adversary.loss):  # D_A judges F(b) beside a real A image, D_B G(a) beside a real B one
            with torch.no_grad():
                real = nets.discriminator(adversary.d_input(torch.cat([real_a, real_b]), cur_nimg), domains)
            real_logits = [real[: len(fake_a)], real[len(fake_a):]]
        # Each direction's adversarial loss on its own D's verdicts, summed as in Eq. 3.
        adversarial = (adversary.loss.generator_loss(logits[: len(fake_a)], real_logits[0])
                       + adversary.loss.generator_loss(logits[len(fake_a):], real_logits[1]))
        cycle, identity = cycle_terms(outputs, real_a, real_b)
        total = objective.adv_weight * adversarial + objective.cycle_weight * (cycle + objective.identity_weight
                                                                               * identity)
        return total * weight, {"loss_g": adversarial, "loss_recon": cycle}

    update_generator(nets, precision, stats, carry.rounds, (carry.real_a, carry.real_b), pass_loss)


def build_parts(config: TrainConfig, image_shape: ImageShape, device: torch.device) -> Parts:
    return {POOL: FakePool(config.loss.pool_size, image_shape, device)}


def build_objective(config: TrainConfig, adversary: Adversary, parts: Parts, device: torch.device) -> CycleObjective:
    pool = parts[POOL]
    assert isinstance(pool, FakePool)
    return CycleObjective(adversary, pool, config.loss.adv_weight, config.loss.cycle_weight,
                          config.loss.identity_weight)


SCHEME = Scheme("cycle", discriminator_step, generator_step, build_parts, build_objective,
                part_keys=frozenset({POOL}))
