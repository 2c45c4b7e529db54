"""Which resolution, fade-in weight and minibatch each iteration uses: fixed for most models, growing for ProGAN.

Both schedules answer from `cur_nimg` alone, so a resumed run is back in the same phase with no extra state.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.models import MODELS
from ganforge.training.growing import GrowingSchedule, Phase


class Schedule(Protocol):
    def phase_at(self, cur_nimg: int) -> Phase: ...

    def apply(self, generator: nn.Module, discriminator: nn.Module, phase: Phase,
              generator_ema: nn.Module | None = None) -> None: ...

    def prepare_reals(self, images: torch.Tensor, phase: Phase) -> torch.Tensor: ...

    def log_fields(self, phase: Phase) -> dict[str, Any]: ...


class FixedSchedule:
    """One phase for the whole run: the store's resolution, alpha 1, the configured batch."""

    def __init__(self, resolution: int, batch: int) -> None:
        self.phase = Phase(index=0, resolution=resolution, alpha=1.0, fading=False, batch=batch, lod=0.0)

    def phase_at(self, cur_nimg: int) -> Phase:
        return self.phase

    def apply(self, generator: nn.Module, discriminator: nn.Module, phase: Phase,
              generator_ema: nn.Module | None = None) -> None:
        pass

    def prepare_reals(self, images: torch.Tensor, phase: Phase) -> torch.Tensor:
        return images

    def log_fields(self, phase: Phase) -> dict[str, Any]:
        return {}


def build_schedule(config: TrainConfig, image_shape: tuple[int, int, int]) -> Schedule:
    """Growing models follow Karras et al.'s schedule with `--batch` as the cap on its per-resolution batches."""
    if MODELS[config.model.name].grows:
        return GrowingSchedule(image_shape[1], config.fade_kimg, config.stable_kimg, max_batch=config.batch)
    return FixedSchedule(image_shape[1], config.batch)
