"""The one training loop every model runs through (Goodfellow et al. 2014, Algorithm 1).

Per iteration: `d_steps` D updates on fresh real and fake batches, then one G update. Progress is counted
in real images shown to D; every tick prints a status line, appends to log.jsonl, writes a sample grid from
fixed latents and refreshes loss.png; every `snap` ticks, at the end and on SIGINT/SIGTERM a checkpoint is
written. Numbers stay on the device until the tick ends.
"""

from __future__ import annotations

import random
import resource
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
from ganforge.data.store import DeviceBatches, Store, to_float, to_uint8
from ganforge.errors import TrainingDiverged
from ganforge.images import make_grid, save_png
from ganforge.losses import build_loss
from ganforge.models import MODELS, build_networks
from ganforge.regularizers import build_regularizers
from ganforge.training import checkpoint as ckpt
from ganforge.training.ema import make_ema_copy, update_ema
from ganforge.training.growing import Phase
from ganforge.training.objective import Objective
from ganforge.training.plots import plot_curves
from ganforge.training.precision import Precision
from ganforge.training.runlog import RunLog
from ganforge.training.schedule import Schedule, build_schedule
from ganforge.training.schemes import SCHEMES
from ganforge.training.state import TrainingState
from ganforge.training.stats import TickStats

TickHook = Callable[[TrainingState, dict[str, Any]], None]  # may add entries to the tick's log record


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_state(config: TrainConfig, store: Store, device: torch.device) -> TrainingState:
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
                              ada_kimg=config.augment.ada_kimg, policy=config.augment.policy),
    )


def build_objective(config: TrainConfig, state: TrainingState) -> Objective:
    noise_kimg = config.loss.instance_noise_kimg or config.kimg
    return Objective(build_loss(config.loss), build_regularizers(config.loss), state.augment,
                     config.loss.instance_noise, int(noise_kimg * 1000))


def train(config: TrainConfig, run_dir: Path, store: Store, *, progress: bool = True,
          tick_hooks: tuple[TickHook, ...] = (), echo: Callable[[str], None] = tqdm.write) -> TrainingState:
    """Train until `config.kimg`, resuming from the run's latest checkpoint if there is one."""
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    # Denormal floats (tiny gradients and Adam moments) run ~20x slower on x86 CPUs: measured 2,400 vs
    # 100-400 img/s on a small DCGAN. GPUs already flush them; flushing on the CPU costs no quality.
    torch.set_flush_denormal(True)
    data = DeviceBatches(store, device, channels_last=config.channels_last)
    state = build_state(config, store, device)
    log = RunLog(run_dir)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is not None:
        state.restore(*ckpt.load_checkpoint(latest))
        log.truncate_after(state.counters.cur_nimg)
        echo(f"resumed from {latest} at kimg {state.counters.cur_nimg / 1000:.1f}")
    objective = build_objective(config, state)
    schedule = build_schedule(config, store.manifest.shape)
    discriminator_step, generator_step = SCHEMES[MODELS[config.model.name].scheme]
    grid_latents = torch.randn(config.grid_size, config.model.z_dim,
                               generator=torch.Generator().manual_seed(config.seed + 2))
    # Conditional runs: the grid cycles through the classes, so each column of a 10-wide grid is one class.
    grid_labels = torch.arange(config.grid_size) % config.model.num_classes if config.model.conditional else None
    preview_reals = to_float(store.uint8_batch(np.arange(min(32, len(store)))))
    if not (run_dir / "reals.png").exists():
        reals = store.uint8_batch(np.arange(min(config.grid_size, len(store))))
        save_png(make_grid(reals), run_dir / "reals.png")

    stop_signal: list[int] = []
    previous_handlers = _install_stop_handlers(stop_signal)
    counters = state.counters
    total_nimg = config.total_nimg
    bar = tqdm(total=total_nimg, initial=counters.cur_nimg, unit="img", unit_scale=True, dynamic_ncols=True,
               disable=None if progress else True, leave=False)
    tick_start_time = time.perf_counter()
    tick_start_nimg_session = counters.cur_nimg
    try:
        while counters.cur_nimg < total_nimg and not stop_signal:
            phase = _enter_phase(state, schedule)
            for d_step in range(config.d_steps):
                indices = state.sampler.next_indices(phase.batch)
                labels = data.labels_of(indices) if config.model.conditional else None
                reals = schedule.prepare_reals(data.images(indices), phase)
                carry = discriminator_step(state, objective, reals, labels, _latents(state, phase.batch, device),
                                           keep_fakes=d_step == config.d_steps - 1)
            generator_step(state, objective, carry, labels)
            if state.generator_ema is not None:
                update_ema(state.generator_ema, state.generator, phase.batch, config.ema_kimg, config.ema_rampup,
                           counters.cur_nimg)
            counters.cur_nimg += phase.batch * config.d_steps
            bar.update(phase.batch * config.d_steps)

            done = counters.cur_nimg >= total_nimg
            if counters.cur_nimg < counters.tick_start_nimg + config.tick_kimg * 1000 and not done:
                continue
            seconds = time.perf_counter() - tick_start_time
            record = _finish_tick(state, run_dir, log, seconds, counters.cur_nimg - tick_start_nimg_session,
                                  (grid_latents, grid_labels, preview_reals), (*tick_hooks, _phase_fields(schedule)))
            echo(_status_line(record))
            if counters.tick % config.snap == 0 or done:
                _save(state, run_dir)
            tick_start_time, tick_start_nimg_session = time.perf_counter(), counters.cur_nimg
        if stop_signal:
            counters.train_seconds += time.perf_counter() - tick_start_time
            _save(state, run_dir)
            echo(f"stopped by signal {stop_signal[0]} at kimg {counters.cur_nimg / 1000:.1f}; "
                 f"continue with `ganforge train --resume {run_dir}`")
    finally:
        bar.close()
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


def _finish_tick(state: TrainingState, run_dir: Path, log: RunLog, seconds: float, session_nimg: int,
                 previews: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor],
                 tick_hooks: tuple[TickHook, ...]) -> dict[str, Any]:
    counters = state.counters
    means = state.stats.means()
    tick_nimg = counters.cur_nimg - counters.tick_start_nimg
    if not all(v == v and abs(v) != float("inf") for k, v in means.items() if k.startswith("loss")):
        raise TrainingDiverged(
            f"the loss became non-finite during the tick ending at kimg {counters.cur_nimg / 1000:.1f} "
            f"(loss_d={means['loss_d']}, loss_g={means['loss_g']}); resume from the last checkpoint with lower "
            "--lr-g/--lr-d: `ganforge train --resume RUN --lr-d ...`.")
    counters.tick += 1
    counters.tick_start_nimg = counters.cur_nimg
    counters.train_seconds += seconds
    state.stats.reset()
    record: dict[str, Any] = {
        "tick": counters.tick,
        "nimg": counters.cur_nimg,
        "kimg": counters.cur_nimg / 1000,
        "time_s": round(counters.train_seconds, 3),
        "img_per_s": session_nimg / seconds if seconds > 0 else 0.0,
        "sec_per_tick": seconds,
        "sec_per_kimg": seconds / (tick_nimg / 1000) if tick_nimg else 0.0,
        **means,
        "peak_mem_gb": _peak_memory_gb(state.stats.device),
        "lr_g": state.opt_g.param_groups[0]["lr"],
        "lr_d": state.opt_d.param_groups[0]["lr"],
        "augment_p": state.augment.probability,
    }
    _write_samples(state, run_dir, *previews)
    for hook in tick_hooks:
        hook(state, record)
    log.append(record)
    rows = [r for r in log.records() if "tick" in r]
    plot_curves({name: [(r["kimg"], r[name]) for r in rows] for name in ("loss_d", "loss_g")},
                run_dir / "loss.png")
    return record


@torch.no_grad()
def _write_samples(state: TrainingState, run_dir: Path, grid_latents: torch.Tensor,
                   grid_labels: torch.Tensor | None, preview_reals: torch.Tensor) -> None:
    generator = state.generator_ema if state.generator_ema is not None else state.generator
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    labels = grid_labels.split(256) if grid_labels is not None else [None] * len(grid_latents.split(256))
    images = torch.cat([generator(z.to(device), y if y is None else y.to(device))
                        for z, y in zip(grid_latents.split(256), labels, strict=True)])
    generator.train(was_training)
    columns = state.config.model.num_classes if state.config.model.conditional else None
    if images.shape[-1] < preview_reals.shape[-1]:  # a growing G at a low resolution: enlarge for display
        images = torch.nn.functional.interpolate(images, size=preview_reals.shape[-2:], mode="nearest")
    grid = make_grid(to_uint8(images), columns)
    text = {"kimg": f"{state.counters.cur_nimg / 1000:.1f}", "seed": str(state.config.seed)}
    save_png(grid, run_dir / "samples" / f"fakes-{state.counters.cur_nimg:010d}.png", text)
    save_png(grid, run_dir / "samples" / "latest.png", text)
    if state.encoder is not None:
        _write_reconstructions(state, run_dir, preview_reals.to(device))


@torch.no_grad()
def _write_reconstructions(state: TrainingState, run_dir: Path, reals: torch.Tensor) -> None:
    """Autoencoders: the first reals (odd columns) beside their reconstructions (even columns)."""
    assert state.encoder is not None
    state.encoder.eval(), state.generator.eval()
    pairs = torch.stack([reals, state.generator(state.encoder(reals))], dim=1).flatten(0, 1)
    state.encoder.train(), state.generator.train()
    save_png(make_grid(to_uint8(pairs), 16), run_dir / "samples" / "reconstructions.png")


def _save(state: TrainingState, run_dir: Path) -> None:
    tensors, meta = state.capture()
    ckpt.save_checkpoint(ckpt.checkpoint_path(run_dir, state.counters.cur_nimg), tensors, meta)
    ckpt.prune_checkpoints(run_dir, state.config.keep)


def _status_line(r: dict[str, Any]) -> str:
    growing = "".join(f" {key} {r[key]:.3g}" for key in ("lod", "minibatch") if key in r)
    extras = "".join(f" {label} {r[key]:.3g}" for key, label in (("loss_recon", "recon"), ("augment_p", "p"))
                     if r.get(key))
    return (f"tick {r['tick']:<4d} kimg {r['kimg']:<8.1f}{growing} time {_duration(r['time_s'])} "
            f"sec/tick {r['sec_per_tick']:<6.1f} sec/kimg {r['sec_per_kimg']:<6.2f} img/s {r['img_per_s']:<6.0f} "
            f"loss_d {r['loss_d']:.3f} loss_g {r['loss_g']:.3f} "
            f"D(x) {r['d_real']:.2f} D(G(z)) {r['d_fake']:.2f} acc real {r['acc_real']:.0%} "
            f"fake {r['acc_fake']:.0%}{extras} mem {r['peak_mem_gb']:.2f}GB")


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


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
