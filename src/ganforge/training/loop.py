"""The one training loop every model runs through (Goodfellow et al. 2014, Algorithm 1).

Per iteration: `d_steps` D updates on fresh real and fake batches, then one G update. Progress is counted
in real images shown to D; every tick prints a status line, appends to log.jsonl, writes a sample grid from
fixed latents and refreshes loss.png; every `snap` ticks, at the end and on SIGINT/SIGTERM a checkpoint is
written. Numbers stay on the device until the tick ends.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ganforge.augment import build_augment
from ganforge.config import TrainConfig
from ganforge.data.sampler import EpochSampler
from ganforge.data.store import DeviceBatches, Store, to_float
from ganforge.images import make_grid, save_png
from ganforge.losses import build_loss
from ganforge.models import MODELS, build_networks
from ganforge.regularizers import build_regularizers
from ganforge.training import checkpoint as ckpt
from ganforge.training.accumulation import StepBatch
from ganforge.training.batch_fit import passes_per_step
from ganforge.training.distributed import Distributed, init_distributed, per_rank_batch
from ganforge.training.ema import make_ema_copy, update_ema
from ganforge.training.growing import Phase
from ganforge.training.objective import Objective
from ganforge.training.precision import Precision
from ganforge.training.report import TickHook, advance_tick, status_line, tick_means, tick_record, write_tick
from ganforge.training.runlog import RunLog
from ganforge.training.schedule import Schedule, build_schedule
from ganforge.training.schemes import SCHEMES
from ganforge.training.state import TrainingState
from ganforge.training.stats import TickStats
from ganforge.training.sync_batchnorm import synchronize_run_batchnorm


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_state(config: TrainConfig, store: Store, device: torch.device,
                ctx: Distributed | None = None) -> TrainingState:
    # Weights first, so the same seed gives the same initial networks. Python's and NumPy's global streams are
    # seeded too: ganforge draws nothing from them, but a library might, and checkpoints restore them.
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    networks = build_networks(config.model, store.manifest.shape)
    generator, discriminator = networks.generator.to(device), networks.discriminator.to(device)
    if config.channels_last:
        generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        discriminator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    encoder = networks.encoder.to(device) if networks.encoder is not None else None
    if config.compile:  # in place (nn.Module.compile), so state_dict keys and checkpoints stay the same
        generator.compile(dynamic=False)
        discriminator.compile(dynamic=False)
    g_side = [*generator.parameters(), *(encoder.parameters() if encoder is not None else [])]
    betas = (config.beta1, config.beta2)
    return TrainingState(
        config=config,
        generator=generator,
        discriminator=discriminator,
        generator_ema=make_ema_copy(generator) if config.ema_kimg > 0 else None,
        encoder=encoder,
        # Fused Adam is one kernel per step on GPUs; on the CPU the default (foreach) measured the same.
        opt_g=torch.optim.Adam(g_side, lr=config.lr_g, betas=betas, fused=device.type == "cuda" or None),
        opt_d=torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=betas,
                               fused=device.type == "cuda" or None),
        sampler=EpochSampler(len(store), config.seed),
        latent_rng=torch.Generator().manual_seed(config.seed + 1),
        stats=TickStats(device),
        precision=Precision(config.precision, device),
        augment=build_augment(config.augment.name, batch=config.batch, target=config.augment.target,
                              ada_kimg=config.augment.ada_kimg, policy=config.augment.policy,
                              sum_over_ranks=ctx.sum_ if ctx is not None and ctx.enabled else None,
                              world_size=ctx.world_size if ctx is not None else 1),
    )


def build_objective(config: TrainConfig, state: TrainingState) -> Objective:
    noise_kimg = config.loss.instance_noise_kimg or config.kimg
    return Objective(build_loss(config.loss), build_regularizers(config.loss), state.augment,
                     config.loss.instance_noise, int(noise_kimg * 1000))


def train(config: TrainConfig, run_dir: Path, store: Store, *, progress: bool = True,
          tick_hooks: tuple[TickHook, ...] = (), echo: Callable[[str], None] = tqdm.write) -> TrainingState:
    """Train until `config.kimg`, resuming from the run's latest checkpoint if there is one."""
    ctx, ddp_device = init_distributed(config.device)
    device = ddp_device or resolve_device(config.device)
    echo = echo if ctx.is_main else _quiet
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    # Denormal floats (tiny gradients and Adam moments) run ~20x slower on x86 CPUs: measured 2,400 vs
    # 100-400 img/s on a small DCGAN. GPUs already flush them; flushing on the CPU costs no quality.
    torch.set_flush_denormal(True)
    data = DeviceBatches(store, device, channels_last=config.channels_last)
    state = build_state(config, store, device, ctx)
    log = RunLog(run_dir) if ctx.is_main else None
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is not None:
        state.restore(*ckpt.load_checkpoint(latest))
        if log is not None:
            log.truncate_after(state.counters.cur_nimg)
        echo(f"resumed from {latest} at kimg {state.counters.cur_nimg / 1000:.1f}")
    ctx.seed_own_stream(config.seed, state.counters.cur_nimg)
    synchronize_run_batchnorm(state, ctx, device, echo)
    grows = MODELS[config.model.name].grows  # a growing model leaves its other resolutions' layers unused
    state.wrapped = {role: ctx.wrap(net, device, find_unused=grows) for role, net in
                     (("G", state.generator), ("D", state.discriminator), ("E", state.encoder)) if net is not None}
    objective = build_objective(config, state)
    schedule = build_schedule(config, store.manifest.shape)
    discriminator_step, generator_step = SCHEMES[MODELS[config.model.name].scheme]
    grid_latents = torch.randn(config.grid_size, config.model.z_dim,
                               generator=torch.Generator().manual_seed(config.seed + 2))
    # Conditional runs: the grid cycles through the classes, so each column of a 10-wide grid is one class.
    grid_labels = torch.arange(config.grid_size) % config.model.num_classes if config.model.conditional else None
    preview_reals = to_float(store.uint8_batch(np.arange(min(32, len(store)))))
    if ctx.is_main and not (run_dir / "reals.png").exists():
        reals = store.uint8_batch(np.arange(min(config.grid_size, len(store))))
        save_png(make_grid(reals), run_dir / "reals.png")

    stop_signal: list[int] = []
    previous_handlers = _install_stop_handlers(stop_signal)
    counters = state.counters
    total_nimg = config.total_nimg
    bar = tqdm(total=total_nimg, initial=counters.cur_nimg, unit="img", unit_scale=True, dynamic_ncols=True,
               disable=None if progress and ctx.is_main else True, leave=False)
    stopping = False
    rounds_at: dict[int, int] = {}  # passes per step (gradient accumulation), decided once per resolution
    tick_start_time = time.perf_counter()
    tick_start_nimg_session = counters.cur_nimg
    try:
        while counters.cur_nimg < total_nimg and not stopping:
            phase = _enter_phase(state, schedule)
            if phase.resolution not in rounds_at:
                rounds_at[phase.resolution] = passes_per_step(state, schedule, phase, data,
                                                              per_rank_batch(phase.batch, ctx), echo, log)
            for d_step in range(config.d_steps):
                # Every rank draws the global batch and keeps its slice: the same data whatever the world size.
                indices = ctx.shard(state.sampler.next_indices(phase.batch))
                batch = StepBatch(reals=schedule.prepare_reals(data.images(indices), phase),
                                  labels=data.labels_of(indices) if config.model.conditional else None,
                                  latents=ctx.shard(_latents(state, phase.batch, device)),
                                  rounds=rounds_at[phase.resolution])
                carry = discriminator_step(state, objective, batch, keep_fakes=d_step == config.d_steps - 1)
            generator_step(state, objective, carry)
            if state.generator_ema is not None:
                update_ema(state.generator_ema, state.generator, phase.batch, config.ema_kimg, config.ema_rampup,
                           counters.cur_nimg)
            counters.cur_nimg += phase.batch * config.d_steps
            bar.update(phase.batch * config.d_steps)

            done = counters.cur_nimg >= total_nimg
            # One process stops at once; several agree at tick ends, so no rank waits alone in a collective.
            stopping = bool(stop_signal) if not ctx.enabled else stopping
            if counters.cur_nimg < counters.tick_start_nimg + config.tick_kimg * 1000 and not done:
                continue
            seconds = time.perf_counter() - tick_start_time
            state.stats.all_reduce(ctx.sum_, ctx.world_size)
            means, tick_nimg = tick_means(state), counters.cur_nimg - counters.tick_start_nimg
            advance_tick(state, seconds)
            record = tick_record(state, means, seconds, counters.cur_nimg - tick_start_nimg_session, tick_nimg)
            for hook in (*tick_hooks, _phase_fields(schedule)):
                hook(state, record)
            if log is not None:
                write_tick(state, run_dir, log, record, (grid_latents, grid_labels, preview_reals))
                echo(status_line(record))
            if (counters.tick % config.snap == 0 or done) and ctx.is_main:
                _save(state, run_dir)
            stopping = ctx.all_true(bool(stop_signal))
            ctx.seed_own_stream(config.seed, counters.cur_nimg)
            tick_start_time, tick_start_nimg_session = time.perf_counter(), counters.cur_nimg
        if stopping and counters.cur_nimg < total_nimg:
            counters.train_seconds += time.perf_counter() - tick_start_time
            if ctx.is_main:
                _save(state, run_dir)
            source = f"signal {stop_signal[0]}" if stop_signal else "a signal to another rank"
            echo(f"stopped by {source} at kimg {counters.cur_nimg / 1000:.1f}; "
                 f"continue with `ganforge train --resume {run_dir}`")
    finally:
        bar.close()
        if log is not None:
            log.close()
        _restore_handlers(previous_handlers)
    return state


def _enter_phase(state: TrainingState, schedule: Schedule) -> Phase:
    """Set the networks to this iteration's phase; a new phase starts with fresh Adam moments (Karras et al.)."""
    phase = schedule.phase_at(state.counters.cur_nimg)
    schedule.apply(state.generator, state.discriminator, phase, state.generator_ema)
    if phase.index != state.counters.phase_index:
        if state.counters.phase_index >= 0:
            state.opt_g.state.clear()
            state.opt_d.state.clear()
        state.counters.phase_index = phase.index
    return phase


def _phase_fields(schedule: Schedule) -> TickHook:
    def add(state: TrainingState, record: dict[str, Any]) -> None:
        record.update(schedule.log_fields(schedule.phase_at(max(0, state.counters.cur_nimg - 1))))
    return add


def _latents(state: TrainingState, batch: int, device: torch.device) -> torch.Tensor:
    return torch.randn(batch, state.config.model.z_dim, generator=state.latent_rng).to(device, non_blocking=True)


def _save(state: TrainingState, run_dir: Path) -> None:
    tensors, meta = state.capture()
    ckpt.save_checkpoint(ckpt.checkpoint_path(run_dir, state.counters.cur_nimg), tensors, meta)
    ckpt.prune_checkpoints(run_dir, state.config.keep)


def _quiet(message: str) -> None:
    pass


def _install_stop_handlers(stop_signal: list[int]) -> dict[int, Any]:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_signal.append(signum)

    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, request_stop)
        except ValueError:  # not the main thread (e.g. inside a server): leave signals alone
            pass
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
