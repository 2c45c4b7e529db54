"""The one training loop every model runs through (Goodfellow et al. 2014, Algorithm 1).

Per iteration: `d_steps` D updates on fresh real and fake batches, then one G update, by the model family's
scheme (training/schemes/: its steps and objective; their shared parts in `step_parts`). Progress is counted
in real images shown to D; every tick prints a status line, appends to log.jsonl, writes a sample grid from
fixed latents and refreshes loss.png; every `snap` ticks, at the end and on SIGINT/SIGTERM a checkpoint is
written. Numbers stay on the device until the tick ends.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from tqdm import tqdm

from ganforge.config import TrainConfig
from ganforge.config.setting import largest_accepted
from ganforge.data.device_batches import DeviceBatches
from ganforge.data.store import Store
from ganforge.errors import TrainingInterrupted
from ganforge.models import MODELS
from ganforge.models.growing import Phase, Schedule, build_schedule
from ganforge.runs import checkpoint as ckpt
from ganforge.runs.folder import read_run_config, write_run_config
from ganforge.training.batch_fit import passes_per_step
from ganforge.training.budget import WARMUP_STEPS, Budget, Plan
from ganforge.training.checkpoint_check import restore_checked
from ganforge.training.distributed import Distributed, init_distributed, per_rank_batch
from ganforge.training.ema import update_ema
from ganforge.training.heartbeat import Heartbeat
from ganforge.training.init_from import initialize
from ganforge.training.objective.adversary import build_adversary
from ganforge.training.report import (
    TickHook,
    advance_tick,
    previews,
    status_line,
    tick_means,
    tick_record,
    write_early_samples,
    write_tick,
)
from ganforge.training.runlog import RunLog
from ganforge.training.schedule import apply_schedule
from ganforge.training.schemes import scheme_of
from ganforge.training.state import Counters, TrainingState, build_state
from ganforge.training.step_parts import StepBatch, Trainee
from ganforge.training.sync_batchnorm import synchronize_run_batchnorm

EARLY_SAMPLES_S = 30.0  # seconds of training before a fresh run's first sample grid, if no tick came first
AGREE_EVERY = 16  # iterations between the torchrun ranks' agreements on stopping (a signal, the deadline)
LONGEST_NIMG = int(largest_accepted(TrainConfig, "kimg") * 1000)  # no run, planned or not, goes beyond it


def train(config: TrainConfig, run_dir: Path, store: Store, *, progress: bool = True,
          tick_hooks: tuple[TickHook, ...] = (), echo: Callable[[str], None] = tqdm.write,
          ctx: Distributed | None = None, on_resumed: Callable[[Counters], bool] | None = None,
          clock: Callable[[], float] = time.monotonic,
          on_done: Callable[[TrainingState], str] | None = None) -> TrainingState:
    """Train until `config.kimg` (with `config.minutes`, until the kimg planned for the budget, timed by
    `clock`), resuming from the run's latest checkpoint if there is one.

    `on_resumed(counters)` is called once that checkpoint (if any) is restored and checked, before the run folder
    is written to (every rank calls it); training goes on only if it returns True. `on_done(state)`, called on
    the main process once the run has reached its length, gives a phrase for the "done" line (the memorization
    check). Raises TrainingInterrupted after SIGINT or SIGTERM, once the checkpoint is written.
    """
    ctx = ctx if ctx is not None else init_distributed(config.device)
    device = ctx.device_for(config.device)
    echo = echo if ctx.is_main else _quiet
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    # D's reals are the images, or a two-sided store's targets; image-to-image G translates the other side.
    two_sided = store.manifest.two_sided
    data = DeviceBatches(store, device, channels_last=config.channels_last, side="b" if two_sided else "a")
    inputs = DeviceBatches(store, device, channels_last=config.channels_last) if two_sided else None
    state = build_state(config, store, device, ctx)
    # The newest intact checkpoint (a damaged one is reported and set aside by rank 0), checked before restored.
    latest = ckpt.load_latest_intact(run_dir, echo, move_damaged=ctx.is_main)
    resumed_from = None if latest is None else latest[0]
    if latest is not None:
        restore_checked(state, *latest)
        del latest  # the checkpoint's tensors, now in the networks: not held for the whole run
    elif config.init:  # a fine-tuning run's start (again, if it was stopped before its first checkpoint)
        initialize(config, store.manifest.output_shape, state.networks())
    if on_resumed is not None and not on_resumed(state.counters):
        return state
    log = RunLog(run_dir) if ctx.is_main else None
    if resumed_from is not None:
        if log is not None:
            log.truncate_after(state.counters.cur_nimg)
        echo(f"resumed from {resumed_from} at kimg {state.counters.cur_nimg / 1000:.1f}")
    ctx.seed_own_stream(config.seed, state.counters.cur_nimg)
    synchronize_run_batchnorm(state, ctx, device, echo)
    family = MODELS[config.model.name]
    # What the steps update, run through DDP wrappers under torchrun (a growing model leaves its other
    # resolutions' layers unused, which DDP must be told).
    nets = Trainee(state.generator, state.discriminator, state.encoder, state.opt_g, state.opt_d,
                   {role: ctx.wrap(net, device, find_unused=family.grows) for role, net in
                    (("G", state.generator), ("D", state.discriminator), ("E", state.encoder)) if net is not None})
    scheme = scheme_of(family.scheme)
    objective = scheme.build_objective(config, build_adversary(config.loss, state.augment, config.kimg), state.parts,
                                       device)
    precision, stats = state.precision, state.stats
    schedule = build_schedule(family.grows, store.manifest.output_shape[1], config.batch, config.fade_kimg,
                              config.stable_kimg, config.grow_start)
    tick_previews = previews(config, store, run_dir if ctx.is_main else None)

    stop_signal: list[int] = []
    counters = state.counters
    total_nimg = config.total_nimg
    budget, dataset = None, None
    if config.minutes > 0:
        budget = Budget(config.minutes, counters.budget_seconds, counters.cur_nimg, config.batch * config.d_steps,
                        clock, end_seconds=counters.budget_end_seconds, longest_nimg=LONGEST_NIMG)
        if budget.seconds_left() <= 0 and resumed_from is not None:
            echo(f"{run_dir} has spent its {config.minutes:g} minutes (kimg {counters.cur_nimg / 1000:g}): it is "
                 f"complete. Extend it with `ganforge train --resume {run_dir} --minutes {2 * config.minutes:g}`")
            if log is not None:
                log.close()
            return state
        # Until the first plan the deadline alone ends the run: a fresh run's --kimg is no plan, nor is a length
        # already reached (a finished run given more minutes); a resumed plan under way is kept.
        if resumed_from is None or counters.budget_seconds == 0 or total_nimg <= counters.cur_nimg:
            total_nimg = LONGEST_NIMG
        if ctx.is_main:  # kept, so a damaged config.json cannot end a run at its next plan
            dataset = read_run_config(run_dir)[1]
        echo(f"budget: {config.minutes:g} min, {budget.seconds_left() / 60:.1f} left; measuring the speed over "
             f"{budget.window:.0f} s after {WARMUP_STEPS} warm-up steps, then planning --kimg")
    previous_handlers = _install_stop_handlers(stop_signal)
    planned = None if total_nimg == LONGEST_NIMG and budget is not None else total_nimg  # shown: None = not yet
    bar = tqdm(total=planned, initial=counters.cur_nimg, unit="img", unit_scale=True, dynamic_ncols=True,
               disable=None if progress and ctx.is_main else True, leave=False)
    # No bar off a terminal (tqdm disables itself there): a line every half minute instead, between ticks.
    heartbeat = Heartbeat(echo, progress and ctx.is_main and bool(bar.disable), planned, counters.cur_nimg)
    stopping = False
    # A fresh run shows its first samples after EARLY_SAMPLES_S, not only at its first tick (minutes away on a CPU).
    early_samples_at = time.perf_counter() + EARLY_SAMPLES_S if counters.tick == 0 and log is not None else None
    rounds_at: dict[int, int] = {}  # passes per step (gradient accumulation), decided once per resolution
    tick_start_time = time.perf_counter()
    tick_start_nimg_session = counters.cur_nimg
    try:
        while counters.cur_nimg < total_nimg and not stopping:
            phase = _enter_phase(state, schedule)
            apply_schedule(config, counters.cur_nimg, state.opt_g, state.opt_d, objective.adversary)
            if phase.resolution not in rounds_at:
                rounds_at[phase.resolution] = passes_per_step(
                    config, nets, precision, scheme.reconstruct_reals, objective.adversary.differentiates_d_twice,
                    schedule, phase, data, per_rank_batch(phase.batch, ctx), counters.cur_nimg, echo, log)
            for repeat in range(config.d_steps):
                # Every rank draws the global batch and keeps its slice: the same data whatever the world size.
                indices = ctx.shard(state.sampler.next_indices(phase.batch))
                reals = schedule.prepare_reals(data.images(indices), phase)
                labels = data.labels_of(indices) if config.model.conditional else None
                latents = torch.randn(phase.batch, config.model.z_dim, generator=state.latent_rng)
                batch = StepBatch(reals, labels, ctx.shard(latents.to(device, non_blocking=True)),
                                  rounds_at[phase.resolution], _inputs(inputs, state, indices, phase.batch, ctx))
                carry = scheme.discriminator_step(nets, objective, precision, stats, batch,
                                                  cur_nimg=counters.cur_nimg, d_step=counters.d_steps,
                                                  keep_fakes=repeat == config.d_steps - 1)
                counters.d_steps += 1
            scheme.generator_step(nets, objective, precision, stats, carry, cur_nimg=counters.cur_nimg)
            if state.generator_ema is not None:
                update_ema(state.generator_ema, state.generator, phase.batch, config.ema_kimg, config.ema_rampup,
                           counters.cur_nimg)
            counters.cur_nimg += phase.batch * config.d_steps
            bar.update(phase.batch * config.d_steps)
            heartbeat.beat(counters.cur_nimg, int(counters.tick_start_nimg + config.tick_kimg * 1000))
            if early_samples_at is not None and time.perf_counter() >= early_samples_at:
                early_samples_at = None
                if counters.tick == 0:
                    echo(f"first samples at kimg {counters.cur_nimg / 1000:.2f}: "
                         f"{write_early_samples(state, run_dir, tick_previews)}")
            # Several processes plan at tick ends only, where they agree (every rank keeps its own clock).
            if budget is not None:
                first_plan = budget.step_done(counters.cur_nimg)
                if first_plan is not None and not ctx.enabled:
                    config, total_nimg = _follow_plan(state, first_plan, run_dir, dataset, ctx, echo, bar, heartbeat,
                                                      True)
                    objective = scheme.with_run_length(objective, config)
            stopping, deadline_near = _stop_or_deadline(ctx, config, counters, stop_signal, budget)
            if budget is not None and deadline_near:  # the run's length becomes what it reached
                final = Plan(counters.cur_nimg, budget.plan.img_per_s if budget.plan else 0.0,
                             budget.seconds_left(), "the deadline came first")
                config, total_nimg = _follow_plan(state, final, run_dir, dataset, ctx, echo, bar, heartbeat, False)

            done = counters.cur_nimg >= total_nimg
            if counters.cur_nimg < counters.tick_start_nimg + config.tick_kimg * 1000 and not done:
                continue
            seconds = time.perf_counter() - tick_start_time
            if budget is not None:
                budget.tick_end_begins()
            stats.all_reduce(ctx.sum_, ctx.world_size)
            means = tick_means(state)
            advance_tick(state, seconds)
            record = tick_record(state, means, seconds, counters.cur_nimg - tick_start_nimg_session)
            if budget is not None:  # the hooks see the time spent (the best snapshot's check is timed by it)
                counters.budget_seconds = budget.seconds_used()
            for hook in (*tick_hooks, _phase_fields(schedule)):
                hook(state, record)
            if log is not None:
                write_tick(state, run_dir, log, record, tick_previews)
                echo(status_line(record))
            if budget is not None:
                counters.budget_seconds = budget.seconds_used()
                counters.budget_end_seconds = budget.end_seconds_so_far()
            if (counters.tick % config.snap == 0 or done) and ctx.is_main:
                _save(state, run_dir)
            if budget is not None and not done:
                plan = (_plan_of_rank_0(ctx, budget, counters.cur_nimg) if ctx.enabled
                        else budget.tick_done(counters.cur_nimg))
                if plan is not None:
                    config, total_nimg = _follow_plan(state, plan, run_dir, dataset, ctx, echo, bar, heartbeat,
                                                      abs(plan.total_nimg - total_nimg) > 0.05 * total_nimg)
                    objective = scheme.with_run_length(objective, config)
            (stopping,) = ctx.any_rank(bool(stop_signal))
            ctx.seed_own_stream(config.seed, counters.cur_nimg)
            tick_start_time, tick_start_nimg_session = time.perf_counter(), counters.cur_nimg
        if counters.cur_nimg >= total_nimg:
            if budget is not None:
                echo(f"budget: {budget.seconds_used() / 60:.1f} of {config.minutes:g} minutes used")
            use = f"translate {run_dir} INPUTS/ --out OUTPUTS/" if two_sided else f"generate {run_dir} --out grid.png"
            length = f"{counters.cur_nimg / 1000:g} kimg" if budget is not None else f"{config.kimg:g} kimg"
            checked = f"; {on_done(state)}" if on_done is not None and ctx.is_main else ""
            echo(f"done: {length}{checked}. Samples: {run_dir / 'samples' / 'latest.png'}; next: `ganforge "
                 f"{use}`, `ganforge evaluate {run_dir}` or `ganforge serve {run_dir}`")
        elif stopping:
            counters.train_seconds += time.perf_counter() - tick_start_time
            if budget is not None:
                counters.budget_seconds = budget.seconds_used()
                counters.budget_end_seconds = budget.end_seconds
            if ctx.is_main:
                _save(state, run_dir)
            raise TrainingInterrupted(stop_signal[0] if stop_signal else signal.SIGTERM,
                                      f"at kimg {counters.cur_nimg / 1000:.1f}, checkpoint written; continue with "
                                      f"`ganforge train --resume {run_dir}`")
    finally:
        bar.close()
        if log is not None:
            log.close()
        _restore_handlers(previous_handlers)
    return state


def _follow_plan(state: TrainingState, plan: Plan, run_dir: Path, dataset: dict[str, Any] | None, ctx: Distributed,
                 echo: Callable[[str], None], bar: tqdm, heartbeat: Heartbeat, announce: bool
                 ) -> tuple[TrainConfig, int]:
    """The run's length becomes the plan's: --kimg in the state (so checkpoints, schedules and the progress bar
    follow it) and in config.json beside the run's `dataset` record (so resume, generate and the next plan see
    it). Returns (config, total_nimg)."""
    config = dataclasses.replace(state.config, kimg=plan.total_nimg / 1000)
    state.config = config
    bar.total = heartbeat.total_nimg = plan.total_nimg
    if ctx.is_main:
        assert dataset is not None
        write_run_config(run_dir, config, dataset)
        RunLog(run_dir, tensorboard=False).append({"event": "plan", "kimg": config.kimg, "img_per_s": plan.img_per_s,
                                                   "seconds_left": plan.seconds_left, "source": plan.source})
    if announce:
        echo(plan.describe(config.minutes))
    return config, plan.total_nimg


def _stop_or_deadline(ctx: Distributed, config: TrainConfig, counters: Counters, stop_signal: list[int],
                      budget: Budget | None) -> tuple[bool, bool]:
    """(stop now, the deadline is near) after an iteration. One process asks its signal flag and its clock every
    iteration. Under torchrun the ranks ask together every AGREE_EVERY iterations (one collective and one read of
    the device then; a rank that stopped alone would leave the others waiting in the next collective), any rank's
    yes counting for all, looking that many iterations ahead for the deadline; and there each reseeds its own
    random stream, so a run stopped there and resumed draws what one never stopped draws."""
    if not ctx.enabled:
        return bool(stop_signal), budget is not None and budget.out_of_time()
    if (counters.d_steps // config.d_steps) % AGREE_EVERY:
        return False, False
    ctx.seed_own_stream(config.seed, counters.cur_nimg)
    near = budget is not None and budget.out_of_time(steps_ahead=AGREE_EVERY)
    stop, near = ctx.any_rank(bool(stop_signal), near)
    return stop, near


def _plan_of_rank_0(ctx: Distributed, budget: Budget, cur_nimg: int) -> Plan | None:
    """Under torchrun, plans are made at tick ends by rank 0 and sent to every rank: one clock decides."""
    plan = budget.tick_done(cur_nimg)
    text = ctx.broadcast_text(f"{plan.total_nimg} {plan.img_per_s} {plan.seconds_left}|{plan.source}"
                              if ctx.is_main and plan is not None else "")
    if not text:
        return None
    numbers, source = text.split("|", 1)
    total, speed, left = numbers.split()
    return Plan(int(total), float(speed), float(left), source)


def _inputs(inputs: DeviceBatches | None, state: TrainingState, indices: torch.Tensor, batch: int,
            ctx: Distributed) -> torch.Tensor | None:
    """The A-side images G translates this step: the reals' own partners in a paired store, rows drawn apart
    (their own shuffled epochs) in an unpaired one; None for noise-to-image training."""
    if inputs is None:
        return None
    if state.input_sampler is not None:
        indices = ctx.shard(state.input_sampler.next_indices(batch))
    return inputs.images(indices)


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


def _save(state: TrainingState, run_dir: Path) -> None:
    tensors, meta = state.capture()
    ckpt.save_checkpoint(ckpt.checkpoint_path(run_dir, state.counters.cur_nimg), tensors, meta)
    ckpt.prune_checkpoints(run_dir, state.config.keep)  # only now: save_checkpoint read the new one back intact


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
