"""Everything a run needs to continue bit-identically: built from the config, gathered in one object with
capture/restore.

The parts with a schedule or a random stream (data order, latents, dropout and label-noise draws, per-tick
sums) each save their own state, so a checkpoint written at any step resumes the exact same trajectory. The
steps never see this object: the loop hands each step what it updates (a `step_parts.Trainee`) and what it
uses, one argument each.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ganforge.augment import Augment, build_augment
from ganforge.config import TrainConfig
from ganforge.data.sampler import EpochSampler
from ganforge.data.store import Store
from ganforge.errors import CheckpointError
from ganforge.models import build_networks, family_of
from ganforge.runs import checkpoint as ckpt
from ganforge.training.distributed import Distributed
from ganforge.training.ema import make_ema_copy
from ganforge.training.freeze import freeze, frozen_modules
from ganforge.training.precision import Precision
from ganforge.training.schemes import scheme_of
from ganforge.training.schemes.scheme import Parts
from ganforge.training.stats import TickStats
from ganforge.version import __version__

CHECKPOINT_FORMAT = 1


@dataclass
class Counters:
    cur_nimg: int = 0  # real images shown to D so far
    tick: int = 0  # completed ticks
    tick_start_nimg: int = 0  # cur_nimg when the current tick began
    d_steps: int = 0  # D updates so far (lazy regularizers key on it)
    phase_index: int = -1  # growing schedule phase of the last iteration (-1: none yet)
    train_seconds: float = 0.0  # wall time spent training, summed over sessions (not part of the trajectory)
    budget_seconds: float = 0.0  # --minutes: wall time spent against the budget, tick ends and checkpoints included
    budget_end_seconds: float = 0.0  # --minutes: the costliest tick end timed so far (kept for the run's end)
    best_check_seconds: float = 0.0  # --minutes: time the best snapshot's checks took (--best-share of the budget)
    best_checks: int = 0  # --minutes: how many of them were made
    # The collapse monitor's: the last tick whose samples were as varied as they should be (-1: none yet),
    # whether a warning has kept RUN/before-collapse (0 or 1; one is kept per run), and its last warning (-1: none)
    healthy_nimg: int = -1
    collapse_kept: int = 0
    collapse_warned_nimg: int = -1


@dataclass
class TrainingState:
    config: TrainConfig
    generator: nn.Module
    discriminator: nn.Module
    generator_ema: nn.Module | None
    encoder: nn.Module | None  # autoencoding schemes only; trained by opt_g with the generator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sampler: EpochSampler
    latent_rng: torch.Generator  # CPU generator: the same latents on any device
    stats: TickStats
    augment: Augment
    precision: Precision
    input_sampler: EpochSampler | None = None  # an unpaired store's A side, shuffled apart from the B side
    # The scheme's stateful objective parts by checkpoint key (CycleGAN's history pool, the path-length mean).
    parts: Parts = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)

    def networks(self) -> dict[str, nn.Module]:
        """The networks by checkpoint prefix: G, D, and G_ema and E when the run has them."""
        found = {"G": self.generator, "D": self.discriminator, "G_ema": self.generator_ema, "E": self.encoder}
        return {role: net for role, net in found.items() if net is not None}

    def capture(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {**ckpt.module_tensors("G", self.generator), **ckpt.module_tensors("D", self.discriminator)}
        if self.generator_ema is not None:
            tensors.update(ckpt.module_tensors("G_ema", self.generator_ema))
        if self.encoder is not None:
            tensors.update(ckpt.module_tensors("E", self.encoder))
        opt_g_tensors, opt_g_meta = ckpt.optimizer_tensors("opt_G", self.opt_g)
        opt_d_tensors, opt_d_meta = ckpt.optimizer_tensors("opt_D", self.opt_d)
        stat_tensors, stat_counts = self.stats.state_dict()
        tensors.update({**opt_g_tensors, **opt_d_tensors, **stat_tensors})
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.latent"] = self.latent_rng.get_state()
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = s
        meta = {
            "format": CHECKPOINT_FORMAT,
            "ganforge_version": __version__,
            "config": self.config.to_dict(),
            "counters": self.counters.__dict__,
            "opt_G": opt_g_meta,
            "opt_D": opt_d_meta,
            "stat_counts": stat_counts,
            "sampler": self.sampler.state_dict(),
            "augment": self.augment.state_dict(),
            "precision": self.precision.state_dict(),
            "rng_python": _jsonable(random.getstate()),
            "rng_numpy": _jsonable(np.random.get_state()),
        }
        if self.input_sampler is not None:
            meta["input_sampler"] = self.input_sampler.state_dict()
        for key, part in self.parts.items():
            part_tensors, meta[key] = part.state_dict()
            tensors.update(part_tensors)
        return tensors, meta

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"checkpoint format {meta.get('format')} is not {CHECKPOINT_FORMAT}; "
                                  f"it was written by ganforge {meta.get('ganforge_version')}.")
        ckpt.load_module("G", self.generator, tensors)
        ckpt.load_module("D", self.discriminator, tensors)
        if self.generator_ema is not None:
            if any(k.startswith("G_ema.") for k in tensors):
                ckpt.load_module("G_ema", self.generator_ema, tensors)
            else:  # EMA switched on at resume: start the average from the current G
                self.generator_ema.load_state_dict(self.generator.state_dict())
        if self.encoder is not None:
            ckpt.load_module("E", self.encoder, tensors)
        ckpt.load_optimizer("opt_G", self.opt_g, tensors, meta["opt_G"])
        ckpt.load_optimizer("opt_D", self.opt_d, tensors, meta["opt_D"])
        # Resume may lower the learning rate (seed 004 does, stage by stage): the config wins over the state.
        for group in self.opt_g.param_groups:
            group["lr"] = self.config.lr_g
        for group in self.opt_d.param_groups:
            group["lr"] = self.config.lr_d
        self.stats.load_state_dict(tensors, meta["stat_counts"])
        self.sampler.load_state_dict(meta["sampler"])
        if self.input_sampler is not None:
            self.input_sampler.load_state_dict(meta["input_sampler"])
        for key, part in self.parts.items():
            if key in meta:  # else switched on at resume (checkpoint_check refuses a missing required part)
                part.load_state_dict(tensors, meta[key])
        self.augment.load_state_dict(meta["augment"])
        self.precision.load_state_dict(meta.get("precision", {}))
        self.counters = Counters(**meta["counters"])
        torch.set_rng_state(tensors["rng.torch"])
        self.latent_rng.set_state(tensors["rng.latent"])
        cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
        random.setstate(_python_state(meta["rng_python"]))
        np.random.set_state(_numpy_state(meta["rng_numpy"]))


def build_state(config: TrainConfig, store: Store, device: torch.device, ctx: Distributed) -> TrainingState:
    # Weights first, so the same seed gives the same initial networks. Python's and NumPy's global streams are
    # seeded too: ganforge draws nothing from them, but a library might, and checkpoints restore them.
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    networks = build_networks(config.model, store.manifest.output_shape)
    generator, discriminator = networks.generator.to(device), networks.discriminator.to(device)
    if config.channels_last:  # where a network says the layout slows it, it stays contiguous
        for network in (generator, discriminator):
            if getattr(network, "channels_last", True):
                network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    encoder = networks.encoder.to(device) if networks.encoder is not None else None
    if config.compile:  # in place (nn.Module.compile), so state_dict keys and checkpoints stay the same
        # A graph torch.compile cannot handle (a family's data-dependent code, a backend missing on this machine)
        # runs eagerly with torch's warning instead of ending the run: every family trains with --compile.
        import torch._dynamo as dynamo  # only with --compile: importing it costs a second

        dynamo.config.suppress_errors = True
        generator.compile(dynamic=False)
        discriminator.compile(dynamic=False)
    freeze(frozen_modules(config, family_of(config.model.name), generator, discriminator))
    g_side = [p for p in (*generator.parameters(), *(encoder.parameters() if encoder is not None else []))
              if p.requires_grad]
    betas = (config.beta1, config.beta2)
    return TrainingState(
        config=config,
        generator=generator,
        discriminator=discriminator,
        generator_ema=make_ema_copy(generator) if config.ema_kimg > 0 else None,
        encoder=encoder,
        opt_g=_adam(g_side, config.lr_g, betas, device),
        opt_d=_adam([p for p in discriminator.parameters() if p.requires_grad], config.lr_d, betas, device),
        # Over the rows D sees as real (a two-sided store's targets), held-out rows left out.
        sampler=EpochSampler(store.manifest.train_rows("b" if store.manifest.two_sided else "a"), config.seed),
        input_sampler=EpochSampler(store.manifest.train_rows("a"), config.seed + 3)
        if store.manifest.pairing == "unpaired" else None,
        latent_rng=torch.Generator().manual_seed(config.seed + 1),
        stats=TickStats(device),
        precision=Precision(config.precision, device),
        augment=build_augment(config.augment.name, batch=config.batch, target=config.augment.target,
                              ada_kimg=config.augment.ada_kimg, policy=config.augment.policy,
                              sum_over_ranks=ctx.sum_ if ctx.enabled else None, world_size=ctx.world_size),
        parts=scheme_of(family_of(config.model.name).scheme).build_parts(config, store.manifest.output_shape,
                                                                         device),
    )


def _adam(parameters: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float],
          device: torch.device) -> torch.optim.Adam:
    """Adam updating all parameters at once: fused on GPUs (one kernel, its step counts on the device, so a step
    never reads one back); multi-tensor on the CPU, where with the fused kernel a resumed run drifted from an
    uninterrupted one (tests/test_resume.py)."""
    if device.type == "cuda":
        return torch.optim.Adam(parameters, lr=lr, betas=betas, fused=True)
    return torch.optim.Adam(parameters, lr=lr, betas=betas, foreach=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value


def _python_state(raw: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = raw
    return (version, tuple(internal), gauss)


def _numpy_state(raw: list[Any]) -> tuple[Any, ...]:
    name, keys, pos, has_gauss, cached = raw
    return (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
