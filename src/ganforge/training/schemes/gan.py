"""The GAN iteration: one D update and one G update, shared by every noise-to-image model, loss and trick.

What varies between GAN recipes enters through the objective: the adversary (loss, D's regularizers, the
augmentation of everything D sees, instance noise), (FastGAN) D's self-supervised reconstruction of the reals,
and (StyleGAN2) G's lazy path-length penalty, whose running mean is state. Each update may run in several passes
over parts of the batch (gradient accumulation, `--batch-gpu`) and still take one optimizer step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ganforge.config import TrainConfig
from ganforge.training.objective.adversary import Adversary
from ganforge.training.objective.mode_seeking import mode_seeking_loss
from ganforge.training.objective.path_length import PathLengthPenalty
from ganforge.training.precision import Precision
from ganforge.training.schemes.scheme import ImageShape, Parts, Scheme
from ganforge.training.stats import TickStats
from ganforge.training.step_parts import (
    StepBatch,
    Trainee,
    split,
    split_optional,
    uncompiled,
    update_discriminator,
    update_generator,
)

PATH_LENGTH = "path_length"  # its checkpoint key


@dataclass(frozen=True)
class GanObjective:
    adversary: Adversary
    reconstruct_reals: bool = False
    path_length: PathLengthPenalty | None = None  # G's lazy path-length penalty (style-based G), with its state
    mode_seeking: float = 0.0  # the weight of MSGAN's term in G's loss


@dataclass(frozen=True)
class GanCarry:
    """What the G step takes from the D step: the fakes with G's graph (one pass), or the latents to redo them,
    and the reals D saw (a relativistic loss judges each fake beside one)."""

    fakes: torch.Tensor | None
    latents: torch.Tensor
    labels: torch.Tensor | None
    rounds: int
    reals: torch.Tensor | None = None


def discriminator_step(nets: Trainee, objective: GanObjective, precision: Precision, stats: TickStats,
                       batch: StepBatch, *, cur_nimg: int, d_step: int, keep_fakes: bool) -> GanCarry:
    """Update D on a real and a fake batch (separate batches, so BatchNorm never mixes them: Radford et al.).

    With `keep_fakes` and one pass, G's forward pass keeps its graph and the fakes go to the G step, so an
    iteration runs G forward once (as the PyTorch DCGAN example does). With several passes, keeping every
    pass's graph would defeat their purpose, so G runs again, pass by pass, in the G step.
    """
    adversary, one_pass = objective.adversary, batch.rounds == 1
    with precision.autocast():
        if one_pass:
            with torch.set_grad_enabled(keep_fakes):
                fakes = nets.trained("G")(batch.latents, batch.labels)
        else:
            with torch.no_grad():
                fakes = torch.cat([nets.generator(z, y) for z, y in
                                   zip(split(batch.latents, batch.rounds), split_optional(batch.labels, batch.rounds),
                                       strict=True)])
        real_in, fake_in = adversary.d_input(batch.reals, cur_nimg), adversary.d_input(fakes.detach(), cur_nimg)
    update_discriminator(nets, adversary, precision, stats, batch.labels, real_in, fake_in, batch.rounds,
                         d_step=d_step, reconstruct_reals=objective.reconstruct_reals)
    return GanCarry(fakes if one_pass and keep_fakes else None, batch.latents, batch.labels, batch.rounds, batch.reals)


def generator_step(nets: Trainee, objective: GanObjective, precision: Precision, stats: TickStats, carry: GanCarry,
                   *, cur_nimg: int) -> None:
    """Update G so that D calls its fakes real; D sees them as it sees every input (augmented, noised). A lazy
    path-length penalty, when the objective has one and it is due, joins the last pass's loss, and MSGAN's
    mode-seeking term, when weighted, every pass's."""
    G = nets.trained("G")
    path_length = objective.path_length if objective.path_length is not None and objective.path_length.due() else None

    def pass_loss(last: bool, weight: float, parts: tuple[torch.Tensor | None, ...]
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        latents, labels, reals = parts
        assert latents is not None
        fakes = carry.fakes if carry.fakes is not None else G(latents, labels)
        loss = objective.adversary.generator_loss(lambda x: nets.discriminator(x, labels), fakes, reals, cur_nimg)
        total, logged = loss * weight, {"loss_g": loss}
        if objective.mode_seeking > 0:
            logged["mode_seeking"] = mode_seeking_loss(fakes, latents, labels)
            total = total + objective.mode_seeking * logged["mode_seeking"] * weight
        if last and path_length is not None:
            with uncompiled(nets.generator):
                total = total + path_length.penalty(G, latents, labels)
        return total, logged

    update_generator(nets, precision, stats, carry.rounds, (carry.latents, carry.labels, carry.reals), pass_loss,
                     after_step=objective.path_length.step_done if objective.path_length is not None else None)


def build_parts(config: TrainConfig, image_shape: ImageShape, device: torch.device) -> Parts:
    if config.loss.pl_weight <= 0:
        return {}
    return {PATH_LENGTH: PathLengthPenalty(config.loss.pl_weight, config.loss.pl_every, device)}


def build_objective(config: TrainConfig, adversary: Adversary, parts: Parts, device: torch.device) -> GanObjective:
    path_length = parts.get(PATH_LENGTH)
    assert path_length is None or isinstance(path_length, PathLengthPenalty)
    return GanObjective(adversary, False, path_length, config.loss.mode_seeking)


def build_selfsupervised_objective(config: TrainConfig, adversary: Adversary, parts: Parts,
                                   device: torch.device) -> GanObjective:
    return dataclasses.replace(build_objective(config, adversary, parts, device), reconstruct_reals=True)


SCHEME = Scheme("gan", discriminator_step, generator_step, build_parts, build_objective,
                part_keys=frozenset({PATH_LENGTH}))
# FastGAN's D also rebuilds the reals it sees (Liu et al. 2021, Sec. 3.2).
SELF_SUPERVISED = dataclasses.replace(SCHEME, name="gan-selfsupervised", build_objective=build_selfsupervised_objective,
                                      reconstruct_reals=True)
