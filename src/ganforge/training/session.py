"""Start a new run or resume one: resolve the config, open the data, set up the run folder, call the loop."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganforge import default_recipe
from ganforge.config import ModelConfig, TrainConfig, apply_overrides, changed_settings
from ganforge.data.embedded import open_training_store
from ganforge.data.store import Store
from ganforge.device import flush_denormals
from ganforge.errors import ConfigError, DataError
from ganforge.models import build_networks, family_of, validate
from ganforge.models.family import check_conditional, check_store
from ganforge.presets import resolve_overrides
from ganforge.runs.folder import create_run_dir, read_run_config, remove_if_unstarted, write_run_config
from ganforge.runs.lock import RunLock, lock_run
from ganforge.setting import SettingPath
from ganforge.setting_registry import check_resume_overrides, describe_config
from ganforge.training.distributed import init_distributed
from ganforge.training.loop import train
from ganforge.training.memory_check import check_fits
from ganforge.training.metrics_hook import training_metrics_hook
from ganforge.training.report import TickHook
from ganforge.training.runlog import RunLog


def class_count(store: Store) -> int:
    """The store's number of classes for --cond, or a clear error when it has no labels."""
    names = store.manifest.label_names
    if len(names) < 2:
        raise ConfigError(f"--cond needs class labels, but {store.path} has {len(names)} class(es); prepare the "
                          "data with `ganforge prepare SRC --labels folders` (one subfolder per class) or from IDX "
                          "files with their labels file.")
    return len(names)


def dataset_record(store: Store, config: TrainConfig) -> dict[str, Any]:
    """What config.json records of the store. "shape" is what G makes (a two-sided store's targets); an
    image-to-image run also records its inputs' shape and the store's pairing."""
    m = store.manifest
    record = {"path": config.data or "(embedded MNIST sample)", "name": store.name, "count": m.count,
              "shape": list(m.output_shape), "label_names": m.label_names, "fingerprint": m.fingerprint}
    if m.two_sided:
        record.update(pairing=m.pairing, input_shape=list(m.shape), count_b=m.count_b, val_count=m.val_count,
                      val_count_b=m.val_count_b)
    return record


def start_or_resume(overrides: dict[tuple[str, ...], Any], *, resume: Path | None, dry_run: bool = False,
                    progress: bool = True, echo: Callable[[str], None] = print,
                    choose_recipe: bool = False) -> Path | None:
    """Train a new run from `overrides` (setting path -> value), or continue `resume`. With `choose_recipe` and
    no ("model", "name") in `overrides`, the measured-best recipe for the store comes first (default_recipe.py)."""
    flush_denormals()  # before any torch op creates the CPU thread pool, whose threads inherit the setting
    ctx = init_distributed(str(overrides.get(("device",), "auto")))
    echo = echo if ctx.is_main else (lambda _: None)  # under torchrun, rank 0 alone reports
    lock: RunLock | None = None  # the run folder's, held by rank 0 while it trains (runs/lock.py)
    if resume is not None:
        saved, dataset = read_run_config(resume)
        if ctx.is_main and not dry_run:
            lock = lock_run(resume)  # before anything is printed or written: a second trainer stops here
        config = apply_overrides(saved, overrides)
        store = open_training_store(config.data)
        if dataset.get("fingerprint") not in (None, store.manifest.fingerprint):
            raise DataError(f"{store.path} is not the dataset {resume} was trained on (its content fingerprint "
                            "changed); resume with the original store.")
    else:
        store = open_training_store(str(overrides.get(("data",), "")))
        if choose_recipe:
            m = store.manifest
            overrides, choice = default_recipe.with_default_recipe(
                overrides, m.output_shape, len(store), len(m.label_names),
                ctx.device_for(str(overrides.get(("device",), "auto"))), m.pairing, m.shape)
            if choice is not None:
                echo(choice.describe())
        if overrides.get(("model", "conditional")):
            check_conditional(family_of(str(overrides.get(("model", "name"), ModelConfig().name))), True)
            overrides = {**overrides, ("model", "num_classes"): class_count(store)}
        if store.manifest.two_sided:
            overrides = {**overrides, ("model", "input_shape"): store.manifest.shape}
        adjust = family_of(str(overrides.get(("model", "name"), ModelConfig().name))).adjust
        if adjust is not None:
            overrides, note = adjust(overrides)
            if note:
                echo(note)
        config = apply_overrides(TrainConfig(), overrides)
    if not store.verify_content():
        echo(f"{store.path}: content hash not checked at this size ({store.images.nbytes / 1e9:.0f} GB); "
             f"`ganforge doctor {store.path}` checks it")
    family = validate(config)  # an unsupported flag is refused here, before any network is built
    check_store(family, str(store.path), store.manifest.pairing)
    shape = store.manifest.output_shape
    with torch.device("meta"):  # parameter counts only: no memory, no draws from the seeded RNG
        networks = build_networks(config.model, shape)
    sizes = {name: sum(p.numel() for p in net.parameters())
             for name, net in (("G", networks.generator), ("D", networks.discriminator))}
    check_fits(sum(sizes.values()), _pass_batch(config), shape, ctx.device_for(config.device))
    echo(f"data {dataset_record(store, config)['path']}: {_contents(store)}; model {config.model.name}: "
         f"G {sizes['G'] / 1e6:.2f}M, D {sizes['D'] / 1e6:.2f}M parameters")
    if dry_run:
        echo(describe_config(config))
        return None
    on_resumed = None
    if resume is None:
        if ctx.is_main:
            run_dir = create_run_dir(Path(config.out), config.model.name, store.name)
            lock = lock_run(run_dir)
            write_run_config(run_dir, config, dataset_record(store, config))
            echo(f"run folder {run_dir}")
        run_dir = Path(ctx.broadcast_text(str(run_dir) if ctx.is_main else ""))
    else:
        run_dir = resume
        on_resumed = _resume_check(run_dir, saved, config, dataset_record(store, config), ctx.is_main, echo)
    hooks: tuple[TickHook, ...] = ()
    if config.metrics:
        hooks = (training_metrics_hook(config, store, ctx),)
    with lock or contextlib.nullcontext():
        try:
            train(config, run_dir, store, progress=progress, echo=echo, tick_hooks=hooks, ctx=ctx,
                  on_resumed=on_resumed)
        except BaseException:
            if resume is None and ctx.is_main:
                remove_if_unstarted(run_dir)
            raise
    ctx.finish()
    return run_dir


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
                  echo: Callable[[str], None]) -> Callable[[int], bool]:
    """What runs once the checkpoint is restored and checked, and only then: the length check, and recording the
    changed settings (config.json and a `resume-overrides` event), so that a refused resume changes nothing."""
    changes = changed_settings(saved, config)

    def check_and_record(cur_nimg: int) -> bool:
        if cur_nimg >= config.total_nimg:
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


def train_from_paths(given: dict[SettingPath, Any], *, resume: Path | None, preset: str | None = None,
                     choose_recipe: bool = True, progress: bool = True, echo: Callable[[str], None] = print,
                     dry_run: bool = False) -> Run | None:
    """What `train` and the CLI share: settings by path -> preset -> new run or resume (None for a dry run)."""
    if resume is not None:
        check_resume_overrides(given, also_given=["--preset"] if preset else [])
    overrides = resolve_overrides(preset, given)
    run_dir = start_or_resume(overrides, resume=resume, dry_run=dry_run, progress=progress, echo=echo,
                              choose_recipe=choose_recipe)
    return None if run_dir is None else Run(run_dir, read_run_config(run_dir)[0])
