"""Start a new run or resume one: resolve the config (run_config.py), set up the run folder, call the loop."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganforge.config import TrainConfig, changed_settings
from ganforge.config.registry import describe_config
from ganforge.data.store import Store
from ganforge.device import flush_denormals, slow_precision_note
from ganforge.errors import ConfigError
from ganforge.models import build_networks, family_of
from ganforge.runs import checkpoint as ckpt
from ganforge.runs.folder import create_run_dir, read_run_config, remove_if_unstarted, write_run_config
from ganforge.runs.lock import RunLock, lock_run
from ganforge.training.best_snapshot import best_snapshot_hook
from ganforge.training.budget import plan_total_nimg
from ganforge.training.collapse_monitor import collapse_monitor
from ganforge.training.distributed import Distributed, init_distributed
from ganforge.training.loop import LONGEST_NIMG, train
from ganforge.training.memorization_check import memorization_at_end, memorization_due
from ganforge.training.memory_check import check_fits
from ganforge.training.metrics_hook import training_metrics_hook
from ganforge.training.report import TickHook
from ganforge.training.run_config import RunRequest, resolve_run
from ganforge.training.runlog import RunLog
from ganforge.training.state import Counters

PROBE_MINUTES = 0.4  # the dry run's trial: the warm-up and a 5 s window fit, with time to spare


def dataset_record(store: Store, config: TrainConfig) -> dict[str, Any]:
    """What config.json records of the store. "shape" is what G makes (a two-sided store's targets); an
    image-to-image run also records its inputs' shape and the store's pairing."""
    m = store.manifest
    record = {"path": config.data or "(embedded MNIST sample)", "name": store.name, "count": m.count,
              **({"abs_path": str(Path(config.data).resolve())} if config.data else {}),
              "shape": list(m.output_shape), "label_names": m.label_names, "fingerprint": m.fingerprint}
    if m.two_sided:
        record.update(pairing=m.pairing, input_shape=list(m.shape), count_b=m.count_b, val_count=m.val_count,
                      val_count_b=m.val_count_b)
    return record


def start_or_resume(request: RunRequest, *, dry_run: bool = False, progress: bool = True,
                    echo: Callable[[str], None] = print) -> Path | None:
    """Train the new run `request` describes, or continue its `resume` folder; a dry run stops after printing
    the resolved config. Returns the run folder (None for a dry run)."""
    flush_denormals()  # before any torch op creates the CPU thread pool, whose threads inherit the setting
    ctx = init_distributed(str(request.settings.get(("device",), "auto")))
    echo = echo if ctx.is_main else (lambda _: None)  # under torchrun, rank 0 alone reports
    resolved = resolve_run(request, ctx)  # prints and writes nothing, so a refused run leaves no trace
    # The run folder's lock, held by rank 0 while it trains (runs/lock.py), taken before anything is printed or
    # written: a second trainer of the same run stops here.
    lock: RunLock | None = None
    if request.resume is not None and ctx.is_main and not dry_run:
        lock = lock_run(request.resume)
    config, store = resolved.config, resolved.store
    assert store is not None  # resolve_run opens none only for a --summary at --resolution
    for note in resolved.notes:
        echo(note)
    slow = slow_precision_note(config.precision, ctx.device_for(config.device))
    if slow:
        echo(slow)
    if not store.verify_content():
        echo(f"{store.path}: content hash not checked at this size ({store.images.nbytes / 1e9:.0f} GB); "
             f"`ganforge doctor {store.path}` checks it")
    sizes = _parameter_counts(config, resolved.shape)
    check_fits(sum(sizes.values()), _pass_batch(config), resolved.shape, ctx.device_for(config.device))
    echo(f"data {dataset_record(store, config)['path']}: {_contents(store)}; model {config.model.name}: "
         f"G {sizes['G'] / 1e6:.2f}M, D {sizes['D'] / 1e6:.2f}M parameters")
    if dry_run:
        if config.minutes > 0:
            echo(_probe_plan(config, store, echo, _spent(request.resume, echo)))
        echo(describe_config(config))
        return None
    on_resumed = None
    if request.resume is None:
        if ctx.is_main:
            run_dir = create_run_dir(Path(config.out), config.model.name, store.name)
            lock = lock_run(run_dir)
            write_run_config(run_dir, config, dataset_record(store, config))
            echo(f"run folder {run_dir}")
        run_dir = Path(ctx.broadcast_text(str(run_dir) if ctx.is_main else ""))
    else:
        assert resolved.saved is not None  # resolve_run returns the recorded config of every resumed run
        run_dir = request.resume
        on_resumed = _resume_check(run_dir, resolved.saved, config, dataset_record(store, config), ctx.is_main, echo)
    hooks: tuple[TickHook, ...] = ()
    if not family_of(config.model.name).translates and len(store) >= 2:
        hooks = (collapse_monitor(config, store, echo, ctx.device_for(config.device),
                                  run_dir if ctx.is_main else None),)
    if config.metrics:
        hooks += (training_metrics_hook(config, store, ctx),)
    if config.minutes > 0 and config.best_share > 0:
        hooks += (_best_snapshot(config, store, ctx, run_dir, echo),)
    with lock or contextlib.nullcontext():
        try:
            on_done = (memorization_at_end(store, run_dir, ctx.device_for(config.device), echo)
                       if memorization_due(config, len(store)) else None)
            train(config, run_dir, store, progress=progress, echo=echo, tick_hooks=hooks, ctx=ctx,
                  on_resumed=on_resumed, on_done=on_done)
        except BaseException:
            if request.resume is None and ctx.is_main:
                remove_if_unstarted(run_dir)
            raise
    ctx.finish()
    return run_dir


def _best_snapshot(config: TrainConfig, store: Store, ctx: Distributed, run_dir: Path,
                   echo: Callable[[str], None]) -> TickHook:
    """The best-snapshot check of a budget run; without the Inception weights, a line saying how to get it."""
    try:
        return best_snapshot_hook(config, store, ctx, run_dir, echo)
    except ConfigError as error:
        echo(f"no best snapshot for this run (the last one is kept): {error}")
        return lambda state, record: None


def _spent(run_dir: Path | None, echo: Callable[[str], None]) -> tuple[float, int]:
    """(seconds of its budget spent, images shown) by a resumed run's latest intact checkpoint; (0, 0) for a new
    run or one without a checkpoint, and (said in a line) where the checkpoint's counters are unreadable."""
    latest = None if run_dir is None else ckpt.load_latest_intact(run_dir, echo, move_damaged=False)
    if latest is None:
        return 0.0, 0
    counters: Any = latest[2].get("counters")
    try:
        seconds, nimg = float(counters["budget_seconds"]), int(counters["cur_nimg"])
    except (KeyError, TypeError, ValueError):
        echo(f"{latest[0]} records no readable budget counters; the plan below counts from nothing spent")
        return 0.0, 0
    return (seconds, nimg) if math.isfinite(seconds) and seconds >= 0 and nimg >= 0 else (0.0, 0)


def _probe_plan(config: TrainConfig, store: Store, echo: Callable[[str], None],
                spent: tuple[float, int] = (0.0, 0)) -> str:
    """What `--minutes M --dry-run` shows: the plan from a short run of this recipe on this device and store (in a
    temporary folder, deleted after), timed as the real run times itself; for a resumed run, from `spent`
    (seconds of its budget, images shown) on."""
    echo(f"measuring the speed of this recipe here: a {PROBE_MINUTES * 60:.0f} s trial run ...")
    probe = dataclasses.replace(config, minutes=PROBE_MINUTES, tick_kimg=1e6, snap=1_000_000, metrics="",
                                grid_size=1)  # a fresh run, so its deadline, not a resumed run's --kimg, ends it
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder)
        write_run_config(run_dir, probe, dataset_record(store, probe))
        train(probe, run_dir, store, progress=False, echo=lambda _: None)
        plans = [r for r in RunLog(run_dir, tensorboard=False).records() if r.get("event") == "plan"]
    if not plans:
        return f"plan: {config.minutes:g} min; the trial run was too short to measure: the run measures itself"
    speed = float(plans[0]["img_per_s"])
    seconds, nimg = spent
    total = plan_total_nimg(nimg, config.minutes * 60 - seconds, speed, 0.0, config.batch * config.d_steps)
    kimg = min(total, LONGEST_NIMG) / 1000
    so_far = (f" ({seconds / 60:.1f} spent, {config.minutes - seconds / 60:.1f} left, from kimg {nimg / 1000:.1f})"
              if nimg else "")
    return (f"plan: {config.minutes:g} min{so_far} -> about {kimg:.1f} kimg at {speed:.1f} img/s (measured by a "
            f"{PROBE_MINUTES * 60:.0f} s trial run of this recipe on this device and store; the run measures "
            "itself again, leaves time for its ticks and last checkpoint, and replans at every tick)")


def _parameter_counts(config: TrainConfig, shape: tuple[int, int, int]) -> dict[str, int]:
    with torch.device("meta"):  # parameter counts only: no memory, no draws from the seeded RNG
        networks = build_networks(config.model, shape)
    return {name: sum(p.numel() for p in net.parameters())
            for name, net in (("G", networks.generator), ("D", networks.discriminator))}


def _contents(store: Store) -> str:
    m = store.manifest
    if not m.two_sided:
        return f"{len(store)} images, {'x'.join(map(str, m.shape))}"
    held = f", {m.val_count} held out" if m.pairing == "paired" else f", {m.val_count}/{m.val_count_b} held out"
    return (f"{m.pairing} A {m.count} x {'x'.join(map(str, m.shape))} -> B {m.count_b} x "
            f"{'x'.join(map(str, m.shape_b))}{held if m.val_count or m.val_count_b else ''}")


def _pass_batch(config: TrainConfig) -> int:
    """Images in one forward/backward pass: --batch, or --batch-gpu when it splits the batch into passes."""
    if isinstance(config.batch_gpu, int) and config.batch_gpu > 0:
        return min(config.batch, config.batch_gpu)
    return config.batch


def _resume_check(run_dir: Path, saved: TrainConfig, config: TrainConfig, dataset: dict[str, Any], is_main: bool,
                  echo: Callable[[str], None]) -> Callable[[Counters], bool]:
    """What runs once the checkpoint is restored and checked, and only then: the length check, and recording the
    changed settings (config.json and a `resume-overrides` event), so that a refused resume changes nothing."""
    changes = changed_settings(saved, config)

    def check_and_record(counters: Counters) -> bool:
        cur_nimg, spent = counters.cur_nimg, counters.budget_seconds / 60
        if config.minutes > 0 and "minutes" in changes and spent >= config.minutes:
            raise ConfigError(f"--minutes {config.minutes:g} is not beyond the {spent:.1f} minutes {run_dir} has "
                              f"spent; --minutes is the whole budget, spent time included: for {config.minutes:g} "
                              f"more, pass --minutes {math.ceil(spent) + config.minutes:g}")
        if cur_nimg >= config.total_nimg and config.minutes > 0 and "minutes" not in changes:
            echo(f"{run_dir} has spent its {config.minutes:g} minutes (kimg {cur_nimg / 1000:g}): it is complete. "
                 f"Extend it with `ganforge train --resume {run_dir} --minutes {2 * config.minutes:g}`")
            return False
        if cur_nimg >= config.total_nimg and config.minutes == 0:  # a budget's end is the loop's to judge
            done = f"{run_dir} has trained {cur_nimg / 1000:g} kimg"
            if "kimg" in changes:
                raise ConfigError(f"--kimg {config.kimg:g} is not beyond what {done}; pass a larger --kimg to extend "
                                  "it")
            echo(f"{done} of its --kimg {config.kimg:g}: it is complete. Extend it with `ganforge train --resume "
                 f"{run_dir} --kimg {2 * config.kimg:g}`, or see `ganforge generate {run_dir} --help`")
            return False
        if changes and is_main:
            write_run_config(run_dir, config, dataset)
            RunLog(run_dir, tensorboard=False).append(
                {"event": "resume-overrides", "changes": {k: {"from": a, "to": b} for k, (a, b) in changes.items()}})
            echo("resume overrides: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items()))
        return True

    return check_and_record


@dataclass(frozen=True)
class Run:
    """A run folder that training wrote, with the configuration it recorded."""

    path: Path
    config: TrainConfig


def train_from_paths(request: RunRequest, *, progress: bool = True, echo: Callable[[str], None] = print,
                     dry_run: bool = False) -> Run | None:
    """What `ganforge train` and `gf.train` share: the run `request` describes, trained (None for a dry run)."""
    run_dir = start_or_resume(request, dry_run=dry_run, progress=progress, echo=echo)
    return None if run_dir is None else Run(run_dir, read_run_config(run_dir)[0])
