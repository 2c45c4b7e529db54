"""The one road from what a user gave `ganforge train` (or `gf.train`) to a run's config. Training, `--dry-run` and
`--summary` all take it, so what they print is what would train.

The steps, in order: the resume rule (checked once, here); then, for a resumed run, its recorded config with the
given changes on top; for a new run, the preset or the family's own recipe, the measured-best default recipe,
what the store decides (--cond's class count, an image-to-image model's input shape), the family's adjustment to
what is installed, and the flags given over all of it. Last, the family and the store are checked.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.config import ModelConfig, TrainConfig, apply_overrides
from ganforge.config.registry import check_resume_overrides, setting_info
from ganforge.config.setting import SettingPath
from ganforge.data.embedded import open_training_store
from ganforge.data.store import Store, is_store, read_manifest
from ganforge.errors import ConfigError, DataError
from ganforge.models import build_networks, family_of, summarize, validate
from ganforge.models.family import ImageShape, ModelFamily, check_conditional, check_store
from ganforge.recipes.default import with_default_recipe
from ganforge.recipes.presets import Overrides, resolve_overrides
from ganforge.runs.folder import BEST_RECORD, CONFIG_FILE, open_recorded_store, read_run_config
from ganforge.runs.output_guard import check_outside_ganforge_folders
from ganforge.training.distributed import Distributed
from ganforge.training.fine_tuning import fine_tuning_recipe, init_record
from ganforge.training.freeze import frozen_modules
from ganforge.training.init_from import match_init, open_init_source


@dataclass(frozen=True)
class RunRequest:
    """What the user gave, before anything is resolved."""

    settings: dict[SettingPath, Any] = field(default_factory=dict)  # the flags given, by path
    preset: str | None = None  # --preset
    phase_kimg: float | None = None  # --phase-kimg: both ProGAN phase lengths, unless each is given
    resume: Path | None = None  # --resume: the run folder to continue
    choose_recipe: bool = False  # a new run without --model: the measured-best recipe for its store first


@dataclass(frozen=True)
class ResolvedRun:
    """A run's config and what resolving it opened."""

    config: TrainConfig
    shape: ImageShape  # (C, H, W) of what G makes
    store: Store | None  # None only for a --summary at --resolution, which opens no store
    notes: tuple[str, ...] = ()  # lines to show first: the recipe chosen, the family's adjustment
    saved: TrainConfig | None = None  # a resumed run's config as it was recorded, before the changes given


def resolve_run(request: RunRequest, ctx: Distributed | None = None, resolution: int | None = None) -> ResolvedRun:
    """`request` resolved into a checked config. `ctx` says which device the default recipe is chosen for (each
    rank's own under torchrun; this process's alone when None); `resolution` (--summary without a store) stands
    for a store of N x N RGB images."""
    if request.resume is not None:
        also_given = [flag for flag, value in (("--phase-kimg", request.phase_kimg), ("--preset", request.preset))
                      if value is not None]
        check_resume_overrides(request.settings, also_given=also_given)
        return _resumed(request.resume, request.settings)
    return _new_run(request, ctx or Distributed(), resolution)


def model_summary(request: RunRequest, resolution: int | None = None) -> str:
    """What `train --summary` prints: the lines a run would show first, then the layer tables of its networks."""
    resolved = resolve_run(request, resolution=resolution)
    return "\n".join([*resolved.notes, summarize(resolved.config.model, resolved.shape)])


def class_count(store: Store) -> int:
    """The store's number of classes for --cond, or a clear error when it has no labels."""
    names = store.manifest.label_names
    if len(names) < 2:
        raise ConfigError(f"--cond needs class labels, but {store.path} has {len(names)} class(es); prepare the "
                          "data with `ganforge prepare SRC --labels folders` (one subfolder per class) or from IDX "
                          "files with their labels file.")
    return len(names)


def _check_length(given: Overrides, minutes: float | None = None) -> None:
    """--minutes sets --kimg: the two are refused together; --best-share (other than its default or 0) needs a
    budget. `minutes`: the run's budget when not given (a resumed run's recorded one)."""
    if given.get(("minutes",), 0) and ("kimg",) in given:
        raise ConfigError("--minutes plans the run's --kimg for the time given; pass one of them")
    share = given.get(("best_share",), 0)
    if share not in (0, setting_info(("best_share",)).default) and not given.get(("minutes",), minutes or 0):
        raise ConfigError(f"--best-share {share:g} is the share of a --minutes budget spent keeping the best snapshot; "
                          "a --kimg run keeps none: pass --minutes too, or drop --best-share")


def _new_run(request: RunRequest, ctx: Distributed, resolution: int | None) -> ResolvedRun:
    given = request.settings
    _check_length(given)
    if request.phase_kimg is not None:
        given = {("fade_kimg",): request.phase_kimg, ("stable_kimg",): request.phase_kimg, **given}
    source = None
    if given.get(("init",)):
        if request.preset is not None:
            raise ConfigError("--init starts from the source's recipe; drop --preset (flags given still apply)")
        if resolution is not None:
            raise ConfigError("--init fine-tunes on a store: pass --data STORE instead of --resolution")
        source = open_init_source(str(given[("init",)]))
    overrides = given if source is not None else resolve_overrides(request.preset, given)
    store: Store | None = None
    if resolution is not None:
        shape: ImageShape = (3, resolution, resolution)
    else:
        store = open_training_store(str(overrides.get(("data",), "")))
        shape = store.manifest.output_shape
    notes: list[str] = []
    if source is not None:
        assert store is not None
        overrides, recipe_note = fine_tuning_recipe(overrides, source, len(store), len(store.manifest.label_names),
                                                    shape)
        overrides.update(init_record(source))
        notes.append(recipe_note)
    elif request.choose_recipe:
        overrides, choice = _with_default_recipe(overrides, store, shape, ctx)
        notes += [choice] if choice else []
    overrides = _from_store(overrides, store)
    adjust = _family(overrides).adjust
    if adjust is not None:
        overrides, note = adjust(overrides)
        notes += [note] if note else []
    config = _checked(apply_overrides(TrainConfig(), overrides), store, shape)
    _check_out(Path(config.out))
    if source is not None:
        notes.append(match_init(source, config, shape, _skeletons(config, shape)).report(source))
    return ResolvedRun(config, shape, store, tuple(notes))


def _skeletons(config: TrainConfig, shape: ImageShape) -> dict[str, nn.Module]:
    """The run's networks by checkpoint prefix, on the meta device: their tensors' names and shapes, no memory."""
    with torch.device("meta"):
        networks = build_networks(config.model, shape)
    found = {"G": networks.generator, "D": networks.discriminator, "E": networks.encoder,
             "G_ema": networks.generator if config.ema_kimg > 0 else None}
    return {role: net for role, net in found.items() if net is not None}


def _resumed(run_dir: Path, given: Overrides) -> ResolvedRun:
    """The run's recorded config with `given` (settings that may change on resume) on top, on its own store,
    wherever it is now (see `find_store`)."""
    if (run_dir / BEST_RECORD).exists():  # the run rewrites it: training in it would break its promise
        raise ConfigError(f"{run_dir} is a run's best snapshot ({BEST_RECORD}), which its run replaces whenever it "
                          f"scores better; continue the run with `--resume {run_dir.resolve().parent}`, or fine-tune "
                          f"from these weights in a new run with `--init {run_dir}`")
    saved, dataset = read_run_config(run_dir)
    _check_length(given, saved.minutes)
    if saved.minutes > 0 and ("kimg",) in given and ("minutes",) not in given:
        raise ConfigError(f"{run_dir} trains for --minutes {saved.minutes:g} (its --kimg is the plan); pass "
                          "--minutes 0 with --kimg to train to a length instead, or --minutes to extend its budget")
    config = apply_overrides(saved, given)
    if config.data:
        found = find_store(run_dir, config.data, dataset, searched=("data",) not in given)
        config = dataclasses.replace(config, data=str(found))
    store = open_recorded_store(run_dir, config.data) if ("data",) not in given else open_training_store(config.data)
    if dataset.get("fingerprint") not in (None, store.manifest.fingerprint):
        raise DataError(f"{store.path} is not the dataset {run_dir} was trained on (its content fingerprint "
                        "changed); resume with the original store.")
    shape = store.manifest.output_shape
    return ResolvedRun(_checked(config, store, shape), shape, store, saved=saved)


def find_store(run_dir: Path, data: str, dataset: dict[str, Any], *, searched: bool) -> Path:
    """Where a resumed run's store is now: `data` as recorded (or as given with --data), else, unless given, at
    the absolute path the run recorded, then under its name beside the run folder, its parent or inside it; the
    first whose content fingerprint is the run's. A run started elsewhere or moved with its store resumes."""
    candidates = [Path(data)]
    if searched:
        name = Path(data).name
        recorded = dataset.get("abs_path")
        candidates += [Path(recorded)] if isinstance(recorded, str) else []
        candidates += [run_dir.parent / name, run_dir.parent.parent / name, run_dir / name]
    wanted = dataset.get("fingerprint")
    for candidate in candidates:
        if candidate.is_file() and (wanted is None or _fingerprint(candidate) == wanted):
            return candidate
    if not searched:
        return candidates[0]  # opened as given: a missing or different store is reported there
    looked = ", ".join(dict.fromkeys(str(c) for c in candidates))
    # A file at the recorded path that is not the store (train.data edited to another file) is not "missing".
    found = (f"which is not the store {run_dir} was trained on" if Path(data).exists() else "which is not there")
    raise DataError(f"train.data in {run_dir / CONFIG_FILE} is {data}, {found} (looked at {looked}); pass the store "
                    f"with `ganforge train --resume {run_dir} --data PATH` (its content must be the same)")


def _fingerprint(path: Path) -> str | None:
    try:
        return read_manifest(path).fingerprint
    except (DataError, OSError, ValueError):
        return None


def _with_default_recipe(overrides: Overrides, store: Store | None, shape: ImageShape,
                         ctx: Distributed) -> tuple[Overrides, str | None]:
    """`overrides` over the recipe measured best for the store (none when they name a model), and the line
    saying which and why. Without a store (--summary --resolution N): for N x N images without labels."""
    m = store.manifest if store is not None else None
    device = ctx.device_for(str(overrides.get(("device",), "auto")))
    overrides, choice = with_default_recipe(overrides, shape, len(store) if store is not None else None,
                                            len(m.label_names) if m else 0, device, m.pairing if m else "none",
                                            m.shape if m else None)
    return overrides, choice.describe() if choice is not None else None


def _from_store(overrides: Overrides, store: Store | None) -> Overrides:
    """What the store decides: --cond's class count, and an image-to-image model's input shape (its A side)."""
    if overrides.get(("model", "conditional")):
        check_conditional(_family(overrides), True)  # before counting labels for a family that takes none
        if store is not None:  # without one, the config refuses --cond for want of classes
            overrides = {**overrides, ("model", "num_classes"): class_count(store)}
    if store is not None and store.manifest.two_sided:
        overrides = {**overrides, ("model", "input_shape"): store.manifest.shape}
    return overrides


def _checked(config: TrainConfig, store: Store | None, shape: ImageShape) -> TrainConfig:
    """`config`, once its family supports every setting and trains on this kind of store."""
    family = validate(config)  # an unsupported flag is refused here, before any network is built
    if config.minutes == 0 and config.total_nimg < config.batch:
        # One step shows D a whole batch: the run would train --batch images and call it --kimg.
        raise ConfigError(f"--kimg {config.kimg:g} is {config.total_nimg} images, less than one --batch of "
                          f"{config.batch}; the shortest run at this batch is --kimg {config.batch / 1000:g} (or pass "
                          "a smaller --batch)")
    if store is not None:
        check_store(family, str(store.path), store.manifest.pairing)
    if config.freeze_d or config.freeze_g_mapping:
        networks = _skeletons(config, shape)
        frozen_modules(config, family, networks["G"], networks["D"])
    return config


def _check_out(out: Path) -> None:
    """--out holds run folders: refuse a file (a store given as --out by mistake) and a run, export or detector
    folder, where a new run would nest inside what ganforge keeps."""
    if os.path.lexists(out) and not out.is_dir():
        raise ConfigError(f"--out {out} is {'a store' if is_store(out) else 'a file'}, not a folder; --out names the "
                          "folder runs are made in (e.g. --out runs)")
    check_outside_ganforge_folders(out, "--out")


def _family(overrides: Overrides) -> ModelFamily:
    return family_of(str(overrides.get(("model", "name"), ModelConfig().name)))

