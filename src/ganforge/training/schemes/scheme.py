"""What a training scheme is: how it builds its objective and its stateful parts, and its two steps.

A scheme (one module each beside this file) declares a `Scheme` the way each model module declares its `FAMILY`.
The loop, the run's state, the checkpoint check and batch fitting only iterate over what a scheme declares: a new
scheme, loss or penalty is written in its own module and listed in `schemes/__init__.py`, nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ganforge.config import TrainConfig
from ganforge.training.objective.adversary import Adversary, instance_noise_nimg
from ganforge.training.step_parts import DiscriminatorStep, GeneratorStep

ImageShape = tuple[int, int, int]


class StatefulPart(Protocol):
    """A piece of an objective whose state a checkpoint carries (CycleGAN's history pool, the path-length mean),
    saved under its key in the scheme's `parts`: tensors named by the part, the rest as JSON."""

    what: str  # what a message calls it, e.g. "history pool"
    # Whether every checkpoint of a run that has the part holds it (False: it may be switched on at resume and
    # start fresh, as --pl-weight may).
    required_on_resume: bool

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]: ...

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None: ...

    def check(self, meta: Any) -> None:
        """Raise CheckpointError with a phrase naming what is wrong with a checkpoint's JSON for this part."""
        ...


Parts = dict[str, StatefulPart]


def with_adversary_length(objective: Any, config: TrainConfig) -> Any:
    """`objective` (a dataclass holding an `adversary`) with instance noise fading over the run's length."""
    nimg = instance_noise_nimg(config.loss, config.kimg)
    if objective.adversary.instance_noise_nimg == nimg:
        return objective
    return dataclasses.replace(objective, adversary=dataclasses.replace(objective.adversary, instance_noise_nimg=nimg))


@dataclass(frozen=True)
class Scheme:
    name: str  # what a model family's `scheme` names
    discriminator_step: DiscriminatorStep
    generator_step: GeneratorStep
    # (config, the shape of the images D sees, device) -> the stateful parts this run needs, by checkpoint key
    build_parts: Callable[[TrainConfig, ImageShape, torch.device], Parts]
    # (config, the adversary, the parts, device) -> the scheme's own objective, which its steps take
    build_objective: Callable[[TrainConfig, Adversary, Parts, torch.device], Any]
    part_keys: frozenset[str] = frozenset()  # every key `build_parts` may use (a checkpoint may hold one switched off)
    reconstruct_reals: bool = False  # D also rebuilds the reals it sees (FastGAN: Liu et al. 2021, Sec. 3.2)
    # (the objective, config) -> the objective with what depends on the run's length set from config.kimg: a
    # `--minutes` run's length is planned after the objective is built, and planned again at every tick
    with_run_length: Callable[[Any, TrainConfig], Any] = with_adversary_length


def no_parts(config: TrainConfig, image_shape: ImageShape, device: torch.device) -> Parts:
    return {}
