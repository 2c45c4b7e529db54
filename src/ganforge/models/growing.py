"""Which resolution, fade-in weight and minibatch each iteration uses: one phase for most models, progressive
growing for ProGAN (Karras et al. 2018, Sec. 3 and App. A.1). Both answer from `cur_nimg` alone, so a resumed
run (or a tool rendering a checkpoint) is back in the same phase with no state beyond the image counter.

Growing: phase 0 stabilises 4x4; then each doubling has a fade-in phase (alpha rising linearly from 0 to 1 over
`fade_kimg`) and a stabilisation phase (alpha = 1 for `stable_kimg`); the last phase, at the target
resolution, lasts for the rest of the run. This is the original's `train.TrainingSchedule` ("lod_training_kimg"
then "lod_transition_kimg" per doubling). The loop resets both optimizers' Adam moments whenever the phase
index changes, as the original does at every change of floor(lod) or ceil(lod).

`lod` is the original's level of detail, log2(target) - log2(resolution) + (1 - alpha) while fading, which
its tick log prints: 5.0 while stabilising 4x4 with a 128 px target, 4.5 half-way through the 8x8 fade-in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ganforge.errors import ConfigError
from ganforge.models.progan_layers import downsample, fade, upsample

# The official TensorFlow code's default ("preset-v2-1gpu" in its config.py): larger minibatches where the
# networks are small, down to 4 at 512 px; 1024 px takes its minibatch_base of 4. It trains a single GPU
# much faster at low resolution than the paper's setting below.
DEFAULT_BATCH_BY_RESOLUTION = {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4, 1024: 4}


@dataclass(frozen=True)
class Phase:
    index: int  # 0 = 4x4 stabilisation, 2l - 1 = fade-in of level l (4 * 2^l px), 2l = its stabilisation
    resolution: int  # px that G outputs and D takes
    alpha: float  # fade-in weight of the newest block; 1.0 outside fade-ins
    fading: bool  # a fade-in phase (alpha may still be 0.0 at its first image)
    batch: int  # minibatch size at this resolution
    lod: float  # the original's level of detail: log2(target / resolution) + (1 - alpha) while fading


class Schedule(Protocol):
    def phase_at(self, cur_nimg: int) -> Phase: ...

    def apply(self, generator: nn.Module, discriminator: nn.Module, phase: Phase,
              generator_ema: nn.Module | None = None) -> None: ...

    def prepare_reals(self, images: torch.Tensor, phase: Phase) -> torch.Tensor: ...

    def log_fields(self, phase: Phase) -> dict[str, Any]: ...


@runtime_checkable
class Grows(Protocol):
    def set_phase(self, resolution: int, alpha: float) -> None: ...


class GrowingSchedule:
    def __init__(self, target_resolution: int, fade_kimg: float = 600.0, stable_kimg: float = 600.0,
                 batch_by_resolution: dict[int, int] | None = None, max_batch: int | None = None,
                 start_resolution: int = 4) -> None:
        if not 4 <= target_resolution <= 1024 or target_resolution & (target_resolution - 1):
            raise ConfigError(f"progressive growing needs a power-of-two target resolution from 4 to 1024 px, got "
                              f"{target_resolution}; prepare the store at one (`ganforge prepare --resolution 128`)")
        if fade_kimg < 0 or stable_kimg < 0:
            raise ConfigError("--phase-kimg (fade-in and stabilisation lengths) must not be negative")
        if max_batch is not None and max_batch < 1:
            raise ConfigError("the maximum progressive-growing minibatch must be at least 1")
        self.target_resolution = target_resolution
        self.levels = int(math.log2(target_resolution)) - 2  # doublings after 4x4
        self.fade_kimg, self.stable_kimg = float(fade_kimg), float(stable_kimg)
        self.fade_nimg, self.stable_nimg = round(fade_kimg * 1000), round(stable_kimg * 1000)
        self.batch_by_resolution = dict(batch_by_resolution or DEFAULT_BATCH_BY_RESOLUTION)
        self.max_batch = max_batch
        if start_resolution not in [4 << lv for lv in range(self.levels + 1)]:
            raise ConfigError(f"grow_start {start_resolution} is not a power of two from 4 px to the target "
                              f"{target_resolution} px; set it in config.json to one, or to 4")
        # A run fine-tuned from a trained ProGAN of `start_resolution` px starts where that one ended: at the
        # fade-in of the next resolution, as if the phases below had been trained.
        start_level = int(math.log2(start_resolution)) - 2
        self.skipped_nimg = 0 if start_level == 0 else self.stable_nimg + start_level * (self.fade_nimg +
                                                                                         self.stable_nimg)
        missing = [4 << lv for lv in range(self.levels + 1) if self.batch_by_resolution.get(4 << lv, 0) < 1]
        if missing:
            raise ConfigError(f"the progressive-growing minibatch sizes lack a positive size for {missing} px")

    @property
    def num_phases(self) -> int:
        return 2 * self.levels + 1

    def phase_at(self, cur_nimg: int) -> Phase:
        if cur_nimg < 0:
            raise ValueError(f"cur_nimg must not be negative, got {cur_nimg}")
        cur_nimg += self.skipped_nimg
        level, alpha, fading = self.levels, 1.0, False  # past the schedule: the target, for good
        since = cur_nimg - self.stable_nimg
        span = self.fade_nimg + self.stable_nimg  # one doubling: fade-in then stabilisation
        if since < 0:
            level = 0
        elif span > 0 and since // span < self.levels:
            level, within = since // span + 1, since % span
            if within < self.fade_nimg:
                alpha, fading = within / self.fade_nimg, True
        index = 0 if level == 0 else 2 * level - int(fading)
        resolution = 4 << level
        batch = self.batch_by_resolution[resolution]
        if self.max_batch is not None:
            batch = min(batch, self.max_batch)
        lod = float(self.levels - level) + (1.0 - alpha if fading else 0.0)
        return Phase(index, resolution, alpha, fading, batch, lod)

    def apply(self, generator: nn.Module, discriminator: nn.Module, phase: Phase,
              generator_ema: nn.Module | None = None) -> None:
        """Set every network (the EMA copy of G too: it samples at the current resolution) to `phase`."""
        for net in (generator, discriminator, generator_ema):
            if net is None:
                continue
            if not isinstance(net, Grows):
                raise ConfigError(f"{type(net).__name__} cannot grow (no set_phase); train it with --model progan")
            net.set_phase(phase.resolution, phase.alpha)

    def prepare_reals(self, images: torch.Tensor, phase: Phase) -> torch.Tensor:
        """[B, C, R, R] reals at the target resolution -> [B, C, r, r] at the phase's resolution r.

        Box-filter downsampling, as the original's multi-resolution dataset; during a fade-in, blended with
        the nearest-upsampled r/2 version exactly as G's output is, alpha * x_r + (1 - alpha) * up(x_{r/2}),
        so D never tells reals from fakes by their sharpness (the original's process_reals "FadeLOD").
        """
        size = images.shape[-1]
        if images.dim() != 4 or images.shape[-2] != size or size != self.target_resolution:
            raise ValueError(f"prepare_reals takes [B, C, {self.target_resolution}, {self.target_resolution}] "
                             f"images, got {tuple(images.shape)}")
        reals = downsample(images, size // phase.resolution)
        if phase.fading:
            reals = fade(reals, upsample(downsample(reals)), phase.alpha)
        return reals

    @staticmethod
    def log_fields(phase: Phase) -> dict[str, Any]:
        """The tick log's growing fields, as the original prints them: lod, resolution, alpha, minibatch."""
        return {"lod": phase.lod, "resolution": phase.resolution, "alpha": phase.alpha, "minibatch": phase.batch}


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


def build_schedule(grows: bool, resolution: int, batch: int, fade_kimg: float, stable_kimg: float,
                   start_resolution: int = 4) -> Schedule:
    """A growing family follows Karras et al.'s schedule with `batch` as the cap on its per-resolution batches,
    from `start_resolution` (a fine-tuned run's source's) up."""
    if grows:
        return GrowingSchedule(resolution, fade_kimg, stable_kimg, max_batch=batch, start_resolution=start_resolution)
    return FixedSchedule(resolution, batch)
